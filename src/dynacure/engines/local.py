"""Local scoring engine and the scoring driver both engines share (``run_scoring``).

The driver plans shards and hands each one to an executor (``dynacure.engines.executor``) as a
``ScoreTask``: the spans of records it holds, never its documents. The plan of a ``write_corpus`` folder
comes from its ``corpus.json`` without reading a record (``io.readers.manifest_spans``); any other input is
read once here (``iter_shards``: quarantine and the run-wide duplicate-id check happen in this pass) to cut
shards, and the workers read their spans again. A worker (``engines.common.score_task``) reads its shard,
skips signals whose done-marker matches, scores the rest and writes tables and markers itself; the driver
adds up counts, writes the quarantine and ``run.json``. At most ``2 * workers`` shards are in flight.
``workers <= 1`` runs the same code in this process (no pool), reusing the signals the pre-flight built.
The summary's ``wall_seconds`` runs from the call's start (``started``), so building the signals (loading
or training a model on the fly) counts; ``setup_seconds`` says how much of it that was.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from dynacure.engines.common import (
    DONE_DIR,
    QUARANTINE_FILE,
    SHOW_IDS,
    ScoreSummary,
    ScoreTask,
    build_signals,
    cached_signals,
    check_resume_compatible,
    check_signal_kwargs,
    new_summary,
    parse_signal_names,
    score_task,
)
from dynacure.engines.executor import Executor, LocalExecutor, start_pool_server
from dynacure.io.quarantine import Quarantine
from dynacure.io.readers import (
    CORPUS_MANIFEST,
    ReadStats,
    current_text_field,
    current_text_field_auto,
    iter_shards,
    list_data_files,
    manifest_spans,
)
from dynacure.progress import bar_columns
from dynacure.runinfo import write_run_info
from dynacure.signals.base import Signal

log = logging.getLogger(__name__)


def corpus_doc_count(corpus_path: str | Path) -> int | None:
    """Documents in a corpus folder per its ``corpus.json`` (for the progress bar); None if unknown."""
    manifest = Path(corpus_path) / CORPUS_MANIFEST
    try:
        n = json.loads(manifest.read_text(encoding="utf-8")).get("n_docs")
    except (OSError, ValueError, AttributeError):
        return None
    return int(n) if isinstance(n, int) else None


@contextmanager
def shard_progress(enabled: bool, total: int | None, label: str) -> Iterator[Callable[[str, int], None]]:
    """A Rich progress bar over documents, advanced per finished shard; a no-op when disabled."""
    if not enabled:
        yield lambda shard, n: None
        return
    columns = bar_columns("{task.description}", "docs")
    with Progress(*columns, console=Console(stderr=True), transient=False) as prog:
        task = prog.add_task(label, total=total)

        def advance(shard: str, n: int) -> None:
            prog.update(task, advance=n, description=f"{label} {shard}")

        yield advance


def seed_scoring(seed: int) -> None:
    """Seed Python and NumPy (and torch only if a signal already loaded it).

    Signals score deterministically; the seed matters only to a model trained on the fly. Importing torch
    just to seed it would cost seconds per run for signals that never use it (profanity, pii, quality).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def prepare(corpus_path: str | Path, signal_names: str | Sequence[str], attrs_dir: str | Path,
            shard_size: int, signal_kwargs: Mapping[str, Mapping[str, Any]] | None,
            on_checked: Callable[[], None] | None = None
            ) -> tuple[list[str], dict[str, dict[str, Any]], Path, dict[str, Signal]]:
    """Every check that can fail before work starts: signal names, arguments, corpus, resume folder, models.

    Returns the signals built by the check (a missing model fails here, not in a worker mid-run).
    """
    names = parse_signal_names(signal_names)
    kwargs = check_signal_kwargs(names, signal_kwargs)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, not {shard_size}")
    list_data_files(corpus_path)  # FileNotFoundError/ValueError naming the corpus path
    attrs = Path(attrs_dir)
    check_resume_compatible(attrs, names, kwargs)
    if on_checked is not None:  # the cheap checks passed: start slow things that run beside model loading
        on_checked()
    built = build_signals(names, kwargs)
    attrs.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(attrs, names)
    return names, kwargs, attrs, built


def remove_stale_temp_files(attrs: Path, names: Sequence[str]) -> int:
    """Delete temp files a killed run left behind (``atomic_path`` names them ``.<final>.*.tmp``).

    They never count as output (readers glob ``*.parquet``; done-markers are ``*.json``); removing them
    only keeps the folder tidy. One scoring run per ATTRS folder at a time is assumed.
    """
    n = 0
    stale = [*attrs.glob(f".{QUARANTINE_FILE}.*.tmp"), *attrs.glob(".run.json.*.tmp")]
    for name in names:
        for folder in (attrs / name, attrs / name / DONE_DIR):
            stale.extend(folder.glob(".*.tmp") if folder.exists() else ())
    for tmp in stale:
        tmp.unlink(missing_ok=True)
        n += 1
    if n:
        log.info("%s: removed %d temp files left by an interrupted run", attrs, n)
    return n


def finish(summary: ScoreSummary, stats: ReadStats, quar: Quarantine, started: float, corpus_path: str | Path,
           shard_size: int, workers: int, kwargs: dict[str, dict[str, Any]], seed: int | None = None
           ) -> ScoreSummary:
    summary.n_shards = stats.n_shards
    summary.n_docs = stats.n_kept
    summary.n_read = stats.n_read
    summary.n_quarantined = quar.total
    summary.quarantine_counts = quar.counts()
    summary.wall_seconds = time.perf_counter() - started
    config = {"corpus": str(corpus_path), "signals": summary.signals, "engine": summary.engine,
              "shard_size": shard_size, "workers": workers, "signal_kwargs": kwargs}
    write_run_info(summary.attrs_dir, "score", config, seed=seed, extra={"summary": summary.to_dict()},
                   paths=("corpus",))  # absolute and relative to ATTRS: readable from anywhere
    return summary


