"""Shared statistics: bootstrap confidence intervals used by evaluation, calibration, audits and reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% (by default) interval and the number of units it was computed over."""

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap over the first axis of ``values`` (the units: prompts, pairs, documents)."""
    arr = np.asarray(values)
    n = len(arr)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    point = float(statistic(arr))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([statistic(arr[i]) for i in idx], dtype=float)
    low, high = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2])
    return Estimate(point, float(low), float(high), n)


def paired_difference_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, alpha: float = 0.05,
                         seed: int = 0) -> Estimate:
    """Interval on mean(a - b) over the same units (paired bootstrap)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    return bootstrap_ci(a - b, np.mean, n_boot=n_boot, alpha=alpha, seed=seed)
