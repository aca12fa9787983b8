"""Local scoring engine: stream corpus shards through a process pool of signal workers.

The main process reads shards (``dynacure.io.readers.iter_shards``), skips (shard, signal) pairs that an
earlier run finished, and hands the rest to a ``ProcessPoolExecutor`` (forkserver context where the platform
has it, else spawn: no forked copies of
loaded models or threads). Each worker builds each signal once and keeps it for every shard it scores; it
writes the attribute table and then the done-marker itself, so only ids and texts cross process borders.
At most ``2 * workers`` shards are in flight, which bounds memory by shard size, not corpus size.
``workers <= 1`` runs the same code in this process (no pool), which tests and small corpora prefer.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
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
    ScoreSummary,
    build_signals,
    check_resume_compatible,
    check_signal_kwargs,
    json_safe,
    new_summary,
    parse_signal_names,
    score_shard,
    signals_to_score,
)
from dynacure.io.quarantine import Quarantine
from dynacure.io.readers import CORPUS_MANIFEST, ReadStats, iter_shards, list_data_files
from dynacure.progress import bar_columns
from dynacure.runinfo import write_run_info
from dynacure.signals.base import Signal, get_signal

log = logging.getLogger(__name__)

# One cache per worker process: each signal (per keyword arguments) is built once and reused.
_WORKER_SIGNALS: dict[str, Signal] = {}


def _cache_key(name: str, kwargs: Mapping[str, Any]) -> str:
    return f"{name}\x00{json.dumps(dict(kwargs), sort_keys=True)}"


def _signal_for(cache: dict[str, Signal], name: str, kwargs: Mapping[str, Any]) -> Signal:
    key = _cache_key(name, kwargs)
    sig = cache.get(key)
    if sig is None:
        sig = get_signal(name, **kwargs)
        cache[key] = sig
    return sig


def _worker_init() -> None:
    # Workers share the cores with each other: one BLAS/OpenMP thread each avoids oversubscription. Set
    # through the environment (read when torch/numpy load their thread pools) rather than by importing
    # torch here, which would cost seconds per worker for signals that never use it.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


# Imported once by the fork server; each worker forked from it starts with them loaded. With spawn, every
# worker paid the import of scikit-learn/scipy itself (seconds each on a busy 2-core machine), which on a
# 20k-document corpus cost more than the scoring.
_PRELOAD = ("dynacure.engines.local", "dynacure.signals.toxicity", "dynacure.signals.utility",
            "dynacure.signals.pii", "dynacure.signals.alignment")


def pool_context() -> multiprocessing.context.BaseContext:
    """forkserver (preloaded with the signal modules) where available, else spawn; never plain fork."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def start_pool_server(workers: int) -> None:
    """Start the fork server now, so its imports overlap with the checks and reading in this process."""
    if workers > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        pool_context()
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _run_job(attrs_dir: str, shard: str, ids: list[str], texts: list[str], todo: list[str],
             kwargs: dict[str, dict[str, Any]], cache: dict[str, Signal] | None = None) -> dict[str, Any]:
    """Score one shard with each signal in ``todo``; write tables and markers. Runs in a worker."""
    cache = _WORKER_SIGNALS if cache is None else cache
    seconds: dict[str, float] = {}
    params: dict[str, Any] = {}
    for name in todo:
        sig = _signal_for(cache, name, kwargs[name])
        try:
            seconds[name] = score_shard(sig, name, attrs_dir, shard, ids, texts, kwargs[name])
        except Exception as exc:
            exc.add_note(f"while scoring {shard} with signal {name!r}")
            raise
        params[name] = json_safe(sig.params())
    return {"shard": shard, "n_docs": len(ids), "seconds": seconds, "params": params}


