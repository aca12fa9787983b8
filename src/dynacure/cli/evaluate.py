"""`dynacure evaluate MODEL_DIR`: run evaluation suites on a saved learner; every figure with its interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import check_out_path

console = make_console()

# Which suites each shorthand option applies to (an option only goes to the suites that are run).
_SHORTHANDS = {
    "max_prompts": ("toxicity", "refusal"),
    "samples": ("toxicity",),
    "max_tokens": ("perplexity",),
}
_MAX_ITEMS = {"preference": "max_pairs", "truthfulqa": "max_questions", "bbq": "max_items"}


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def build_options(names: list[str], *, max_prompts: int | None, samples: int | None, max_tokens: int | None,
                  max_items: int | None, data_dir: Path | None, prompts: Path | None, force_refusal: bool,
                  extra: list[str]) -> dict[str, dict[str, Any]]:
    """Per-suite options from the CLI flags and ``--option suite.key=value`` pairs."""
    opts: dict[str, dict[str, Any]] = {n: {} for n in names}
    given = {"max_prompts": max_prompts, "samples": samples, "max_tokens": max_tokens}
    for key, suites in _SHORTHANDS.items():
        if given[key] is not None:
            for s in suites:
                if s in opts:
                    opts[s][key] = given[key]
    if max_items is not None:
        for s, key in _MAX_ITEMS.items():
            if s in opts:
                opts[s][key] = max_items
    if data_dir is not None:
        for s in opts:
            opts[s]["data_dir"] = str(data_dir)
    if prompts is not None:
        if "toxicity" not in opts:
            raise ValueError("--prompts is for the toxicity suite, which is not selected")
        opts["toxicity"]["prompts_file"] = str(prompts)
    if force_refusal and "refusal" in opts:
        opts["refusal"]["force"] = True
    for item in extra:
        key, sep, raw = item.partition("=")
        suite, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--option {item!r}: expected SUITE.KEY=VALUE "
                             "(e.g. perplexity.corpora='[\"ptb\"]')")
        if suite not in opts:
            raise ValueError(f"--option {item!r}: suite {suite!r} is not selected")
        opts[suite][name] = _parse_value(raw)
    return {k: v for k, v in opts.items() if v}


# What a saved learner folder holds (``dynacure train`` / ``TinyGPT.save`` / ``HFLearner.save``, or a plain
# Hugging Face model folder): evaluate's results must not land on one of them.
_MODEL_FILES = ("learner.json", "config.json", "model.safetensors", "optimizer.safetensors", "tokenizer.json",
                "train_log.json", "generation_config.json", "tokenizer_config.json")


def check_model_dir(model_dir: Path) -> None:
    """Refuse, before any work, a MODEL that is not a saved learner folder."""
    if not model_dir.exists():
        raise FileNotFoundError(f"{model_dir}: no such model folder (train one with `dynacure train`)")
    if not model_dir.is_dir():
        raise ValueError(f"{model_dir}: not a model folder but a file (MODEL is the folder "
                         "`dynacure train --out` wrote)")
    if not ((model_dir / "learner.json").is_file() or (model_dir / "config.json").is_file()):
        raise ValueError(f"{model_dir}: not a model folder (no learner.json, nor a Hugging Face config.json; "
                         "MODEL is the folder `dynacure train --out` wrote)")


def check_results_path(out: Path, model_dir: Path) -> None:
    """The results file must not replace a run record or one of the model's own files."""
    from dynacure.runinfo import is_run_record_name

    check_out_path(out, "file")
    if is_run_record_name(out.name):
        raise ValueError(f"{out}: --out must not be named like a run record (run.json, run.<command>.json); "
                         "e.g. use eval.json")
    if out.name in _MODEL_FILES and out.parent.resolve() == model_dir.resolve():
        raise ValueError(f"{out}: --out would overwrite the model's own {out.name}; e.g. use "
                         f"{out.parent / 'eval.json'}")


