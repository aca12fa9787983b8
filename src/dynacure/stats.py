"""Shared statistics: bootstrap confidence intervals used by evaluation, calibration, audits and reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

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


def units_ci(units: Units, seed: int, n_boot: int = 1000, alpha: float = 0.05) -> Estimate:
    """Percentile bootstrap of ``units.statistic`` over its units (stratified by group when grouped), so
    the interval is the one the Units define."""
    rng = np.random.default_rng(seed)
    boots = np.array([units.statistic(units.resample(rng)) for _ in range(n_boot)], dtype=float)
    low, high = np.nanquantile(boots, [alpha / 2, 1 - alpha / 2])
    return Estimate(units.statistic(), float(low), float(high), len(units))
