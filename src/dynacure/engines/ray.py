"""Ray scoring engine: the same signal code inside Ray Data ``map_batches``, same attribute layout.

Each signal runs as a callable class (``_SignalActor``) on an actor pool, so its model loads once per
actor, not once per batch. The driver streams shards from ``iter_shards`` in windows of about
``window_docs`` documents (memory stays bounded by the window, not the corpus), sends the pending rows of
a window through ``map_batches`` with order preserved, and writes each shard's table and done-marker with
the same functions as the local engine (``dynacure.engines.common``), so both engines give identical files
and either can resume the other's run. On a cluster, set RAY_ADDRESS (or call ``ray.init`` first); otherwise a
local Ray with ``num_cpus=max(2, workers)`` and no dashboard is started (and left running for reuse).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dynacure.engines.common import (
    QUARANTINE_FILE,
    ScoreSummary,
    new_summary,
    score_texts,
    signals_to_score,
    write_shard_outputs,
)
from dynacure.engines.local import corpus_doc_count, finish, prepare, seed_scoring, shard_progress
from dynacure.io.quarantine import Quarantine
from dynacure.io.readers import ReadStats, iter_shards

log = logging.getLogger(__name__)

_SECONDS = "__dynacure_seconds"
_PARAMS = "__dynacure_params"


class _SignalActor:
    """Builds one signal once per actor; scores a batch with the engines' shared ``score_texts``."""

    def __init__(self, name: str, kwargs: dict[str, Any]) -> None:
        from dynacure.signals.base import get_signal

        self.name = name
        self.signal = get_signal(name, **kwargs)
        self.params = json.dumps(self.signal.params(), sort_keys=True, default=str)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        t0 = time.perf_counter()
        cols = score_texts(self.signal, texts)
        per_doc = (time.perf_counter() - t0) / max(1, len(texts))
        out: dict[str, np.ndarray] = {"shard": batch["shard"], "id": batch["id"]}
        out.update(cols)
        out[_SECONDS] = np.full(len(texts), per_doc)
        out[_PARAMS] = np.array([self.params] * len(texts), dtype=object)
        return out


def ensure_ray(num_cpus: int) -> None:
    import ray

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):  # a running (multi-node) cluster: its resources are its own
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, configure_logging=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    # Rows must come back in input order to be regrouped into shards as they stream out.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # ours (Rich) is the one progress display


def _run_signal(name: str, kwargs: dict[str, Any], rows: list[tuple[str, list[str], list[str]]],
                attrs: Path, workers: int, summary: ScoreSummary, advance: Any, batch_size: int) -> None:
    """Score the pending shards of one window with one signal; write each shard as soon as it is whole."""
    import ray

    shard_col: list[str] = []
    id_col: list[str] = []
    text_col: list[str] = []
    for shard, ids, texts in rows:
        shard_col.extend([shard] * len(ids))
        id_col.extend(ids)
        text_col.extend(texts)
    table = pa.table({"shard": pa.array(shard_col, pa.string()), "id": pa.array(id_col, pa.string()),
                      "text": pa.array(text_col, pa.string())})
    # Inside an actor, score_texts splits a Ray batch further by the signal's own declared batch size.
    ds = ray.data.from_arrow(table).map_batches(
        _SignalActor, fn_constructor_kwargs={"name": name, "kwargs": kwargs}, batch_size=batch_size,
        concurrency=max(1, workers), batch_format="numpy", num_cpus=1,
    )
    expected = {shard: len(ids) for shard, ids, _ in rows}
    order = [shard for shard, _, _ in rows]
    buffers: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in order}
    got = dict.fromkeys(order, 0)
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        shards_in = batch["shard"]
        for shard in dict.fromkeys(shards_in.tolist()):
            mask = shards_in == shard
            buffers[shard].append({k: v[mask] for k, v in batch.items()})
            got[shard] += int(mask.sum())
            if got[shard] == expected[shard]:
                _write(name, kwargs, shard, buffers.pop(shard), attrs, summary, advance)
    missing = [s for s in buffers if buffers[s] or expected[s]]
    if missing:
        raise RuntimeError(f"ray engine: signal {name!r} returned incomplete results for shard(s) {missing}")


def _write(name: str, kwargs: dict[str, Any], shard: str, parts: list[dict[str, np.ndarray]], attrs: Path,
           summary: ScoreSummary, advance: Any) -> None:
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    ids = [str(i) for i in merged.pop("id")]
    merged.pop("shard")
    seconds = float(merged.pop(_SECONDS).sum())
    params = json.loads(str(merged.pop(_PARAMS)[0]))
    write_shard_outputs(attrs, name, shard, ids, merged, seconds, kwargs, params)
    summary.seconds[name] += seconds
    summary.scored_docs[name] += len(ids)
    summary.signal_params[name] = params
    advance(shard, 0)


def score_corpus(corpus_path: str | Path, signal_names: str | Sequence[str], attrs_dir: str | Path,
                 shard_size: int = 10000, workers: int = 2,
                 signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                 window_docs: int = 100_000, batch_size: int = 1024, seed: int = 0) -> ScoreSummary:
    """Like ``dynacure.engines.local.score_corpus``, with each signal running in Ray Data ``map_batches``."""
    seed_scoring(seed)
    names, kwargs, attrs, built = prepare(corpus_path, signal_names, attrs_dir, shard_size, signal_kwargs)
    del built  # the actors build their own copies
    ensure_ray(max(2, workers))
    summary = new_summary("ray", attrs, names)
    stats = ReadStats()
    started = time.perf_counter()
    window: list[tuple[str, list[str], list[str], list[str]]] = []

    def flush(advance: Any) -> None:
        for name in names:
            rows = [(s, ids, texts) for s, ids, texts, todo in window if name in todo and ids]
            for s, ids, _texts, todo in window:
                if name in todo and not ids:  # a shard whose records were all quarantined
                    write_shard_outputs(attrs, name, s, [], None, 0.0, kwargs[name], {})
            if rows:
                _run_signal(name, kwargs[name], rows, attrs, workers, summary, advance, batch_size)
        for s, ids, _texts, _todo in window:
            advance(s, len(ids))
        window.clear()

    with Quarantine(attrs / QUARANTINE_FILE) as quar, \
            shard_progress(progress, corpus_doc_count(corpus_path), "scoring (ray)") as advance:
        in_window = 0
        for shard in iter_shards(corpus_path, shard_size=shard_size, quarantine=quar, stats=stats):
            ids = [d.id for d in shard.docs]
            todo = signals_to_score(attrs, names, shard.name, ids, summary)
            if not todo:
                advance(shard.name, len(ids))
                continue
            window.append((shard.name, ids, [d.text for d in shard.docs], todo))
            in_window += len(ids)
            if in_window >= window_docs:
                flush(advance)
                in_window = 0
        if window:
            flush(advance)
    return finish(summary, stats, quar, started, corpus_path, shard_size, workers, kwargs, seed)


__all__ = ["score_corpus", "ensure_ray"]
