"""Shared statistics: bootstrap confidence intervals used by evaluation, calibration, audits and reports.

Intervals over units (prompts, pairs, texts) are ``scipy.stats.bootstrap``'s BCa intervals (bias-corrected
and accelerated: second-order accurate where the percentile interval is only first-order, which matters
for skewed metrics such as perplexity ratios and rare-event shares), with the rows of several arrays
resampled together (``paired=True``). Where BCa is undefined (no spread, a statistic that is NaN on some
resamples, fewer than two units) the percentile interval of the same resamples is reported instead. A
grouped ``Units`` (a macro mean over domains) is resampled within each group, which ``scipy.stats.bootstrap``
cannot do, so ``units_ci`` keeps its own stratified percentile bootstrap there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% (by default) interval and the number of units it was computed over."""

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


# Bound each (resamples x units) block scipy builds, bootstrap and jackknife alike, to ~16 MB of float64.
_BLOCK_CELLS = 2**21


def _interval(samples: tuple[np.ndarray, ...], statistic: Callable[..., Any], point: float, n_boot: int,
              alpha: float, seed: int, vectorized: bool) -> tuple[float, float]:
    """BCa interval of ``statistic`` over the units (position i of every sample is unit i), falling back
    to the percentile interval of the same resamples where BCa is undefined; seeded by ``seed``."""
    n = len(samples[0])
    if n < 2:  # every resample is the one unit (scipy refuses fewer than two observations)
        return point, point
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Degenerate data is expected (a metric with no spread) and handled below.
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        res = sps.bootstrap(samples, statistic, n_resamples=n_boot, batch=max(1, _BLOCK_CELLS // n),
                            vectorized=vectorized, paired=True, confidence_level=1 - alpha, method="BCa",
                            rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isfinite(low) and np.isfinite(high):
        return low, high
    boots = np.asarray(res.bootstrap_distribution, dtype=float)
    if not np.isfinite(boots).any():
        return float("nan"), float("nan")
    pl, ph = np.nanquantile(np.where(np.isfinite(boots), boots, np.nan), [alpha / 2, 1 - alpha / 2])
    return float(pl), float(ph)


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """BCa bootstrap over the first axis of ``values`` (the units: prompts, pairs, documents; the rows of a
    2-D array are resampled whole)."""
    arr = np.asarray(values)
    n = len(arr)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    point = float(statistic(arr))
    if statistic is np.mean and arr.ndim == 1:  # the common case, vectorised over resamples
        low, high = _interval((arr.astype(float),), np.mean, point, n_boot, alpha, seed, vectorized=True)
    else:  # any statistic of the rows: resample row positions and hand it the rows
        low, high = _interval((np.arange(n),), lambda i: statistic(arr[i]), point, n_boot, alpha, seed,
                              vectorized=False)
    return Estimate(point, low, high, n)


def paired_difference_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, alpha: float = 0.05,
                         seed: int = 0) -> Estimate:
    """Interval on mean(a - b) over the same units (paired bootstrap: resampling the per-unit differences
    draws unit i of a and of b together, the resamples ``scipy.stats.bootstrap(paired=True)`` draws)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    return bootstrap_ci(a - b, np.mean, n_boot=n_boot, alpha=alpha, seed=seed)


@dataclass
class Units:
    """The per-unit values behind one metric (prompts, texts, pairs), kept so that two learners evaluated
    on the same units can be compared by a paired bootstrap over those units.

    ``kind="mean"``: the metric is ``mean(values)`` (toxicity probability: 0/1 per prompt).
    ``kind="exp_ratio"``: the metric is ``exp(sum(values) / sum(weights))`` (perplexity: summed NLL per
    text over its word count). With ``groups`` (one label per unit) the metric is a macro mean over groups,
    and resampling is stratified by group: for "mean" the unweighted mean of the group means, for "exp_ratio"
    ``exp`` of the unweighted mean of the groups' ``sum(values) / sum(weights)`` (the geometric mean of the
    groups' perplexities: per-word NLL averaged over domains, so one domain whose perplexity is orders of
    magnitude larger does not decide the macro alone).
    ``ids`` name the units, in order, so a pairing can be checked.
    """

    kind: Literal["mean", "exp_ratio"]
    values: np.ndarray
    weights: np.ndarray | None = None
    ids: list[str] | None = None
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "exp_ratio"):
            raise ValueError(f"Units.kind must be 'mean' or 'exp_ratio', not {self.kind!r}")
        self.values = np.asarray(self.values, dtype=float)
        if self.kind == "exp_ratio":
            if self.weights is None:
                raise ValueError("Units of kind 'exp_ratio' need weights (the denominators)")
            self.weights = np.asarray(self.weights, dtype=float)
            if self.weights.shape != self.values.shape:
                raise ValueError(f"Units weights {self.weights.shape} differ from values {self.values.shape}")
        if self.ids is not None and len(self.ids) != len(self.values):
            raise ValueError(f"Units: {len(self.ids)} ids for {len(self.values)} values")
        if self.groups is not None and len(self.groups) != len(self.values):
            raise ValueError(f"Units: {len(self.groups)} groups for {len(self.values)} values")

    def __len__(self) -> int:
        return len(self.values)

    def resample(self, rng: np.random.Generator) -> np.ndarray:
        """One bootstrap resample of unit positions (stratified by group when there are groups)."""
        n = len(self.values)
        if self.groups is None:
            return rng.integers(0, n, size=n)
        labels = np.asarray(self.groups)
        parts = [np.flatnonzero(labels == g) for g in dict.fromkeys(self.groups)]
        return np.concatenate([p[rng.integers(0, len(p), size=len(p))] for p in parts])

    def statistic(self, idx: np.ndarray | None = None) -> float:
        """The metric over all units, or over the units ``idx`` (a bootstrap resample)."""
        if self.groups is not None:
            pos = np.arange(len(self.values)) if idx is None else np.asarray(idx)
            labels = np.asarray(self.groups)[pos]
            flat = Units(self.kind, self.values, self.weights)
            per = [flat.statistic(pos[labels == g]) for g in dict.fromkeys(labels.tolist())]
            if self.kind == "mean":
                return float(np.mean(per))
            return float(np.exp(np.mean(np.log(per))))
        v = self.values if idx is None else self.values[idx]
        if self.kind == "mean":
            return float(np.mean(v)) if len(v) else float("nan")
        w = self.weights if idx is None else self.weights[idx]  # type: ignore[index]
        total = float(np.sum(w))
        return float(np.exp(np.sum(v) / total)) if total > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "values": self.values.tolist()}
        if self.weights is not None:
            out["weights"] = self.weights.tolist()
        if self.ids is not None:
            out["ids"] = list(self.ids)
        if self.groups is not None:
            out["groups"] = list(self.groups)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Units:
        return cls(kind=d["kind"], values=np.asarray(d["values"], dtype=float),
                   weights=None if d.get("weights") is None else np.asarray(d["weights"], dtype=float),
                   ids=d.get("ids"), groups=d.get("groups"))


def _exp_ratio(v: np.ndarray, w: np.ndarray, axis: int = -1) -> np.ndarray:
    """``Units.statistic`` of kind "exp_ratio" along ``axis``: exp(sum(values) / sum(weights))."""
    total = np.sum(w, axis=axis)
    return np.where(total > 0, np.exp(np.sum(v, axis=axis) / np.where(total > 0, total, 1.0)), np.nan)


def units_ci(units: Units, seed: int, n_boot: int = 1000, alpha: float = 0.05) -> Estimate:
    """Bootstrap of ``units.statistic`` over its units, so the interval is the one the Units define: BCa
    (``scipy.stats.bootstrap``, values and weights of a unit resampled together) without groups, a
    stratified percentile bootstrap (resampled within each group) with groups."""
    if units.groups is None:
        point = units.statistic()
        if len(units) == 0:
            return Estimate(point, float("nan"), float("nan"), 0)
        mean = units.kind == "mean"
        samples = (units.values,) if mean else (units.values, np.asarray(units.weights))
        low, high = _interval(samples, np.mean if mean else _exp_ratio, point, n_boot, alpha, seed,
                              vectorized=True)
        return Estimate(point, low, high, len(units))
    rng = np.random.default_rng(seed)
    boots = np.array([units.statistic(units.resample(rng)) for _ in range(n_boot)], dtype=float)
    low, high = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2])
    return Estimate(units.statistic(), float(low), float(high), len(units))
