"""Ray scoring engine: the local engine's driver (``run_scoring``) on a ``RayExecutor``, same file layout.

Each shard is one Ray task (``dynacure.engines.common.score_task``): the worker reads the shard's records
from the corpus files itself and writes ``ATTRS/<signal>/<shard>.parquet`` and its done-marker itself, so
the driver streams no documents and writes no tables; it receives counts and quarantine entries. Outputs
are written atomically under names fixed by the shard, so a task retried after its worker died
(``max_retries``) neither loses nor doubles a document, and both engines give identical files and resume
each other's runs. Ray reuses worker processes, so a signal's model loads once per worker, not per shard.

On a cluster, set RAY_ADDRESS (or pass ``address``, or call ``ray.init`` first); the corpus and ATTRS must
be on storage every node sees, and the nodes must import the same dynacure. Otherwise a local Ray with
``num_cpus=max(2, workers)`` and no dashboard is started (and left running for reuse).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dynacure.engines.common import ScoreSummary
from dynacure.engines.executor import RayExecutor, init_ray
from dynacure.engines.local import prepare, run_scoring, seed_scoring

log = logging.getLogger(__name__)


def ensure_ray(num_cpus: int) -> None:
    """Ray initialised (``init_ray``) and Ray Data set up for ``loop.ray_apply``'s ordered ``map_batches``."""
    import ray

    init_ray(num_cpus=num_cpus)
    ctx = ray.data.DataContext.get_current()
    # Rows must come back in input order to be matched with the documents they were computed for.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # ours (Rich) is the one progress display


def score_corpus(corpus_path: str | Path, signal_names: str | Sequence[str], attrs_dir: str | Path,
                 shard_size: int = 10000, workers: int = 2,
                 signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None, progress: bool = True,
                 seed: int = 0, address: str | None = None, max_retries: int = 3) -> ScoreSummary:
    """Like ``dynacure.engines.local.score_corpus``, with each shard a Ray task (retried if its worker dies).

    ``workers`` sizes a locally started Ray (``num_cpus=max(2, workers)``); on a running cluster every CPU
    it has takes tasks.
    """
    started = time.perf_counter()  # the wall time covers building (loading, training) the signals
    seed_scoring(seed)
    names, kwargs, attrs, built = prepare(corpus_path, signal_names, attrs_dir, shard_size, signal_kwargs)
    del built  # the Ray workers build their own copies
    executor = RayExecutor(address=address, num_cpus=max(2, workers), max_retries=max_retries)
    return run_scoring(executor, "ray", corpus_path, names, kwargs, attrs, shard_size, workers, progress,
                       seed, started)


__all__ = ["score_corpus", "ensure_ray"]
