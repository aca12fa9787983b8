"""DSIR: importance resampling toward a target distribution (sports target, sports+cooking pool)."""

from __future__ import annotations

import numpy as np
import pytest

from dynacure.selectors import get_selector
from dynacure.selectors.base import SelectionContext
from dynacure.selectors.dsir import BagOfNgrams, DSIRSelector


def test_dsir_selects_target_like_documents(topics, sports_target):
    base_rate = (topics["source"] == "sports").mean()  # 0.25
    ctx = SelectionContext(budget=0.2, seed=0, target_texts=sports_target)
    sel = get_selector("dsir").select(topics, ctx)
    share = (topics["source"][sel.keep] == "sports").mean()
    assert base_rate == pytest.approx(0.25)
    assert share > 0.95  # >> base rate
    assert topics["n_tokens"][sel.keep].sum() <= 0.2 * topics["n_tokens"].sum()
    # the log importance weights separate the topics: every sports doc outranks every cooking doc here
    sel_obj = DSIRSelector()
    logw = sel_obj.log_importance(topics["text"].tolist(), sports_target)
    is_sports = topics["source"].to_numpy() == "sports"
    assert logw[is_sports].min() > logw[~is_sports].max()


def test_dsir_is_a_resampler_not_a_top_k(make_topics):
    # With a flat target (the pool itself) the weights are ~uniform and selection spreads over both topics.
    t = make_topics(100, 100, seed=4)
    flat = t["text"].tolist()
    sel = get_selector("dsir").select(t, SelectionContext(budget=0.3, seed=0, target_texts=flat))
    share = (t["source"][sel.keep] == "sports").mean()
    assert 0.3 < share < 0.7
    # different seeds give different (but equally budgeted) samples
    sel2 = get_selector("dsir").select(t, SelectionContext(budget=0.3, seed=1, target_texts=flat))
    assert not np.array_equal(sel.keep, sel2.keep)


def test_bag_of_ngrams_uses_unigrams_and_bigrams():
    bag = BagOfNgrams(n_buckets=1000)
    x = bag.features(["red fox", "fox red"])
    # 2 unigrams + 1 bigram each; same unigrams, different bigrams
    assert x[0].sum() == 3 and x[1].sum() == 3
    assert (x[0] != x[1]).nnz > 0
    bag.fit_counts(x)
    assert np.exp(bag.log_prob).sum() == pytest.approx(1.0)


def test_dsir_needs_target(topics):
    with pytest.raises(ValueError, match="target"):
        get_selector("dsir").select(topics, SelectionContext(budget=0.2))