def _fmt(est: dict[str, Any]) -> str:
    return f"{est['value']:.4g} [{est['low']:.4g}, {est['high']:.4g}] (n={est['n']})"


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    @cli_errors
    def evaluate(
        model_dir: Path = typer.Argument(..., help="a saved learner folder (TinyGPT or Hugging Face)"),
        suite: str = typer.Option("toxicity,perplexity", "--suite", "-s",
                                  help="comma-separated suites, of: @@suites@@"),
        out: Path = typer.Option(Path("results.json"), "--out", "-o", help="results file (JSON)"),
        max_prompts: int = typer.Option(None, "--max-prompts",
                                        help="toxicity/refusal: prompts per kind (quick default 50)"),
        samples: int = typer.Option(None, "--samples",
                                    help="toxicity: continuations per prompt (quick default 5, --full 25)"),
        max_tokens: int = typer.Option(None, "--max-tokens",
                                       help="perplexity: words of each test corpus (quick default 20,000)"),
        max_items: int = typer.Option(None, "--max-items",
                                      help="preference pairs per subset / TruthfulQA questions / BBQ items"),
        prompts: Path = typer.Option(None, "--prompts", help="toxicity: JSONL prompt file (prompt, kind)"),
        judge_dir: Path = typer.Option(None, "--judge-dir",
                                       help="folder holding the trained judge model (default: model_dir())"),
        judge_hf: Path = typer.Option(None, "--judge", help="toxicity: a local Hugging Face "
                                      "sequence-classification folder as the judge (P of its unsafe labels)"),
        judge_unsafe: str = typer.Option(None, "--judge-unsafe-labels", help="with --judge: the labels that "
                                         "count as unsafe, comma-separated (default: see hf_classifier)"),
        data_dir: Path = typer.Option(None, "--data-dir", help="public datasets (default ../shared/data)"),
        force_refusal: bool = typer.Option(
            False, "--force-refusal", help="run refusal even on a learner that does not follow instructions"),
        option: list[str] = typer.Option([], "--option", help="SUITE.KEY=VALUE (JSON value), repeatable"),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option(None, "--device", help="cpu / cuda (default: best available)"),
        full: bool = typer.Option(False, "--full", help="the full test sets (default: quick subsets that "
                                  "take a few minutes for a small model; sizes you give always win)"),
    ) -> None:
        """Evaluate a saved learner: toxicity of its continuations (RealToxicityPrompts protocol), held-out
        perplexity, HH-RLHF preference accuracy, TruthfulQA, BBQ/Winogender bias and refusal; each figure
        with a bootstrap 95% interval. Writes the results JSON and its run record beside it (run.json, or
        run.evaluate.json in a folder whose run.json is another command's, such as the model's own).
        Quick subsets by default (--full for the full sets). Each suite's result is written as it finishes
        and its work is kept in chunks, so the same command resumes an interrupted run where it stopped."""
        from dynacure.evaluation.checkpoint import Checkpoint, model_fingerprint
        from dynacure.evaluation.judge import load_judge
        from dynacure.evaluation.suites import apply_sizes, parse_suite_names, run_suites
        from dynacure.io.atomic import write_json_atomic
        from dynacure.learners import load_learner
        from dynacure.runinfo import seed_everything, write_run_info

        # The arguments' own syntax first, then MODEL before anything that looks for models or data: a path
        # that is not a model must not be answered with "no trained judge found".
        names = parse_suite_names(suite)
        options = build_options(names, max_prompts=max_prompts, samples=samples, max_tokens=max_tokens,
                                max_items=max_items, data_dir=data_dir, prompts=prompts,
                                force_refusal=force_refusal, extra=option)
        if judge_hf is not None and judge_dir is not None:
            raise ValueError("give --judge (a Hugging Face classifier folder) or --judge-dir, not both")
        if (judge_hf is not None or judge_unsafe) and "toxicity" not in names:
            raise ValueError("--judge is for the toxicity suite, which is not selected")
        options, quick = apply_sizes(options, names, full)
        check_model_dir(model_dir)
        check_results_path(out, model_dir)
        err = make_console(stderr=True)
        if quick:
            err.print("quick sizes (--full for the full sets): " + "; ".join(
                f"{n} " + ", ".join(f"{k}={v}" for k, v in q.items()) for n, q in quick.items()),
                soft_wrap=True, highlight=False)
        seed_everything(seed)
        learner = load_learner(model_dir, device=device)  # the model first: its errors name MODEL
        judge = load_judge(judge_hf, judge_dir, judge_unsafe) if "toxicity" in names else None
        header = {"model": str(Path(model_dir).resolve()), "options": options}
        # finished suites and chunks of work are kept beside --out, so the same command resumes
        checkpoint = Checkpoint(out, model_fingerprint(model_dir), header=header,
                                say=lambda msg: err.print(msg, soft_wrap=True, highlight=False))
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=False) as bar:
            tasks = {n: bar.add_task(n, total=None) for n in names}

            def progress(name: str, done: int, total: int) -> None:
                bar.update(tasks[name], completed=done, total=total)

            def finished(name: str, _res: dict[str, Any]) -> None:
                t = bar.tasks[tasks[name]]
                bar.update(tasks[name], completed=t.total or 1, total=t.total or 1)

            results = run_suites(learner, names, seed=seed, options=options, judge=judge, progress=progress,
                                 on_suite=finished, checkpoint=checkpoint)
        results.update(header, complete=True, suites_pending=[], sizes="full" if full else "quick")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, results)
        checkpoint.close()
        write_run_info(out.parent, command="evaluate", config={"model": results["model"], "suites": names,
                                                                "options": options, "out": str(out)},
                       seed=seed, extra={"data_files": results["data_files"]})
        table = Table(title=f"Evaluation of {model_dir}")
        for col in ("suite", "metric", "value [95% interval] (n)"):
            table.add_column(col)
        for name, res in results["suites"].items():
            if res["skipped"]:
                table.add_row(name, "skipped", res["skipped"])
            for metric, est in res["metrics"].items():
                table.add_row(name, metric, _fmt(est))
        console.print(table)
        console.print(f"results written to {out}")
