"""The budget helpers: greedy fill matches a plain sequential walk, and no draw ever exceeds the budget."""

from __future__ import annotations

import numpy as np
import pytest

from dynacure.selectors.budget import (
    budget_tokens,
    check_budget,
    greedy_fill,
    sample_to_budget,
    tiered_log_weights,
    top_to_budget,
)


def naive_fill(order, n_tokens, limit):
    keep = np.zeros(len(n_tokens), dtype=bool)
    left = limit
    for i in order:
        if n_tokens[i] <= left:
            keep[i] = True
            left -= n_tokens[i]
    return keep


@pytest.mark.parametrize("seed", range(25))
def test_greedy_fill_equals_sequential_walk(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    n_tokens = rng.integers(0, 50, size=n)
    order = rng.permutation(n)[: int(rng.integers(0, n + 1))]
    limit = int(rng.integers(0, int(n_tokens.sum()) + 5))
    got = greedy_fill(order, n_tokens, limit)
    assert np.array_equal(got, naive_fill(order, n_tokens, limit))
    assert n_tokens[got].sum() <= limit


def test_budget_tokens_and_refusals():
    assert budget_tokens(np.array([10, 20, 30]), 0.5) == 30
    assert budget_tokens(np.array([10, 20, 30]), 1.0) == 60
    for bad in (0.0, -0.1, 1.01, float("nan")):
        with pytest.raises(ValueError, match="budget"):
            check_budget(bad)


def test_top_to_budget_keeps_best_that_fit():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    n_tokens = np.array([40, 70, 20, 10])  # total 140, half = 70
    res = top_to_budget(scores, n_tokens, 0.5)
    # 0.9 (40) fits; 0.8 (70) does not; 0.7 (20) fits; 0.1 (10) fits -> exactly 70
    assert res.keep.tolist() == [True, False, True, True]
    assert res.kept_tokens == 70 == res.limit


def test_sample_to_budget_respects_budget_and_eligibility():
    rng = np.random.default_rng(0)
    n_tokens = rng.integers(1, 100, size=500)
    eligible = rng.random(500) < 0.7
    for seed in range(5):
        res = sample_to_budget(np.zeros(500), n_tokens, 0.3, seed, eligible=eligible, n_draws=8)
        assert n_tokens[res.keep].sum() <= res.limit
        assert not res.keep[~eligible].any()
        assert np.all(res.probability[~eligible] == 0)
        # small documents fill the remainder: within one max-document of the budget
        assert res.limit - res.kept_tokens < n_tokens.max()


def test_tiers_are_exhausted_in_order():
    n_tokens = np.full(100, 10)
    tier = np.repeat([0, 1, 2], [30, 30, 40])
    res = sample_to_budget(tiered_log_weights(tier), n_tokens, 0.45, seed=3, n_draws=4)  # 45 docs' worth
    assert res.keep[tier == 0].all()
    assert res.keep[tier == 1].sum() == 15
    assert not res.keep[tier == 2].any()


def test_gumbel_sampling_follows_weights():
    # Two groups, weight ratio e^2: the heavy group should be picked far more often at a small budget.
    n_tokens = np.full(400, 5)
    logw = np.r_[np.full(200, 2.0), np.zeros(200)]
    res = sample_to_budget(logw, n_tokens, 0.1, seed=0, n_draws=64)
    heavy, light = res.probability[:200].mean(), res.probability[200:].mean()
    assert heavy > 4 * light
    assert abs(res.probability.sum() - 40) < 1e-9  # every draw keeps exactly 40 docs


def test_uniform_sampling_needs_no_weight_array_and_reasons_share_strings():
    from dynacure.selectors.budget import keep_reasons, sample_to_budget, unit_weights

    rng = np.random.default_rng(5)
    n_tokens = rng.integers(1, 50, size=500)
    eligible = rng.random(500) > 0.2
    a = sample_to_budget(None, n_tokens, 0.3, seed=9, eligible=eligible, n_draws=8)
    b = sample_to_budget(np.zeros(500), n_tokens, 0.3, seed=9, eligible=eligible, n_draws=8)
    assert np.array_equal(a.keep, b.keep) and np.array_equal(a.probability, b.probability)
    assert not a.keep[~eligible].any() and a.kept_tokens <= a.limit
    with pytest.raises(ValueError, match="shape"):
        sample_to_budget(np.zeros(3), n_tokens, 0.3, seed=0)
    reasons = keep_reasons(a.keep, "sampled")
    assert set(reasons) == {"sampled", "budget"} and len({id(r) for r in reasons}) == 2
    w = unit_weights(4)
    assert w.tolist() == [1.0] * 4 and w.strides == (0,)
