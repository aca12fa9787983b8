"""CoLoR-Filter and ICA with a nano TinyGPT: both prefer documents like the target / holdout set."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dynacure.selectors import get_selector
from dynacure.selectors.base import SelectionContext
from dynacure.selectors.color_filter import block_select
from dynacure.selectors.ica import ICAReweighter, NeighbourIndex, batch_weights, weights_in_batches


def test_block_select_takes_top_of_each_block():
    scores = np.arange(40, dtype=float)
    n_tokens = np.full(40, 10)
    keep = block_select(scores, n_tokens, budget=0.25, n_per_block=2, seed=0)  # blocks of 8, keep 2 each
    assert keep.sum() == 10
    order = np.random.default_rng(0).permutation(40)
    for b in range(5):
        block = order[8 * b: 8 * b + 8]
        top2 = set(block[np.argsort(-scores[block])[:2]])
        assert top2 == set(block[keep[block]])


def test_color_prefers_target_like_docs(small_topics, sports_target, nano_prior):
    t = small_topics
    sel_obj = get_selector("color", conditional_steps=25, n_per_block=4)
    ctx = SelectionContext(budget=0.2, seed=0, learner=nano_prior, target_texts=sports_target)
    before = [p.detach().clone() for p in nano_prior.model.parameters()]
    sel = sel_obj.select(t, ctx)
    sports = t["source"].to_numpy() == "sports"
    scores = sel_obj.last_scores
    assert scores[sports].mean() > scores[~sports].mean()
    share = sports[sel.keep].mean()
    assert share > 0.6  # base rate 0.25
    assert t["n_tokens"][sel.keep].sum() <= 0.2 * t["n_tokens"].sum()
    # the prior is left untouched (the conditional model is a copy)
    after = list(nano_prior.model.parameters())
    assert all(np.array_equal(a, b.detach()) for a, b in zip(before, after, strict=True))


def test_ica_weights_and_neighbours():
    w = batch_weights(np.array([0.0, 1.0, 3.0, 2.0]))
    assert w.mean() == pytest.approx(1.0) and w[0] == 0.0 and w.argmax() == 2
    assert np.all(batch_weights(np.full(5, 0.3)) == 1.0)
    ws = weights_in_batches(np.random.default_rng(0).random(100), 16)
    for i in range(0, 100, 16):
        assert ws[i:i + 16].mean() == pytest.approx(1.0)
    idx = NeighbourIndex(["apple pie recipe", "football match goal", "bake apple crumble"], k=2)
    nb = idx.fit_tfidf(["apple cake bake"]).query(texts=["apple cake bake"])
    assert nb.shape == (1, 2) and set(nb[0]) == {0, 2} and nb[0, -1] == 2  # nearest placed last
    vidx = NeighbourIndex(["a", "b", "c"], k=1, holdout_vectors=np.eye(3))
    assert vidx.query(vectors=np.array([[0.1, 0.9, 0.0], [1.0, 0.0, 0.2]]))[:, 0].tolist() == [1, 0]


def test_ica_scores_holdout_like_docs_higher(small_topics, sports_target, nano_prior):
    t = small_topics
    sel_obj = get_selector("ica", k=3, batch_size=32)
    ctx = SelectionContext(budget=0.2, seed=0, learner=nano_prior, target_texts=sports_target)
    sel = sel_obj.select(t, ctx)
    sports = t["source"].to_numpy() == "sports"
    s = sel_obj.last_scores
    assert s[sports].mean() > s[~sports].mean()
    assert sports[sel.keep].mean() > 0.6
    assert sel_obj.neighbour_source == "tfidf"
    kept_w = sel.weight[sel.keep]
    for i in range(0, len(kept_w), 32):
        assert kept_w[i:i + 32].mean() == pytest.approx(1.0)
    assert np.all(sel.weight[~sel.keep] == 0)


def test_ica_uses_embedding_column_when_present(small_topics, sports_target, nano_prior, monkeypatch):
    # Fake 2-d "embeddings" that encode the topic; the holdout gets the same kind from the patched signal.
    import dynacure.selectors.ica as ica

    t = small_topics.copy()
    t["embedding__vector"] = [np.array([1.0, 0.0]) if s == "sports" else np.array([0.0, 1.0])
                              for s in t["source"]]
    monkeypatch.setattr(ica, "holdout_embeddings", lambda texts: np.tile([1.0, 0.0], (len(texts), 1)))
    sel_obj = get_selector("ica", k=3)
    sel_obj.select(t.iloc[:40], SelectionContext(budget=0.5, learner=nano_prior, target_texts=sports_target))
    assert sel_obj.neighbour_source == "embedding"


def test_ica_reweighter_refreshes_and_measures_overhead(small_topics, sports_target, nano_prior):
    from dynacure.selectors.models import clone_learner

    learner = clone_learner(nano_prior)
    texts = small_topics["text"].tolist()[:64]
    rw = ICAReweighter(learner, texts, sports_target, k=3, refresh_every=2)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(4):
        idx = rng.choice(len(texts), size=16, replace=False)
        rw.step(idx)
        w = rw.weights(idx)
        assert w.mean() == pytest.approx(1.0)
    wall = time.perf_counter() - t0
    rep = rw.report()
    assert rep["steps"] == 4
    assert rep["documents_scored"] >= 16 * 2  # refreshed as steps pass, not scored once
    assert rep["scoring_seconds"] > 0 and rep["training_seconds"] > 0
    assert rep["overhead"] == pytest.approx(rw.scoring_seconds / rw.training_seconds)
    assert rep["scoring_seconds"] + rep["training_seconds"] <= wall + 1e-6
    # a cached score is reused within the refresh window
    n = rw.n_scored
    rw.weights(idx)
    assert rw.n_scored == n


def test_color_counts_the_positions_it_ran(small_topics, sports_target, nano_prior):
    t = small_topics.iloc[:60]
    sel_obj = get_selector("color", conditional_steps=3)
    sel_obj.select(t, SelectionContext(budget=0.3, seed=0, learner=nano_prior, target_texts=sports_target))
    # one window of at most n_ctx tokens per document, through the prior and the conditional model
    lengths = [min(len(ids), nano_prior.n_ctx) for ids in nano_prior.encode(t["text"].tolist())]
    assert sel_obj.cost["forward_positions"] == 2 * sum(lengths)
    assert 0 < sel_obj.cost["train_positions"] <= 3 * nano_prior.batch_size * nano_prior.n_ctx
    assert sel_obj.cost["params"] == nano_prior.num_parameters()


def test_untrained_learner_is_trained_on_a_copy_before_scoring(small_topics):
    from dynacure.learners.tiny_gpt import TinyGPT
    from dynacure.selectors.models import prior_learner

    texts = small_topics["text"].tolist()
    fresh = TinyGPT.create(texts, preset="nano", seed=0)
    prior = prior_learner(fresh, texts, steps=5, n_docs=50)
    assert prior is not fresh and prior.step == 5 and fresh.step == 0
    assert prior_learner(prior, texts) is prior  # a trained learner is used as it is


def test_ica_scores_only_the_first_score_tokens(small_topics, sports_target, nano_prior):
    from dynacure.selectors.ica import default_score_tokens, ica_scores

    m = default_score_tokens(nano_prior)
    assert m == nano_prior.n_ctx // 2
    texts = [(t + " ") * 4 for t in small_topics["text"].tolist()[:20]]
    assert all(len(ids) > m + 4 for ids in nano_prior.encode(texts))
    contexts = [sports_target[i % len(sports_target)] for i in range(len(texts))]
    base = ica_scores(nano_prior, texts, contexts, score_tokens=m)
    # what follows the first m tokens does not change the score (the context keeps its half of the window)
    longer = [t + " tail" * (3 * nano_prior.n_ctx) for t in texts]
    assert np.allclose(ica_scores(nano_prior, longer, contexts, score_tokens=m), base, atol=1e-6)
    assert np.all(np.isfinite(base)) and np.std(base) > 0
    # the context is in the window: scores are not all zero
    assert np.abs(base).mean() > 1e-3
