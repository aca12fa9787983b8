"""`dynacure score`: run signals over a corpus into attribute tables (local process pool or Ray tasks).

Writes ``ATTRS/<signal>/<shard>.parquet`` (``dynacure.io.attributes``), a done-marker per shard and signal,
``ATTRS/quarantine.jsonl`` and ``ATTRS/run.json``; a rerun into the same ATTRS skips finished shards.
Every check that can fail (signal names and arguments, corpus path, trained models, a resume folder scored
with other arguments) runs before any scoring, and fails with ``error: ...`` and exit code 2. A corpus with
no readable document is a failure too (the top quarantine reasons, ``--text-field`` when the text is in
another field), and like any failed run it leaves nothing behind (``dynacure.cli.failures``).
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dynacure.cli.console import make_console
from dynacure.cli.errors import cli_errors, error_message
from dynacure.cli.failures import INPUT_ERRORS, explain_no_documents, start_clean_run
from dynacure.cli.paths import check_out_path

console = make_console()


class Engine(StrEnum):
    local = "local"
    ray = "ray"


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
    rate = summary.docs_per_second()
    console.print(f"{summary.wall_seconds:.1f} s wall ({rate:,.0f} docs/s); attributes in {out}")
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
        signal_arg: list[str] = typer.Option(None, "--signal-arg", help="SIGNAL.KEY=VALUE passed to a "
                                             "signal's constructor (repeatable; VALUE read as JSON if it "
                                             "parses)"),
        seed: int = typer.Option(0, help="seed (recorded; used by a model trained on the fly)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
        text_field: str = typer.Option("text", "--text-field",
                                       help="the record field (JSONL) or column (Parquet) holding the text"),
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
        run = start_clean_run(out, "score")
        try:
            with text_field_default(text_field):
                summary = score_corpus(corpus, signals, out, shard_size=shard_size, workers=workers,
                                       signal_kwargs=kwargs, progress=progress, seed=seed)
        except INPUT_ERRORS as exc:
            run.failed(error_message(exc))
            raise
        if summary.n_docs == 0:  # scores of nothing: a rerun must not resume from these empty shards
            msg = explain_no_documents(corpus, out / "quarantine.jsonl", text_field)
            run.failed(msg)
            raise ValueError(msg)
        if print_summary(summary, out):
            raise typer.Exit(1)
