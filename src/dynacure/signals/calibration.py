"""Calibrating raw scorer outputs to probabilities against a small labeled probe set (CJE's AutoCal-R).

``IsotonicCalibrator`` fits a monotone map raw score -> P(label) with isotonic regression. On the probe
itself it is cross-fitted (K folds: each probe item is mapped by a model that never saw it) and shifted to
be mean-preserving (the mean calibrated probe score equals the probe's label mean). ``calibrated_mean``
gives the mean calibrated score of a set of scores with a bootstrap interval that refits the calibrator on
resampled probes, so the calibration's own uncertainty is in the interval (CJE's oracle-uncertainty-aware
inference). When many scores fall outside the probe's raw-score range the map is extrapolating flat; the
result is flagged and a warning logged (CJE: do not report a level there). Saved as JSON with knots only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from dynacure.io.atomic import write_json_atomic
from dynacure.io.jsonfile import read_versioned

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "isotonic_calibrator"


@dataclass(frozen=True)
class CalibratedMean:
    """Mean calibrated score with its bootstrap interval and the out-of-range diagnostic."""

    value: float
    low: float
    high: float
    n: int
    n_probe: int
    out_of_range_share: float
    out_of_range: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _knots(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(x, y, sample_weight=w)
    return np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float)


def _apply(knots: tuple[np.ndarray, np.ndarray], s: np.ndarray) -> np.ndarray:
    # sklearn's isotonic prediction with out_of_bounds="clip" is exactly this piecewise-linear interpolation.
    xk, yk = knots
    if len(xk) == 1:
        return np.full(len(s), yk[0])
    return np.interp(s, xk, yk)


def _check(scores: Any, name: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: non-finite value at index {bad}")
    return arr


class IsotonicCalibrator:
    """Cross-fitted, mean-preserving isotonic calibration of raw scores against probe labels in [0, 1]."""

    def __init__(self, n_folds: int = 5, seed: int = 0, out_of_range_threshold: float = 0.05) -> None:
        if n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {n_folds}")
        self.n_folds = n_folds
        self.seed = seed
        self.out_of_range_threshold = out_of_range_threshold
        self.probe_scores: np.ndarray | None = None
        self.probe_labels: np.ndarray | None = None
        self.folds: np.ndarray | None = None
        self.knots: tuple[np.ndarray, np.ndarray] | None = None
        self.oof: np.ndarray | None = None

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, scores: Any, labels: Any) -> IsotonicCalibrator:
        x = _check(scores, "probe scores")
        y = _check(labels, "probe labels")
        if len(x) != len(y):
            raise ValueError(f"probe has {len(x)} scores but {len(y)} labels")
        if len(x) < 2 * self.n_folds:
            raise ValueError(f"probe has {len(x)} items; need at least {2 * self.n_folds} for "
                             f"{self.n_folds} folds")
        if y.min() < 0 or y.max() > 1:
            raise ValueError("probe labels must lie in [0, 1]")
        rng = np.random.default_rng(self.seed)
        folds = np.empty(len(x), dtype=int)
        folds[rng.permutation(len(x))] = np.arange(len(x)) % self.n_folds
        oof = np.empty(len(x))
        for k in range(self.n_folds):
            held = folds == k
            oof[held] = _apply(_knots(x[~held], y[~held]), x[held])
        # Mean-preserving: out-of-fold predictions are shifted so their mean is the probe's label mean; the
        # shift is repeated because clipping to [0, 1] after one shift moves the mean again.
        for _ in range(100):
            gap = y.mean() - oof.mean()
            if abs(gap) < 1e-12:
                break
            oof = np.clip(oof + gap, 0.0, 1.0)
        self.probe_scores, self.probe_labels, self.folds, self.oof = x, y, folds, oof
        self.knots = _knots(x, y)  # in-sample isotonic fits are mean-preserving by construction (PAV)
        return self

    def _need_fit(self) -> None:
        if self.knots is None:
            raise RuntimeError("IsotonicCalibrator is not fitted; call fit(scores, labels) or load(path)")

    # -- use ----------------------------------------------------------------------------------------
    def transform(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities for new scores (the map fitted on the whole probe)."""
        self._need_fit()
        assert self.knots is not None
        return _apply(self.knots, _check(scores, "scores"))

    def cross_fitted(self) -> np.ndarray:
        """Calibrated probe scores, each from a fold model that did not see that item (mean-preserving)."""
        self._need_fit()
        assert self.oof is not None
        return self.oof.copy()

    def out_of_range_share(self, scores: Any) -> float:
        self._need_fit()
        assert self.probe_scores is not None
        s = _check(scores, "scores")
        if len(s) == 0:
            return 0.0
        lo, hi = self.probe_scores.min(), self.probe_scores.max()
        return float(np.mean((s < lo) | (s > hi)))

    def calibrated_mean(self, scores: Any = None, n_boot: int = 500, alpha: float = 0.05,
                        seed: int = 0) -> CalibratedMean:
        """Mean calibrated score of ``scores`` (default: the probe, cross-fitted) with a bootstrap interval.

        Each bootstrap replicate resamples the probe (and refits the map) and the scored set, so the
        interval carries both the sampling and the calibration uncertainty.
        """
        self._need_fit()
        assert self.probe_scores is not None and self.probe_labels is not None
        px, py = self.probe_scores, self.probe_labels
        on_probe = scores is None
        s = px if on_probe else _check(scores, "scores")
        if len(s) == 0:
            raise ValueError("calibrated_mean needs at least one score")
        value = float(self.cross_fitted().mean() if on_probe else self.transform(s).mean())
        rng = np.random.default_rng(seed)
        boots = np.empty(n_boot)
        for b in range(n_boot):
            pi = rng.integers(0, len(px), len(px))
            knots = _knots(px[pi], py[pi])
            si = pi if on_probe else rng.integers(0, len(s), len(s))
            boots[b] = _apply(knots, s[si]).mean()
        low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
        share = 0.0 if on_probe else self.out_of_range_share(s)
        flag = share > self.out_of_range_threshold
        if flag:
            log.warning("%.1f%% of scores fall outside the probe's raw-score range [%.4g, %.4g] (threshold "
                        "%.1f%%): the calibrated level is extrapolated and should not be reported as a level",
                        100 * share, px.min(), px.max(), 100 * self.out_of_range_threshold)
        return CalibratedMean(value, float(low), float(high), len(s), len(px), share, flag)

    # -- persistence --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._need_fit()
        assert self.knots is not None and self.probe_scores is not None and self.probe_labels is not None
        return {
            "format_version": FORMAT_VERSION, "kind": KIND, "n_folds": self.n_folds, "seed": self.seed,
            "out_of_range_threshold": self.out_of_range_threshold,
            "knots_x": self.knots[0].tolist(), "knots_y": self.knots[1].tolist(),
            "probe_scores": self.probe_scores.tolist(), "probe_labels": self.probe_labels.tolist(),
        }

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> IsotonicCalibrator:
        p = Path(path)
        data = read_versioned(p, FORMAT_VERSION, kind=KIND)
        for key in ("probe_scores", "probe_labels", "knots_x", "knots_y"):
            if key not in data:
                raise ValueError(f"{p}: missing field {key!r}")
        cal = cls(int(data["n_folds"]), int(data["seed"]), float(data["out_of_range_threshold"]))
        cal.fit(data["probe_scores"], data["probe_labels"])
        saved = (np.asarray(data["knots_x"]), np.asarray(data["knots_y"]))
        assert cal.knots is not None
        if len(saved[0]) != len(cal.knots[0]) or not np.allclose(saved[1], cal.knots[1]):
            raise ValueError(f"{p}: stored knots do not match the stored probe (file edited?)")
        return cal
