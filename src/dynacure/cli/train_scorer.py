"""`dynacure train-scorer`: train our learned scorers and write them (with held-out metrics) to a model dir.

``--which`` picks among ngram (reward n-gram toxicity), minilm (reward MiniLM head), judge (evaluation
judge, judge rows only), alignment (HH-RLHF pairwise proxy) and transformer (the MiniLM encoder fine-tuned
end to end on the reward rows: tens of minutes on 2 cores, so not in the default list; it resumes). Each
model folder holds safetensors weights and a meta.json with its held-out figures; a summary
``train_scorer.json`` lists them all, and ``scorers.html`` (``report.scorers``) shows every model of the
folder: held-out figures, per-group false-positive rates, harm categories and reliability diagrams.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request

log = logging.getLogger(__name__)
CHOICES = ("ngram", "minilm", "judge", "alignment", "transformer")
DEFAULT = ("ngram", "minilm", "judge", "alignment")


def parse_which(which: str) -> list[str]:
    items = [w.strip() for w in which.split(",") if w.strip()]
    bad = [w for w in items if w not in CHOICES]
    if bad or not items:
        raise ValueError(f"--which: unknown scorer(s) {', '.join(bad) or '(none)'}; "
                         f"choose from {', '.join(CHOICES)}")
    return items


def train_scorers(data_dir: Path, out: Path, which: list[str], seed: int,
                  evaluate: bool = True) -> dict[str, Any]:
    """Train the chosen scorers into ``out``; returns {name: {path, seconds, heldout}}."""
    from dynacure.io.atomic import write_json_atomic
    from dynacure.runinfo import absolute, seed_everything
    from dynacure.signals import alignment, models, toxicity

    if not data_dir.exists():
        raise FileNotFoundError(f"{absolute(data_dir)}: data directory not found (pass --data-dir with the "
                                "folder of the public datasets, or set DYNACURE_DATA)")
    seed_everything(seed)
    summary: dict[str, Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=make_console(stderr=True)) as progress:
        for name in which:
            task = progress.add_task(f"training {name}", total=None)
            t0 = time.time()
            model: Any
            if name == "ngram":
                model = toxicity.train_ngram("reward", data_dir, seed=seed, evaluate=evaluate)
                path = model.save(out / models.TOXICITY_NGRAM)
            elif name == "minilm":
                model = toxicity.train_minilm("reward", data_dir, seed=seed, cache_dir=out / "embed_cache",
                                              evaluate=evaluate)
                path = model.save(out / models.TOXICITY_MINILM)
            elif name == "transformer":
                from dynacure.signals.transformer import TOXICITY_TRANSFORMER, train_transformer_scorer

                model = train_transformer_scorer(data_dir, out, seed=seed, evaluate=evaluate)
                path = out / TOXICITY_TRANSFORMER
            elif name == "judge":
                model = toxicity.train_judge(data_dir, seed=seed, evaluate=evaluate)
                path = model.save(out / models.JUDGE)
            else:
                model = alignment.train_alignment(data_dir, seed=seed, evaluate=evaluate)
                path = model.save(out / models.ALIGNMENT)
            summary[name] = {"path": str(path), "seconds": round(time.time() - t0, 1),
                             "heldout": model.meta.get("heldout")}
            progress.update(task, description=f"trained {name} in {time.time() - t0:.0f}s", completed=1,
                            total=1)
    write_json_atomic(out / "train_scorer.json",
                      {"format_version": 1, "seed": seed, "data_dir": str(data_dir), "scorers": summary})
    if evaluate:
        from dynacure.report.scorers import build_scorer_report

        build_scorer_report(out)  # out/scorers.html: every model of the folder, old ones included
    return summary


def reevaluate_scorers(data_dir: Path, out: Path, which: list[str]) -> dict[str, Any]:
    """Recompute the held-out figures of saved models under the current evaluation protocol, without
    training (a fine-tuned transformer costs tens of minutes to retrain); rewrites each meta.json."""
    from dynacure.signals import models, training
    from dynacure.signals.toxicity import MiniLMHead, NgramModel

    summary: dict[str, Any] = {}
    for name in which:
        t0 = time.time()
        model: Any
        if name == "transformer":
            from dynacure.signals.transformer import (
                TOXICITY_TRANSFORMER,
                TransformerScorer,
                evaluate_transformer,
            )

            path = out / TOXICITY_TRANSFORMER
            model = TransformerScorer.load(path)
            model.meta["heldout"] = evaluate_transformer(model, data_dir)
        elif name in ("ngram", "judge", "minilm"):
            folders = {"ngram": models.TOXICITY_NGRAM, "judge": models.JUDGE,
                       "minilm": models.TOXICITY_MINILM}
            path = out / folders[name]
            model = (MiniLMHead.load(path) if name == "minilm"
                     else NgramModel.load(path, which="judge" if name == "judge" else models.TOXICITY_NGRAM))
            col = model.categories.index("toxicity")
            model.meta["heldout"] = training.evaluate_toxicity(
                lambda t, m=model, c=col: m.predict_proba(t)[:, c], data_dir)
        else:
            raise ValueError(f"--eval-only: {name} has no re-evaluation (retrain it: it takes seconds)")
        model.save(path)
        summary[name] = {"path": str(path), "seconds": round(time.time() - t0, 1),
                         "heldout": model.meta["heldout"]}
    from dynacure.report.scorers import build_scorer_report

    build_scorer_report(out)
    return summary


def check_replacing(out: Path, which: list[str], seed: int, overwrite: bool) -> list[str]:
    """Refuse to retrain a model ``out`` holds that was trained with another seed (another run's finished
    model: the scores of every later run would change without a word) unless ``overwrite``; returns the
    models it replaces, described."""
    import json

    from dynacure.signals import models

    folders = {"ngram": models.TOXICITY_NGRAM, "minilm": models.TOXICITY_MINILM, "judge": models.JUDGE,
               "alignment": models.ALIGNMENT, "transformer": "toxicity_transformer"}
    replaced: list[tuple[Path, str]] = []
    for name in which:
        meta_path = out / folders[name] / models.META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = {}  # not a model this version reads: nothing to protect
        if isinstance(meta, dict) and meta.get("seed") not in (None, seed):
            replaced.append((meta_path.parent, f"a {name} model trained with seed {meta['seed']}"))
    if replaced and not overwrite:
        folder, what = replaced[0]
        raise ValueError(f"{folder}: holds the finished output of another run, {what}; this run has seed "
                         f"{seed}. Pass --overwrite to replace it, or choose another --out folder")
    return [f"{folder} ({what})" for folder, what in replaced]


def register(app: typer.Typer) -> None:
    @app.command("train-scorer")
    @cli_errors
    def _cmd(
        data_dir: Path = typer.Option(None, "--data-dir", help="Public datasets folder (../shared/data)."),
        out: Path = typer.Option(None, "--out", help="Model directory (default: dynacure model_dir())."),
        which: str = typer.Option(",".join(DEFAULT), "--which",
                                  help="Comma list of " + ", ".join(CHOICES)
                                  + " (transformer: a fine-tune of tens of minutes, resumable)"),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        no_eval: bool = typer.Option(False, "--no-eval", help="Skip the held-out evaluation."),
        eval_only: bool = typer.Option(False, "--eval-only",
                                       help="Recompute the held-out figures of the saved models (ngram, "
                                       "minilm, judge, transformer) without training."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Train the learned scorers (reward toxicity, judge, alignment) with held-out metrics."""
        from dynacure.io.public_data import default_data_dir
        from dynacure.signals.models import model_dir

        chosen = parse_which(which)
        target = out or model_dir()
        check_out_path(target, "dir")
        import torch

        torch.set_num_threads(1)  # the machine is shared; MiniLM encoding is the only torch work here
        if eval_only and no_eval:
            raise ValueError("--eval-only and --no-eval exclude each other")
        # a models folder is no place for another command's run, and a model of another seed is not
        # replaced without --overwrite (a retrain with the same seed is the same run)
        claim_out_dir(target, "train-scorer", make_request(), overwrite=overwrite)
        if not eval_only:
            check_replacing(target, chosen, seed, overwrite)
        if eval_only:
            summary = reevaluate_scorers(data_dir or default_data_dir(), target, chosen)
        else:
            summary = train_scorers(data_dir or default_data_dir(), target, chosen, seed,
                                    evaluate=not no_eval)
        for name, info in summary.items():
            typer.echo(f"{name}: {info['path']} ({info['seconds']}s)")
            for bench, res in (info.get("heldout") or {}).items():
                if isinstance(res, dict) and "auroc" in res:
                    typer.echo(f"  {bench}: AUROC {res['auroc']:.3f}  macro-F1 {res['macro_f1']:.3f}")
                elif isinstance(res, dict) and "pairwise_accuracy" in res:
                    typer.echo(f"  {bench}: pairwise accuracy {res['pairwise_accuracy']:.3f} (n={res['n']})")
