"""Combining a metric over seeds: known answers, and intervals that stay inside the seeds' range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynacure.report.data import combine_seeds


def test_one_seed_keeps_its_interval() -> None:
    assert combine_seeds(np.array([0.4]), np.array([0.3]), np.array([0.5])) == (0.4, 0.3, 0.5)


def test_three_seeds_formula() -> None:
    v, lo, hi = np.array([0.2, 0.4, 0.6]), np.array([0.1, 0.3, 0.5]), np.array([0.3, 0.5, 0.7])
    m, low, high = combine_seeds(v, lo, hi)
    se = 0.2 / 3.92
    half = 1.96 * math.sqrt(se**2 / 3 + np.var(v, ddof=1) / 3)
    assert m == pytest.approx(0.4)
    assert (low, high) == pytest.approx((0.4 - half, 0.4 + half))


def test_interval_never_leaves_the_seeds_hull() -> None:
    m, low, high = combine_seeds(np.array([0.0, 0.0, 0.01]), np.array([0.0, 0.0, 0.0]),
                                 np.array([0.0, 0.0, 0.03]))
    assert m == pytest.approx(0.01 / 3)
    assert low == 0.0 and 0.0 < high <= 0.03