class _Runner:
    """Runs jobs inline (``workers <= 1``) or on a process pool with bounded in-flight work."""

    def __init__(self, workers: int, attrs_dir: str, kwargs: dict[str, dict[str, Any]],
                 built: Mapping[str, Signal] | None = None) -> None:
        self.attrs_dir = attrs_dir
        self.kwargs = kwargs
        self.inline = workers <= 1
        self.max_in_flight = max(2, 2 * workers)
        self.pool: cf.ProcessPoolExecutor | None = None
        # Inline mode reuses the signals the pre-flight check already built.
        self.cache: dict[str, Signal] = {_cache_key(n, kwargs[n]): s for n, s in (built or {}).items()}
        if not self.inline:
            ctx = pool_context()
            self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
        self.pending: set[cf.Future[dict[str, Any]]] = set()

    def submit(self, shard: str, ids: list[str], texts: list[str],
               todo: list[str]) -> Iterator[dict[str, Any]]:
        """Start a job; yields the results of jobs that finished (waiting while too many are in flight)."""
        if self.inline:
            yield _run_job(self.attrs_dir, shard, ids, texts, todo, self.kwargs, self.cache)
            return
        assert self.pool is not None
        while len(self.pending) >= self.max_in_flight:
            yield from self._collect(cf.FIRST_COMPLETED)
        self.pending.add(self.pool.submit(_run_job, self.attrs_dir, shard, ids, texts, todo, self.kwargs))
        yield from self._collect(None)

    def _collect(self, how: str | None) -> Iterator[dict[str, Any]]:
        if how is None:
            done = {f for f in self.pending if f.done()}
        else:
            done, _ = cf.wait(self.pending, return_when=how)
        for fut in done:
            self.pending.discard(fut)
            yield fut.result()  # re-raises a worker's error here, with its note

    def drain(self) -> Iterator[dict[str, Any]]:
        while self.pending:
            yield from self._collect(cf.FIRST_COMPLETED)

    def close(self, failed: bool) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=failed)
            self.pool = None


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
    write_run_info(summary.attrs_dir, "score", config, seed=seed, extra={"summary": summary.to_dict()})
    return summary


def score_corpus(corpus_path: str | Path, signal_names: str | Sequence[str], attrs_dir: str | Path,
                 shard_size: int = 10000, workers: int = 2,
                 signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                 progress: bool = True, seed: int = 0) -> ScoreSummary:
    """Score every document of ``corpus_path`` with each signal into ``attrs_dir`` (resumable).

    Writes ``ATTRS/<signal>/<shard>.parquet``, ``ATTRS/<signal>/_done/<shard>.json``,
    ``ATTRS/quarantine.jsonl`` (records the reader could not use) and ``ATTRS/run.json``.
    """
    seed_scoring(seed)
    names, kwargs, attrs, built = prepare(corpus_path, signal_names, attrs_dir, shard_size, signal_kwargs,
                                          on_checked=lambda: start_pool_server(workers))
    summary = new_summary("local", attrs, names)
    stats = ReadStats()
    started = time.perf_counter()
    runner = _Runner(workers, str(attrs), kwargs, built if workers <= 1 else None)
    del built  # pool workers build their own; the pre-flight copies need not stay in memory
    failed = True

    def record(res: dict[str, Any], advance: Callable[[str, int], None]) -> None:
        for name, sec in res["seconds"].items():
            summary.seconds[name] += sec
            summary.scored_docs[name] += res["n_docs"]
        summary.signal_params.update(res["params"])
        advance(res["shard"], res["n_docs"])

    with Quarantine(attrs / QUARANTINE_FILE) as quar, \
            shard_progress(progress, corpus_doc_count(corpus_path), "scoring") as advance:
        try:
            for shard in iter_shards(corpus_path, shard_size=shard_size, quarantine=quar, stats=stats):
                ids = [d.id for d in shard.docs]
                todo = signals_to_score(attrs, names, shard.name, ids, summary)
                if not todo:
                    advance(shard.name, len(ids))
                    continue
                texts = [d.text for d in shard.docs]
                for res in runner.submit(shard.name, ids, texts, todo):
                    record(res, advance)
            for res in runner.drain():
                record(res, advance)
            failed = False
        finally:
            runner.close(failed)
    return finish(summary, stats, quar, started, corpus_path, shard_size, workers, kwargs, seed)


__all__ = ["score_corpus", "ScoreSummary", "prepare", "shard_progress", "corpus_doc_count"]
