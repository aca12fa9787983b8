"""`dynacure curate CORPUS`: one strategy at a token budget -> curated corpus + per-document manifest.

A run that fails on its input leaves nothing behind (``cli.failures``): what it created is removed (OUT,
and its parents, when the run created them). When OUT held an earlier run, that run's files stay and
``OUT/FAILED`` says why this one failed (removed by the next run). An interrupted run (Ctrl-C) keeps its
files: a rerun reuses the scored attribute shards. When no record is readable the error names the top
quarantine reasons with the first place each occurred, and suggests ``--text-field`` when the records hold
their text in another field. A run that quarantines most (> 50%) of its records fails the same way unless
``--allow-quarantine``; each file's text field is picked as ``score`` does (``cli.score``).

OUT holding another run's finished output (another command's, or curate's with other options) is refused
unless ``--overwrite`` (``cli.paths.claim_out_dir``); the same command resumes. Progress speaks in a log
too (``progress.StageProgress``: the stages and the loop's policy steps), and a rerun says what it reused.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors, error_message
from dynacure.cli.failures import INPUT_ERRORS, explain_no_documents, start_clean_run
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request
from dynacure.cli.score import (
    ALLOW_QUARANTINE_HELP,
    SIGNAL_ARG_HELP,
    TEXT_FIELD_HELP,
    parse_signal_args,
    print_text_fields,
    quarantine_share_error,
)
from dynacure.progress import StageProgress


def _parse_params(items: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param takes KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw  # a bare word, e.g. preset=nano
    return params


def _signature_text(factory: Callable[..., Any]) -> tuple[list[str], bool, str]:
    """(parameter names, accepts any keyword, "name: type = default, ...") of a strategy's constructor."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return [], True, ""
    names, parts, var_kw = [], [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        names.append(p.name)
        part = p.name
        if p.annotation is not p.empty:  # a string under ``from __future__ import annotations``
            ann = p.annotation
            part += f": {ann if isinstance(ann, str) else getattr(ann, '__name__', ann)}"
        if p.default is not p.empty:
            part += f" = {p.default!r}"
        parts.append(part)
    return names, var_kw, ", ".join(parts)


def build_strategy(strategy: str, factory: Callable[..., Any], params: dict[str, Any]) -> Any:
    """Build the strategy with the ``--param`` values, or say in one line which parameter is wrong and what
    the strategy takes (not the constructor's own TypeError, which names Python internals)."""
    names, var_kw, described = _signature_text(factory)
    takes = f"strategy {strategy!r} takes: {described}" if described else f"strategy {strategy!r} takes none"
    unknown = [k for k in params if k not in names] if not var_kw else []
    if unknown:
        raise ValueError(f"--param {', '.join(unknown)}: no such parameter; {takes}")
    given = ", ".join(f"{k}={v!r}" for k, v in params.items())
    try:
        return factory(**params)
    except ValueError as exc:  # the strategy's own check of a value
        raise ValueError(f"--param {given}: {error_message(exc)} ({takes})") from None
    except (TypeError, AttributeError):  # a value of the wrong type reached the constructor
        raise ValueError(f"--param {given}: a value has the wrong type; {takes}") from None


def summary_table(summary: dict) -> Table:
    t = Table(title=f"curate: {summary['strategy']} at budget {summary['budget']:g}")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("records read", f"{summary['records_read']:,}")
    t.add_row("kept", f"{summary['kept']:,}")
    for reason, n in sorted(summary["kept_by_reason"].items()):
        t.add_row(f"  kept: {reason}", f"{n:,}")
    t.add_row("dropped", f"{summary['dropped']:,}")
    for reason, n in sorted(summary["dropped_by_reason"].items()):
        t.add_row(f"  dropped: {reason}", f"{n:,}")
    t.add_row("quarantined", f"{summary['quarantined']:,}")
    for reason, n in sorted(summary["quarantined_by_reason"].items()):
        t.add_row(f"  quarantined: {reason}", f"{n:,}")
    accounted = summary["kept"] + summary["dropped"] + summary["quarantined"]
    ok = "ok" if accounted == summary["records_read"] else "MISMATCH"
    t.add_row("kept + dropped + quarantined", f"{accounted:,} = records read ({ok})")
    t.add_row("tokens kept / budget", f"{summary['tokens_kept']:,} / {summary['tokens_budget']:,}")
    t.add_row("budget achieved", f"{summary['budget_achieved']:.1%}")
    cap = summary.get("disparity_cap")
    if cap:
        t.add_row(f"disparity cap {cap['max_ratio']:g}: re-admitted / dropped",
                  f"{cap['readmitted']:,} / {cap['dropped']:,}")
        t.add_row("worst group removal ratio before -> after",
                  f"{cap['worst_ratio_before']:.2f} -> {cap['worst_ratio_after']:.2f}")
    return t


def _describe_stage(stage: str, done: int, total: int) -> str:
    """A curate progress call in words: records read, the loop's policy steps, the other stages."""
    if stage == "read":
        return f"reading and scoring: {done:,} records" if done else "reading and scoring"
    if stage == "policy":
        return f"learning the policy: step {done:,} of {total:,}"
    return {"select": "selecting", "write": "writing the curated corpus"}.get(stage, stage)


def _run_notes(replaced: list[str], resumed: dict[str, int], out: Path) -> list[str]:
    """The lines said after the work (a failure's one line on stderr is its error): the runs --overwrite
    replaced, and what a rerun reused."""
    lines = [f"--overwrite: replaced {r} in {out}" for r in replaced]
    reused = _resumed_line(resumed)
    return [*lines, reused] if reused else lines


def _resumed_line(resumed: dict[str, int]) -> str | None:
    """What a rerun reused: "resumed: reused N attribute shards; policy checkpoint at step K"; None when
    nothing was (a fresh run)."""
    parts = []
    if resumed.get("attribute_shards"):
        n = resumed["attribute_shards"]
        parts.append(f"reused {n:,} attribute shard{'' if n == 1 else 's'}")
    if resumed.get("policy_step"):
        parts.append(f"policy checkpoint at step {resumed['policy_step']:,}")
    return f"resumed: {'; '.join(parts)}" if parts else None


def register(app: typer.Typer) -> None:
    @app.command("curate")
    @cli_errors
    def curate_cmd(
        corpus: Path = typer.Argument(..., help="Corpus file or folder."),
        strategy: str = typer.Option(..., "--strategy", "-s", help="Strategy, one of: @@strategies@@."),
        budget: float = typer.Option(..., "--budget", "-b", help="Share of pool tokens to keep, (0, 1]."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (curated corpus + manifest)."),
        attributes: Path | None = typer.Option(None, "--attributes", help="Stored attribute tables."),
        target: Path | None = typer.Option(None, "--target", help="Target/holdout corpus (dsir/color/ica)."),
        seed: int = typer.Option(0, "--seed"),
        weights: str | None = typer.Option(None, "--weights", help="Reward weights, e.g. 0.5,0.3,0.2."),
        redact_pii: bool = typer.Option(False, "--redact-pii", help="Redact PII in the kept documents."),
        learner: Path | None = typer.Option(
            None, "--learner",
            help="Saved learner or local Hugging Face model folder: the prior of color/ica, the model "
                 "ppo/reinforce/bandit train and probe in the loop (on a copy; cuda when available)."),
        param: list[str] = typer.Option([], "--param", help="Strategy parameter KEY=VALUE (JSON value)."),
        signal_arg: list[str] = typer.Option(
            None, "--signal-arg",
            help=SIGNAL_ARG_HELP + ": the signals curate scores itself (no --attributes) and a loop "
                 "strategy's probes"),
        shard_size: int = typer.Option(10000, "--shard-size", help="Documents per read/scoring shard."),
        out_shard_size: int = typer.Option(5000, "--out-shard-size", help="Documents per output shard."),
        disparity_cap: float | None = typer.Option(
            None, "--disparity-cap", metavar="RATIO",
            help="Re-admit documents of identity/dialect groups removed more than RATIO x the overall rate "
                 "(same token budget; see `dynacure audit`)."),
        text_field: str | None = typer.Option(None, "--text-field", help=TEXT_FIELD_HELP),
        allow_quarantine: bool = typer.Option(False, "--allow-quarantine", help=ALLOW_QUARANTINE_HELP),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        propose_labels: int | None = typer.Option(
            None, "--propose-labels", metavar="N",
            help="Write the N documents whose labels would help most to OUT/labels/proposal-RR.jsonl (id, "
                 "text, why) and stop (strategy raft_labels); label them, then run again with --labels."),
        labels: Path | None = typer.Option(
            None, "--labels", metavar="FILE",
            help="Your labels of the proposed documents (JSONL lines: id, label 1 toxic / 0 not): finish "
                 "the selection, or with --propose-labels propose the next round."),
    ) -> None:
        """Select documents with a strategy at a token budget; write the curated corpus and a manifest."""
        from dynacure.io.readers import list_data_files, text_field_default
        from dynacure.pipeline.curate import curate
        from dynacure.pipeline.strategies import selector_class
        from dynacure.selectors.budget import check_budget
        from dynacure.selectors.reward import RewardWeights

        # Refuse bad input before any work (the library checks again).
        check_out_path(out, "dir")
        list_data_files(corpus)  # a missing corpus or a format we cannot read (CSV), before OUT exists
        check_budget(budget)
        cls = selector_class(strategy)  # an unknown strategy is refused here
        rw = RewardWeights.parse(weights) if weights is not None else None
        params = _parse_params(param)
        signal_kwargs = parse_signal_args(signal_arg)
        if shard_size < 1 or out_shard_size < 1:
            raise ValueError("--shard-size and --out-shard-size must be >= 1")
        if disparity_cap is not None and not disparity_cap >= 1.0:
            raise ValueError(f"--disparity-cap takes a ratio >= 1, got {disparity_cap}")
        if propose_labels is not None and propose_labels < 1:
            raise ValueError(f"--propose-labels takes a number of documents >= 1, got {propose_labels}")
        if labels is not None and not labels.is_file():
            raise FileNotFoundError(f"{labels}: labels file not found (--labels)")
        if (propose_labels is not None or labels is not None) and \
                "labels_dir" not in _signature_text(cls)[0]:
            raise ValueError(f"--propose-labels/--labels: strategy {strategy!r} asks for no labels (use "
                             "raft_labels)")
        labelling = None if propose_labels is None and labels is None else {
            "labels_dir": out / "labels", "propose_labels": propose_labels,
            "labels_file": str(labels) if labels is not None else None}
        # bad strategy parameters are refused here, before any output exists
        build_strategy(strategy, cls, params)
        # Another run's finished output in OUT is refused here, before any work (the same run resumes).
        claim = claim_out_dir(out, "curate", make_request(
            {"corpus": corpus, "attributes": attributes, "target": target, "learner": learner},
            strategy=strategy, budget=budget, seed=seed, weights=weights, redact_pii=redact_pii,
            params=params, disparity_cap=disparity_cap, text_field=text_field,
            **({"signal_args": signal_kwargs} if signal_kwargs else {})), overwrite=overwrite)
        model = None
        if learner is not None:
            from dynacure.learners import load_learner

            model = load_learner(learner)
        console = make_console(stderr=True)
        run = start_clean_run(out, "curate")
        with StageProgress(console, _describe_stage) as progress, \
                text_field_default(text_field, auto=True) as choices:
            try:
                result = curate(corpus, out, strategy, budget, attributes=attributes, target=target,
                                seed=seed, weights=rw, redact_pii=redact_pii, params=params, learner=model,
                                shard_size=shard_size, out_shard_size=out_shard_size, progress=progress,
                                disparity_cap=disparity_cap, labelling=labelling,
                                signal_kwargs=signal_kwargs or None)
            except INPUT_ERRORS as exc:
                msg = error_message(exc)
                if "no readable documents" in msg:
                    msg = explain_no_documents(corpus, out / "quarantine.jsonl", text_field or "text")
                run.failed(msg)
                raise ValueError(msg) from None
        print_text_fields(choices, console)
        if "labels_proposed" in result.extra:  # step one of two: a person labels the proposal
            make_console().print(str(result.extra["labels_proposed"]), soft_wrap=True, highlight=False,
                                 markup=False)
            return
        got = result.summary  # most of the input quarantined: a failure unless --allow-quarantine
        share = quarantine_share_error(got["quarantined"], got["records_read"], out / "quarantine.jsonl",
                                       got["quarantined_by_reason"])
        if share is not None and not allow_quarantine:
            run.failed(f"{corpus}: {share}")
            raise ValueError(f"{corpus}: {share}")
        claim.finish()
        for line in _run_notes(claim.replaced, result.extra.get("resumed", {}), out):
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        make_console().print(summary_table(result.summary))
        make_console().print(f"curated corpus, manifest.parquet and summary.json in {out}")
