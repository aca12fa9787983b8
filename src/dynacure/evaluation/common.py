"""Helpers shared by the suites: batched learner calls with progress, bootstrap of ratios, subsetting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dynacure.config import StrictModel, validate_config
from dynacure.evaluation.checkpoint import ChunkStore
from dynacure.learners.base import Learner
from dynacure.stats import Estimate, bootstrap_ci

# (suite name, units done, units total): the runner turns this into a Rich progress bar.
ProgressFn = Callable[[str, int, int], None]

N_BOOT = 1000
CHECKPOINT_ITEMS = 512  # continuations per checkpoint chunk of the likelihood suites (whole batches)
SUBSET_SEED = 0  # prompt/item subsets are fixed across runs so two models are compared on the same units


def noop_progress(_suite: str, _done: int, _total: int) -> None:
    return None


def parse_options(model: type[StrictModel], options: dict[str, Any] | None, suite: str) -> Any:
    return validate_config(options or {}, model, origin=f"options of suite {suite!r}")


def batched_logprob(learner: Learner, prefixes: Sequence[str], continuations: Sequence[str], *,
                    batch_size: int = 32, progress: ProgressFn | None = None, suite: str = "",
                    done_offset: int = 0, total: int | None = None, store: ChunkStore | None = None,
                    key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``learner.continuation_logprob`` in batches (memory, progress): (summed logprob, token counts).

    With a ``store``, every ``CHECKPOINT_ITEMS`` continuations (whole batches) are one checkpoint chunk
    named ``<key>-<first item>``: kept once scored, reused by a resumed run."""
    if len(prefixes) != len(continuations):
        raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations")
    total = total if total is not None else len(prefixes)
    per_chunk = max(1, CHECKPOINT_ITEMS // max(batch_size, 1)) * batch_size

    def score(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        lps: list[np.ndarray] = []
        ns: list[np.ndarray] = []
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            lp, n = learner.continuation_logprob(list(prefixes[start:stop]), list(continuations[start:stop]))
            lp = np.asarray(lp, dtype=float).reshape(-1)
            n = np.asarray(n, dtype=float).reshape(-1)
            if len(lp) != stop - start or len(n) != len(lp):
                raise ValueError(f"learner returned {len(lp)} log-probs for {stop - start} continuations")
            lps.append(lp)
            ns.append(n)
            if progress is not None:
                progress(suite, done_offset + stop, total)
        return np.concatenate(lps), np.concatenate(ns)

    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, len(prefixes), per_chunk):
        hi = min(lo + per_chunk, len(prefixes))
        if store is None:
            parts.append(score(lo, hi))
            continue
        got = store.cached(f"{key}-{lo:08d}", lambda lo=lo, hi=hi: score(lo, hi),  # type: ignore[misc]
                           encode=lambda t: [t[0].tolist(), t[1].tolist()],
                           decode=lambda v: (np.asarray(v[0], dtype=float), np.asarray(v[1], dtype=float)))
        if len(got[0]) != hi - lo or len(got[1]) != hi - lo:
            raise ValueError(f"{store.folder}: checkpoint chunk {key}-{lo:08d} holds {len(got[0])} values "
                             f"for {hi - lo} continuations; delete the folder and run again")
        parts.append(got)
        if progress is not None:
            progress(suite, done_offset + hi, total)
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def mean_ci(values: np.ndarray, seed: int) -> Estimate:
    return bootstrap_ci(np.asarray(values, dtype=float), np.mean, n_boot=N_BOOT, seed=seed)


def ratio_ci(num: np.ndarray, den: np.ndarray, seed: int,
             transform: Callable[[float], float] = lambda x: x) -> Estimate:
    """Interval on ``transform(sum(num) / sum(den))`` by bootstrap over units (rows of num/den)."""
    arr = np.stack([np.asarray(num, dtype=float), np.asarray(den, dtype=float)], axis=1)

    def stat(a: np.ndarray) -> float:
        d = a[:, 1].sum()
        return float(transform(a[:, 0].sum() / d)) if d > 0 else float("nan")

    return bootstrap_ci(arr, stat, n_boot=N_BOOT, seed=seed)


def fixed_subset(n: int, k: int | None) -> np.ndarray:
    """Sorted indices of a size-``k`` subset of ``range(n)``, the same on every run; all when k is None."""
    if k is None or k >= n:
        return np.arange(n)
    if k <= 0:
        raise ValueError(f"subset size must be positive, got {k}")
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, size=k, replace=False))
