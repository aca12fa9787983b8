"""`dynacure score`: run signals over a corpus into attribute tables (local process pool or Ray tasks).

Writes ``ATTRS/<signal>/<shard>.parquet`` (``dynacure.io.attributes``), a done-marker per shard and signal,
``ATTRS/quarantine.jsonl`` and ``ATTRS/run.json``; a rerun into the same ATTRS skips finished shards.
Every check that can fail (signal names and arguments, corpus path, trained models, a resume folder scored
with other arguments) runs before any scoring, and fails with ``error: ...`` and exit code 2. A corpus with
no readable document is a failure too (the top quarantine reasons, ``--text-field`` when the text is in
another field), and so is one whose records are mostly (> 50%) quarantined, unless ``--allow-quarantine``;
like any failed run it leaves nothing behind (``dynacure.cli.failures``).

The text field is picked per file (``io.readers.resolve_text_field``): ``--text-field`` (default ``text``)
where a file has it, else the common name it has (``content``, ``document``, ``body``, ...); the command
prints the files read from another field. A resume re-scores the documents whose text changed and says
how many and which. The wall time covers the whole call, the signals' loading or training included.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors, error_message
from dynacure.cli.failures import INPUT_ERRORS, explain_no_documents, quarantine_reasons, start_clean_run
from dynacure.cli.paths import OVERWRITE_HELP, check_out_path, claim_out_dir, make_request

if TYPE_CHECKING:  # the readers import pyarrow: not at CLI start-up
    from rich.console import Console

    from dynacure.io.readers import TextFieldChoices

console = make_console()

MAX_QUARANTINE_SHARE = 0.5  # a run that quarantines more of its input fails unless --allow-quarantine
ALLOW_QUARANTINE_HELP = ("accept a run that quarantines most (> 50%) of its records (by default it fails, "
                         "naming the top reasons)")
TEXT_FIELD_HELP = ("the record field (JSONL) or column (Parquet) holding the text; a file without it is read "
                   "from the common text field it has (text, content, document, body, ...), said per file")
SHOW_FILES = 10  # files listed by name when their text field was picked


def print_text_fields(choices: TextFieldChoices, out: Console | None = None) -> None:
    """Say which files were read from another text field than the one asked for (and why)."""
    out = out or console
    switched = choices.switched() if choices else []
    if not switched:
        return
    for c in switched[:SHOW_FILES]:
        out.print(f"text field of {c.file}: {c.field!r} ({c.why})")
    if len(switched) > SHOW_FILES:
        out.print(f"... and {len(switched) - SHOW_FILES} more files read from another field")
    rest = len(choices) - len(switched)
    if rest:
        out.print(f"text field of the other {rest:,} file{'s' if rest != 1 else ''}: {choices.requested()!r}")


def quarantine_share_error(n_quarantined: int, n_read: int, qpath: Path,
                           counts: dict[str, int] | None = None) -> str | None:
    """The error for a run that quarantined more than half of its records (None when it did not): the
    share, the top reasons with their first FILE:LINE, and how to accept it."""
    if n_read <= 0 or n_quarantined <= MAX_QUARANTINE_SHARE * n_read:
        return None
    from dynacure.io.quarantine import read_quarantine

    _, reasons = quarantine_reasons(qpath)
    in_file = {e["reason"] for e in read_quarantine(qpath)} if qpath.is_file() else set()
    # reasons the quarantine file does not hold (curate's missing_attributes)
    extra = [f"{n:,} {r}" for r, n in sorted((counts or {}).items(), key=lambda kv: -kv[1])
             if r not in in_file]
    reasons = ", ".join([p for p in (reasons, *extra) if p])
    return (f"{n_quarantined:,} of {n_read:,} records ({n_quarantined / n_read:.0%}) quarantined: {reasons}; "
            "pass --allow-quarantine to accept this (or --text-field to read the text from another field)")


class Engine(StrEnum):
    local = "local"
    ray = "ray"


SIGNAL_ARG_HELP = ("SIGNAL.KEY=VALUE passed to a signal's constructor (repeatable; VALUE read as JSON if it "
                   "parses)")


def parse_signal_args(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["quality.density_width=2", "pii.types=[\\"email\\"]"]`` -> ``{signal: {key: value}}``.

    A value is read as JSON when it parses (numbers, booleans, lists), else kept as a string.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        signal, dot, name = key.partition(".")
        if not sep or not dot or not signal.strip() or not name.strip():
            raise ValueError(f"--signal-arg {item!r}: expected SIGNAL.KEY=VALUE, "
                             "e.g. quality.density_width=2")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(signal.strip(), {})[name.strip()] = value
    return out


def summary_table(summary: Any) -> Table:
    table = Table(title=f"dynacure score ({summary.engine} engine)")
    table.add_column("signal")
    table.add_column("scored now", justify="right")
    table.add_column("resumed", justify="right")
    table.add_column("quarantined", justify="right")
    table.add_column("total", justify="right")
    table.add_column("score s", justify="right")
    for name in summary.signals:
        scored = summary.scored_docs.get(name, 0)
        resumed = summary.resumed_docs.get(name, 0)
        table.add_row(name, f"{scored:,}", f"{resumed:,} ({summary.skipped_shards.get(name, 0)} shards)",
                      f"{summary.n_quarantined:,}", f"{scored + resumed + summary.n_quarantined:,}",
                      f"{summary.seconds.get(name, 0.0):.1f}")
    return table


def print_summary(summary: Any, out: Path) -> list[str]:
    """Print the run's accounting; returns the accounting errors (empty when everything adds up)."""
    console.print(summary_table(summary))
    reasons = ", ".join(f"{k}={v:,}" for k, v in summary.quarantine_counts.items()) or "none"
    console.print(f"read {summary.n_read:,} records in {summary.n_shards} shards: {summary.n_docs:,} "
                  f"documents, {summary.n_quarantined:,} quarantined ({reasons})")
    if summary.n_quarantined:
        console.print(f"quarantine entries: {out / 'quarantine.jsonl'}")
    errors = summary.accounting_errors()
    if errors:
        for e in errors:
            console.print(f"[bold red]accounting error:[/] {e}")
    else:
        console.print(f"[green]every record accounted for[/]: scored + quarantined == read "
                      f"({summary.n_docs:,} + {summary.n_quarantined:,} == {summary.n_read:,}) "
                      "for each signal")
    for name in summary.signals:
        n_changed = summary.rescored_docs.get(name, 0)
        if n_changed:
            n_shards = summary.changed_shards.get(name, 0)
            first = ", ".join(summary.changed_ids.get(name, []))
            more = ", ..." if n_changed > len(summary.changed_ids.get(name, [])) else ""
            docs = f"{n_changed:,} document{'s' if n_changed != 1 else ''}"
            shards = f"{n_shards} shard{'s' if n_shards != 1 else ''}"
            console.print(f"[yellow]{name}: re-scored {docs} whose text changed since it was scored "
                          f"({shards}; {first}{more})[/]")
        if summary.undigested_shards.get(name, 0):
            console.print(f"[yellow]{name}: re-scored {summary.undigested_shards[name]} shards scored by an "
                          "older dynacure (no text digests to tell what changed)[/]")
    rate = summary.docs_per_second()
    console.print(f"{summary.wall_seconds:.1f} s wall, of which {summary.setup_seconds:.1f} s checking and "
                  f"building the signals (loading or training models) ({rate:,.0f} docs/s); attributes in "
                  f"{out}")
    return errors


