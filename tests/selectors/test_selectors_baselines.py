"""B0-B3 on small tables with known answers: random, heuristic, classifier (re-route), RAFT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynacure.selectors import available_selectors, get_selector
from dynacure.selectors.base import SelectionContext
from dynacure.selectors.classifier import harm_buckets
from dynacure.selectors.reward import RewardWeights, composite_reward


def scored_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_tokens = rng.integers(5, 80, size=n)
    return pd.DataFrame({
        "id": [f"d{i}" for i in range(n)],
        "source": rng.choice(["web", "forum"], size=n),
        "n_tokens": n_tokens,
        "text": ["plain words here " * int(k // 3 + 1) for k in n_tokens],
        "toxicity_ngram__toxicity": rng.random(n),
        "toxicity_ngram__insult": rng.random(n) * 0.5,
        "alignment__score": rng.random(n),
        "quality__score": rng.random(n),
    })


def test_registry_lists_builtins_and_refuses_unknown():
    names = available_selectors()
    for name in ("random", "heuristic", "classifier", "raft", "dsir", "color", "ica"):
        assert name in names
    with pytest.raises(KeyError, match="unknown selection strategy 'nope'.*random"):
        get_selector("nope")
    with pytest.raises(ValueError, match="bad parameters"):
        get_selector("random", not_a_param=1)


@pytest.mark.parametrize("budget", [0.1, 0.3, 0.5, 0.9])
def test_random_hits_budget_and_is_seed_stable(budget):
    t = scored_table()
    total = t["n_tokens"].sum()
    sel = get_selector("random").select(t, SelectionContext(budget=budget, seed=7))
    kept = t["n_tokens"][sel.keep].sum()
    assert kept <= budget * total
    assert kept >= budget * total - t["n_tokens"].max()  # within one document of the budget
    again = get_selector("random").select(t, SelectionContext(budget=budget, seed=7))
    assert np.array_equal(sel.keep, again.keep)
    other = get_selector("random").select(t, SelectionContext(budget=budget, seed=8))
    assert not np.array_equal(sel.keep, other.keep)
    # inclusion probability ~ budget on average (uniform sampling), reasons name the budget
    assert abs(sel.probability.mean() - budget) < 0.1
    assert set(sel.reason[~sel.keep]) == {"budget"}


def test_random_is_uniform_over_sources():
    t = scored_table(2000, seed=1)
    sel = get_selector("random").select(t, SelectionContext(budget=0.3, seed=0))
    share_web_pool = (t["source"] == "web").mean()
    share_web_kept = (t["source"][sel.keep] == "web").mean()
    assert abs(share_web_kept - share_web_pool) < 0.06


def test_heuristic_drops_blocklisted_and_toxic():
    t = pd.DataFrame({
        "id": ["clean1", "toxic", "block", "phrase", "clean2", "substr"],
        "n_tokens": [4, 4, 4, 5, 4, 3],
        "text": ["a nice sunny day", "a nice sunny day", "what a BASTARD he", "just go die now you",
                 "good day to you", "classic assessment done"],
        "profanity__toxicity": [0.1, 0.8, 0.2, 0.1, 0.3, 0.0],
    })
    sel = get_selector("heuristic", threshold=0.5).select(t, SelectionContext(budget=1.0, seed=0))
    reasons = dict(zip(sel.ids, sel.reason, strict=True))
    assert reasons["toxic"] == "toxicity>=0.5"
    assert reasons["block"] == "blocklist:bastard"
    assert reasons["phrase"] == "blocklist:go die"
    # whole words only: "classic" / "assessment" contain blocklisted substrings but are not blocked
    assert reasons["substr"] == "kept"
    assert sel.keep.tolist() == [True, False, False, False, True, True]


def test_heuristic_fills_budget_only_from_passing_docs():
    t = scored_table(400, seed=3)
    t["text"] = "ordinary text"
    t.loc[:19, "text"] = "you idiot shit"
    sel = get_selector("heuristic", threshold=0.7).select(t, SelectionContext(budget=0.4, seed=1))
    tox = t[["toxicity_ngram__toxicity", "toxicity_ngram__insult"]].max(axis=1).to_numpy()
    assert not sel.keep[tox >= 0.7].any()
    assert not sel.keep[:20].any()
    assert t["n_tokens"][sel.keep].sum() <= 0.4 * t["n_tokens"].sum()
    assert set(sel.reason[20:][tox[20:] < 0.7]) <= {"kept", "budget"}


def test_classifier_buckets_and_reroute():
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.45, 0.55, 0.7, 0.8, 0.9, 1.0])
    assert harm_buckets(p).tolist() == [0, 0, 1, 1, 2, 3, 4, 4, 5, 5]
    t = pd.DataFrame({"id": [f"d{i}" for i in range(10)], "n_tokens": np.full(10, 10),
                      "toxicity_ngram__toxicity": p})
    sel = get_selector("classifier").select(t, SelectionContext(budget=1.0, seed=0))
    assert sel.prefix is not None
    assert sel.rerouted.tolist() == [False] * 5 + [True] * 3 + [False] * 2
    assert sel.reason.tolist() == ["kept"] * 5 + ["reroute"] * 3 + ["bucket>=5"] * 2
    assert sel.keep.tolist() == [True] * 8 + [False] * 2
    np.testing.assert_allclose(sel.weight[:8], [1, 1, 1, 1, 1, 0.5, 0.5, 0.5])
    assert [str(x) for x in sel.prefix[5:8]] == ["<|harmful|> "] * 3
    assert all(x == "" for x in sel.prefix[:5])
    # re-routing off: the middle buckets are dropped with their bucket as reason
    sel2 = get_selector("classifier", reroute=False).select(t, SelectionContext(budget=1.0, seed=0))
    assert sel2.reason[5:8].tolist() == ["bucket=3", "bucket=4", "bucket=4"]
    assert not sel2.keep[5:].any()


def test_classifier_prefers_low_buckets_at_budget():
    p = np.r_[np.full(50, 0.05), np.full(50, 0.6)]  # 50 bucket-0 docs, 50 bucket-3 docs
    t = pd.DataFrame({"id": [f"d{i}" for i in range(100)], "n_tokens": np.full(100, 10),
                      "toxicity_ngram__toxicity": p})
    sel = get_selector("classifier").select(t, SelectionContext(budget=0.6, seed=0))
    assert sel.keep[:50].all()  # every safe doc first
    assert sel.keep[50:].sum() == 10  # then re-routed ones fill the rest
    assert set(sel.reason[50:][~sel.keep[50:]]) == {"budget"}


def test_classifier_scores_and_reads_the_signal_it_is_given():
    # a named signal is what curate scores, and its absence is an error, never another signal's columns
    sel = get_selector("classifier", signal="hf_classifier")
    assert sel.signals == ("hf_classifier",)
    t = scored_table(20)
    with pytest.raises(ValueError, match=r"signal 'hf_classifier'.*toxicity_ngram.*dynacure score"):
        sel.select(t, SelectionContext(budget=0.5, seed=0))
    # the default still falls back to any toxicity column present (tables scored with profanity only)
    t2 = t.drop(columns=["toxicity_ngram__toxicity", "toxicity_ngram__insult"]).assign(
        profanity__score=np.linspace(0, 1, 20))
    assert get_selector("classifier").select(t2, SelectionContext(budget=0.5, seed=0)).keep.any()


def test_classifier_refuses_bad_buckets():
    with pytest.raises(ValueError, match="keep_max < drop_min"):
        get_selector("classifier", keep_max=3, drop_min=3)


def test_raft_keeps_exactly_top_reward_to_budget():
    t = scored_table(200, seed=5)
    t["n_tokens"] = 10  # equal lengths: the budget is exactly k documents
    w = RewardWeights(safety=0.5, alignment=0.3, utility=0.2)
    sel = get_selector("raft", weights=w).select(t, SelectionContext(budget=0.25, seed=0))
    reward = composite_reward(t, w)
    top = set(np.argsort(-reward)[:50])
    assert set(np.flatnonzero(sel.keep)) == top
    assert set(sel.reason[sel.keep]) == {"top_reward"}


def test_raft_with_uneven_lengths_never_skips_a_fitting_better_doc():
    t = scored_table(300, seed=6)
    w = RewardWeights.parse("0.6,0.2,0.2")
    sel = get_selector("raft", weights="0.6,0.2,0.2").select(t, SelectionContext(budget=0.3, seed=0))
    reward = composite_reward(t, w)
    n_tok = t["n_tokens"].to_numpy()
    limit = int(0.3 * n_tok.sum())
    assert n_tok[sel.keep].sum() <= limit
    # walk the ranking: every dropped document that beats a kept one did not fit when its turn came
    used = 0
    for i in np.argsort(-reward, kind="stable"):
        if sel.keep[i]:
            used += n_tok[i]
        else:
            assert used + n_tok[i] > limit


def test_heuristic_blocklist_feature_equals_text_path():
    t = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "n_tokens": [4, 4, 5, 3],
        "text": ["a nice day", "what a BASTARD he", "just go   die now", "classic assessment"],
        "profanity__toxicity": [0.1, 0.2, 0.1, 0.0],
    })
    h = get_selector("heuristic")
    feats = h.text_features(t["text"].tolist())["blocklist"]
    assert [h.entries[c] if c >= 0 else None for c in feats] == [None, "bastard", "go die", None]
    from_text = h.select(t, SelectionContext(budget=1.0, seed=0))
    no_text = t.drop(columns="text").assign(**{h.feature_column("blocklist"): feats})
    from_feature = h.select(no_text, SelectionContext(budget=1.0, seed=0))
    assert list(from_feature.reason) == list(from_text.reason)
    with pytest.raises(ValueError, match="heuristic__blocklist"):
        h.select(t.drop(columns="text"), SelectionContext(budget=1.0, seed=0))


def test_curate_gives_the_heuristic_features_not_the_texts(tmp_path, monkeypatch):
    from dynacure.io.demo_corpus import generate_demo_corpus
    from dynacure.io.writers import write_corpus
    from dynacure.pipeline.curate import curate
    from dynacure.selectors.heuristic import HeuristicSelector

    docs = generate_demo_corpus(n_docs=300, toxic_share=0.2, seed=4)
    write_corpus(docs, tmp_path / "corpus", shard_size=70)
    seen = {}
    original = HeuristicSelector.select

    def spy(self, table, ctx):
        seen["columns"] = list(table.columns)
        return original(self, table, ctx)

    monkeypatch.setattr(HeuristicSelector, "select", spy)
    # a high threshold leaves the toxic documents to the blocklist
    res = curate(tmp_path / "corpus", tmp_path / "out", "heuristic", 0.5, seed=2, shard_size=70,
                 params={"threshold": 0.999})
    assert "text" not in seen["columns"] and "heuristic__blocklist" in seen["columns"]
    # the same decisions as selecting from a table that holds the texts
    monkeypatch.setattr(HeuristicSelector, "select", original)
    table = pd.DataFrame({"id": [d.id for d in docs], "n_tokens": [len(d.text.split()) for d in docs],
                          "text": [d.text for d in docs]})
    attrs = pd.read_parquet(tmp_path / "out" / "attributes" / "profanity")
    table = table.merge(attrs, on="id")
    direct = get_selector("heuristic", threshold=0.999).select(table, SelectionContext(budget=0.5, seed=2))
    m = res.manifest.set_index("id")
    assert (m.loc[list(direct.ids), "reason"].astype(str).to_numpy() == np.asarray(direct.reason, str)).all()
    assert (m["reason"].astype(str).str.startswith("blocklist:")).sum() > 0
