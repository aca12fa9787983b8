"""Helpers shared by the suites: batched learner calls with progress, bootstrap of ratios, subsetting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dynacure.config import StrictModel, validate_config
from dynacure.learners.base import Learner
from dynacure.stats import Estimate, bootstrap_ci

# (suite name, units done, units total): the runner turns this into a Rich progress bar.
ProgressFn = Callable[[str, int, int], None]

N_BOOT = 1000
SUBSET_SEED = 0  # prompt/item subsets are fixed across runs so two models are compared on the same units


def noop_progress(_suite: str, _done: int, _total: int) -> None:
    return None


def parse_options(model: type[StrictModel], options: dict[str, Any] | None, suite: str) -> Any:
    return validate_config(options or {}, model, origin=f"options of suite {suite!r}")


def batched_logprob(learner: Learner, prefixes: Sequence[str], continuations: Sequence[str], *,
                    batch_size: int = 32, progress: ProgressFn | None = None, suite: str = "",
                    done_offset: int = 0, total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``learner.continuation_logprob`` in batches (memory, progress): (summed logprob, token counts)."""
    if len(prefixes) != len(continuations):
        raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations")
    lps: list[np.ndarray] = []
    ns: list[np.ndarray] = []
    total = total if total is not None else len(prefixes)
    for start in range(0, len(prefixes), batch_size):
        lp, n = learner.continuation_logprob(list(prefixes[start:start + batch_size]),
                                             list(continuations[start:start + batch_size]))
        lp = np.asarray(lp, dtype=float).reshape(-1)
        n = np.asarray(n, dtype=float).reshape(-1)
        want = len(prefixes[start:start + batch_size])
        if len(lp) != want or len(n) != len(lp):
            raise ValueError(f"learner returned {len(lp)} log-probs for {want} continuations")
        lps.append(lp)
        ns.append(n)
        if progress is not None:
            progress(suite, done_offset + min(start + batch_size, len(prefixes)), total)
    if not lps:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(lps), np.concatenate(ns)


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
