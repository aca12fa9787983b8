"""dynacure.stats: the intervals are BCa (checked against Efron's formulas on the same resamples), seeded,
and fall back to the percentile interval where BCa is undefined, without a warning."""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import numpy as np
import pytest

from dynacure.stats import Units, bootstrap_ci, paired_difference_ci, units_ci

PHI = NormalDist()


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The unit positions scipy.stats.bootstrap draws for one batch: rng.integers(0, n, (n_boot, n))."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _bca_by_hand(x: np.ndarray, stat, n_boot: int, seed: int, alpha: float = 0.05) -> tuple[float, float]:
    """Efron & Tibshirani (1993) 14.3: bias correction z0 from the share of resamples below the estimate
    (ties count half), acceleration a from the jackknife, then the adjusted percentiles."""
    theta = stat(x)
    boots = np.array([stat(x[i]) for i in _resamples(len(x), n_boot, seed)])
    z0 = PHI.inv_cdf(((boots < theta).sum() + (boots <= theta).sum()) / (2 * n_boot))
    jack = np.array([stat(np.delete(x, i, axis=0)) for i in range(len(x))])
    u = (len(x) - 1) * (jack.mean() - jack)
    a = (u**3).sum() / len(x) ** 3 / (6 * ((u**2).sum() / len(x) ** 2) ** 1.5)
    ends = []
    for z in (PHI.inv_cdf(alpha / 2), PHI.inv_cdf(1 - alpha / 2)):
        ends.append(PHI.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
    low, high = np.quantile(boots, ends)
    return float(low), float(high)


def test_bootstrap_ci_is_bca_on_skewed_data() -> None:
    x = np.random.default_rng(3).exponential(1.0, 60)
    est = bootstrap_ci(x, seed=7, n_boot=800)
    low, high = _bca_by_hand(x, np.mean, 800, 7)
    assert est.value == pytest.approx(x.mean())
    assert (est.low, est.high) == pytest.approx((low, high), rel=1e-12)
    # right-skewed data: BCa moves both ends up against the plain percentile interval of the same resamples
    pct = np.quantile(x[_resamples(60, 800, 7)].mean(axis=1), [0.025, 0.975])
    assert est.low > pct[0] and est.high > pct[1]


def test_a_statistic_of_rows_resamples_whole_rows_with_bca() -> None:
    rng = np.random.default_rng(1)
    rows = np.stack([rng.gamma(2.0, 3.0, 40), rng.integers(5, 40, 40).astype(float)], axis=1)

    def ratio(a: np.ndarray) -> float:
        return float(np.exp(a[:, 0].sum() / a[:, 1].sum()))

    est = bootstrap_ci(rows, ratio, n_boot=500, seed=2)
    assert (est.low, est.high) == pytest.approx(_bca_by_hand(rows, ratio, 500, 2), rel=1e-12)
    # the same metric as Units (values and weights resampled together, vectorised) gives the same interval
    u = units_ci(Units("exp_ratio", rows[:, 0], rows[:, 1]), seed=2, n_boot=500)
    assert (u.value, u.low, u.high) == pytest.approx((est.value, est.low, est.high), rel=1e-12)


def test_intervals_are_seeded() -> None:
    x = np.random.default_rng(0).normal(size=50)
    assert bootstrap_ci(x, seed=4) == bootstrap_ci(x, seed=4)
    assert bootstrap_ci(x, seed=4) != bootstrap_ci(x, seed=5)


def test_no_spread_falls_back_to_the_percentile_interval_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's DegenerateDataWarning must not reach the user
        est = bootstrap_ci(np.full(30, 0.25), seed=0)
        u = units_ci(Units("exp_ratio", np.full(5, 2.0), np.ones(5)), seed=0)
    assert (est.value, est.low, est.high) == (0.25, 0.25, 0.25)
    assert u.low == pytest.approx(math.exp(2)) and u.high == pytest.approx(math.exp(2))


def test_nan_resamples_give_the_percentile_interval_of_the_others() -> None:
    # accuracy over the rows of kind 1: a resample without such a row has no value
    t = np.array([[1, 1], [1, 0], [0, 1], [0, 0], [0, 1], [0, 1]], dtype=float)

    def acc(a: np.ndarray) -> float:
        s = a[a[:, 0] == 1]
        return float(s[:, 1].mean()) if len(s) else float("nan")

    est = bootstrap_ci(t, acc, n_boot=400, seed=3)
    boots = np.array([acc(t[i]) for i in _resamples(len(t), 400, 3)])
    assert np.isnan(boots).any()
    assert (est.low, est.high) == pytest.approx(tuple(np.nanquantile(boots, [0.025, 0.975])))
    assert (est.value, est.low, est.high) == (0.5, 0.0, 1.0)


def test_one_unit_and_no_unit() -> None:
    one = bootstrap_ci(np.array([0.7]))
    assert (one.value, one.low, one.high, one.n) == (0.7, 0.7, 0.7, 1)
    none = units_ci(Units("mean", np.zeros(0)), seed=0)
    assert none.n == 0 and all(math.isnan(v) for v in (none.value, none.low, none.high))


def test_paired_difference_uses_the_pairing() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 5.0, 80)
    a, b = base + 0.5 + rng.normal(0.0, 0.1, 80), base
    est = paired_difference_ci(a, b, seed=0)
    assert est.value == pytest.approx(np.mean(a - b))
    # the unit-to-unit spread (sd 5) cancels: the interval is the noise's (sd 0.1 / sqrt(80) ~ 0.011)
    assert 0.0 < est.high - est.low < 0.06 and est.low > 0.4
    with pytest.raises(ValueError, match="differ in shape"):
        paired_difference_ci(a, b[:-1])
