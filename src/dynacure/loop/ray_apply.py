"""Corpus-wide application of a saved loop policy on Ray Data: ``apply_policy_batch`` inside ``map_batches``.

The table is cut into the same contiguous chunks of ``batch_size`` rows the local application uses, each
chunk becomes one Ray block and one batch (``batch_size=None``), and every row carries its position, so the
probabilities come back in input order and equal the local ones bit for bit: the bandit scales its
probabilities to the budget per batch, so the batch boundaries must be the same on both engines.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ROW_COLUMN = "__dynacure_row"
CHUNK_COLUMN = "__dynacure_chunk"
PROB_COLUMN = "__dynacure_probability"


def _apply_chunk(batch: pd.DataFrame, policy_path: str) -> pd.DataFrame:
    """Ray Data task: the probabilities of one chunk (``apply_policy_batch`` caches the policy per worker).

    A plain function, not an actor class: Ray reuses its worker processes for tasks, where a new actor pool
    costs seconds to start on every call."""
    from dynacure.loop.policy import apply_policy_batch

    chunks = batch[CHUNK_COLUMN].unique()
    if len(chunks) != 1:
        # Ray merged blocks: the bandit's per-batch budget scaling would then differ from the local run
        raise RuntimeError(f"ray apply: a batch spans chunks {sorted(chunks.tolist())[:4]}")
    table = batch.drop(columns=[ROW_COLUMN, CHUNK_COLUMN]).reset_index(drop=True)
    p = apply_policy_batch(policy_path, table)
    return pd.DataFrame({ROW_COLUMN: batch[ROW_COLUMN].to_numpy(), PROB_COLUMN: np.asarray(p, float)})


def policy_probabilities_ray(
    policy_path: str | Path, table: pd.DataFrame, batch_size: int = 4096, num_cpus: int = 2
) -> np.ndarray:
    """Keep probability per row of ``table`` (input order) from the policy saved at ``policy_path``."""
    import ray

    from dynacure.engines.ray import ensure_ray

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(policy_path)
    if not (path / "policy.json").exists():
        raise FileNotFoundError(f"{path / 'policy.json'}: no saved policy")
    n = len(table)
    if n == 0:
        return np.zeros(0)
    ensure_ray(num_cpus)
    base = table.reset_index(drop=True)
    chunks = []
    for k, start in enumerate(range(0, n, batch_size)):
        part = base.iloc[start : start + batch_size].copy()
        part[ROW_COLUMN] = np.arange(start, start + len(part), dtype=np.int64)
        part[CHUNK_COLUMN] = k
        chunks.append(part)
    ds = ray.data.from_pandas(chunks).map_batches(
        _apply_chunk,
        fn_kwargs={"policy_path": str(path.resolve())},
        batch_size=None,  # one block = one chunk = one batch
        batch_format="pandas",
        num_cpus=1,
    )
    out = ds.to_pandas()
    rows = out[ROW_COLUMN].to_numpy(dtype=np.int64)
    if len(rows) != n or not np.array_equal(np.sort(rows), np.arange(n)):
        raise RuntimeError(f"ray apply: got {len(rows)} rows back for {n}, or rows repeated/missing")
    p = np.empty(n, dtype=np.float64)
    p[rows] = out[PROB_COLUMN].to_numpy(dtype=np.float64)
    log.info("applied policy %s to %d rows on Ray in %d chunks", path, n, len(chunks))
    return p