def register(app: typer.Typer) -> None:
    @app.command("score")
    @cli_errors
    def score(
        corpus: Path = typer.Argument(..., help="corpus: a file or a folder (JSONL(.gz), Parquet, text, HF)"),
        signals: str = typer.Option(..., "--signals", "-s", help="comma-separated signal names, of: "
                                    "@@signals@@ (e.g. profanity,quality,pii)"),
        out: Path = typer.Option(..., "--out", "-o",
                                 help="attributes folder (ATTRS/<signal>/<shard>.parquet)"),
        engine: Engine = typer.Option(Engine.local, "--engine", help="local process pool or Ray tasks"),
        workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", "-w", min=1,
                                    help="worker processes (local) or CPUs of a locally started Ray (ray); "
                                         "1 = score in this process"),
        shard_size: int = typer.Option(10000, "--shard-size", min=1, help="documents per shard (the unit "
                                       "of resume)"),
        signal_arg: list[str] = typer.Option(None, "--signal-arg", help=SIGNAL_ARG_HELP),
        seed: int = typer.Option(0, help="seed (recorded; used by a model trained on the fly)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
        text_field: str | None = typer.Option(None, "--text-field", help=TEXT_FIELD_HELP),
        allow_quarantine: bool = typer.Option(False, "--allow-quarantine", help=ALLOW_QUARANTINE_HELP),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Score every document of CORPUS with each signal into attribute tables (resumable per shard)."""
        from dynacure.io.readers import text_field_default

        check_out_path(out, "dir")
        kwargs = parse_signal_args(signal_arg)
        if engine is Engine.ray:
            try:
                import ray  # noqa: F401
            except ImportError:
                raise ValueError("--engine ray needs the 'ray' package (pip install 'ray[data]')") from None
            from dynacure.engines.ray import score_corpus
        else:
            from dynacure.engines.local import score_corpus
        # ATTRS holding another command's run, or the scores of another corpus, is refused before any work;
        # more signals of the same corpus may be added (the request is the corpus)
        claim = claim_out_dir(out, "score", make_request({"corpus": corpus}), overwrite=overwrite)
        run = start_clean_run(out, "score")
        try:
            with text_field_default(text_field, auto=True) as choices:
                summary = score_corpus(corpus, signals, out, shard_size=shard_size, workers=workers,
                                       signal_kwargs=kwargs, progress=progress, seed=seed)
        except INPUT_ERRORS as exc:
            run.failed(error_message(exc))
            raise
        print_text_fields(choices)
        if summary.n_docs == 0:  # scores of nothing: a rerun must not resume from these empty shards
            msg = explain_no_documents(corpus, out / "quarantine.jsonl", text_field or "text")
            run.failed(msg)
            raise ValueError(msg)
        errors = print_summary(summary, out)
        share = quarantine_share_error(summary.n_quarantined, summary.n_read, out / "quarantine.jsonl")
        if share is not None and not allow_quarantine:
            msg = f"{corpus}: {share}"
            run.failed(msg)
            raise ValueError(msg)
        claim.finish()
        if errors:
            raise typer.Exit(1)