def plan_tasks(corpus_path: str | Path, shard_size: int, attrs: Path, names: Sequence[str],
               kwargs: Mapping[str, Mapping[str, Any]], quar: Quarantine, stats: ReadStats
               ) -> tuple[Iterator[ScoreTask], int | None]:
    """The shards to score, lazily, and the documents ``corpus.json`` promises (None: planned by reading).

    Without a usable ``corpus.json`` the records are read here (``iter_shards``, filling ``quar`` and
    ``stats``) and each shard's spans are handed on, its documents dropped.
    """
    text_field, auto = current_text_field(), current_text_field_auto()

    def task(name: str, spans: Sequence[Any]) -> ScoreTask:
        return ScoreTask(str(attrs), name, tuple(spans), tuple(names), kwargs, text_field, auto)

    planned = manifest_spans(corpus_path, shard_size)
    if planned is not None:
        promised = sum(s.get("n_docs", 0) for s in json.loads(
            (Path(corpus_path) / CORPUS_MANIFEST).read_text(encoding="utf-8"))["shards"])
        return (task(f"shard-{i:05d}", spans) for i, spans in enumerate(planned)), promised
    shards = iter_shards(corpus_path, shard_size=shard_size, quarantine=quar, stats=stats)
    return (task(shard.name, shard.spans) for shard in shards), None


def add_result(summary: ScoreSummary, res: Mapping[str, Any]) -> None:
    """Add one shard's counts (``score_task``'s result) to the summary."""
    for name, sec in res["seconds"].items():
        summary.seconds[name] += sec
        n_changed = res.get("changed", {}).get(name, (None, []))[0]
        # A shard re-scored in part: its other documents were resumed.
        summary.scored_docs[name] += res["n_docs"] if n_changed is None else n_changed
        summary.resumed_docs[name] += 0 if n_changed is None else res["n_docs"] - n_changed
    for name, (n_changed, first) in res.get("changed", {}).items():
        summary.rescored_docs[name] += n_changed
        summary.changed_shards[name] += 1
        room = SHOW_IDS - len(summary.changed_ids[name])
        summary.changed_ids[name].extend(first[:max(0, room)])
    for name in res.get("undigested", []):
        summary.undigested_shards[name] += 1
    for name in res["resumed"]:
        summary.skipped_shards[name] += 1
        summary.resumed_docs[name] += res["n_docs"]
    summary.signal_params.update(res["params"])


def run_scoring(executor: Executor, engine: str, corpus_path: str | Path, names: list[str],
                kwargs: dict[str, dict[str, Any]], attrs: Path, shard_size: int, workers: int,
                progress: bool, seed: int, started: float | None = None) -> ScoreSummary:
    """Score every shard on ``executor``; add up what the workers report; write quarantine and run.json.

    ``started``: when the caller's work began (``time.perf_counter()``, before ``prepare``), so the wall
    time covers the signals' loading or training; None: now."""
    summary = new_summary(engine, attrs, names)
    planner = ReadStats()  # what a planning read found (nothing for a corpus.json plan)
    totals = ReadStats()
    now = time.perf_counter()
    started = now if started is None else started
    summary.setup_seconds = now - started
    with Quarantine(attrs / QUARANTINE_FILE) as quar, \
            shard_progress(progress, corpus_doc_count(corpus_path), f"scoring ({engine})") as advance:
        tasks, promised = plan_tasks(corpus_path, shard_size, attrs, names, kwargs, quar, planner)
        for res in executor.map(score_task, tasks):
            for entry in res["quarantine"]:
                quar.add_entry(entry)
            totals.n_shards += 1
            totals.n_kept += res["n_docs"]
            totals.n_read += res["n_read"]
            add_result(summary, res)
            advance(res["shard"], res["n_docs"])
    totals.n_read += planner.n_quarantined  # the workers skipped what the planning read quarantined
    if promised is not None and (totals.n_kept != promised or quar.total):
        log.warning("%s: corpus.json lists %d documents, its files hold %d readable (%d quarantined): the "
                    "files changed since it was written, and shards were cut by its counts", corpus_path,
                    promised, totals.n_kept, quar.total)
    return finish(summary, totals, quar, started, corpus_path, shard_size, workers, kwargs, seed)


def score_corpus(corpus_path: str | Path, signal_names: str | Sequence[str], attrs_dir: str | Path,
                 shard_size: int = 10000, workers: int = 2,
                 signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                 progress: bool = True, seed: int = 0) -> ScoreSummary:
    """Score every document of ``corpus_path`` with each signal into ``attrs_dir`` (resumable).

    Writes ``ATTRS/<signal>/<shard>.parquet``, ``ATTRS/<signal>/_done/<shard>.json``,
    ``ATTRS/quarantine.jsonl`` (records the reader could not use) and ``ATTRS/run.json``.
    """
    started = time.perf_counter()
    seed_scoring(seed)
    names, kwargs, attrs, built = prepare(corpus_path, signal_names, attrs_dir, shard_size, signal_kwargs,
                                          on_checked=lambda: start_pool_server(workers))
    # Inline runs score with the signals the pre-flight built; pool workers build their own.
    inline = built if workers <= 1 else {}
    del built
    with LocalExecutor(workers) as executor, cached_signals(inline, kwargs):
        return run_scoring(executor, "local", corpus_path, names, kwargs, attrs, shard_size, workers,
                           progress, seed, started)


__all__ = ["score_corpus", "run_scoring", "plan_tasks", "ScoreSummary", "prepare", "shard_progress",
           "corpus_doc_count"]
