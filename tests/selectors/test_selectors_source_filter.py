"""source_filter: a blocklist of whole sources, then uniform random fill to the token budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynacure.selectors import available_selectors, get_selector
from dynacure.selectors.base import SelectionContext
from dynacure.selectors.source_filter import TOXICITY_SOURCES

SOURCES = ("wikitext2", "ptb", "hh_rlhf_helpful", "tweeteval_offensive", "tweeteval_hate", "davidson",
           "jigsaw")


def pool_like_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": [f"d{i}" for i in range(n)],
        "source": pd.Categorical(rng.choice(SOURCES, size=n)),
        "n_tokens": rng.integers(5, 120, size=n),
    })


@pytest.mark.parametrize("budget", [0.1, 0.2, 0.35])  # the clean sources hold ~3/7 of the tokens
def test_listed_sources_dropped_with_reasons_and_budget_respected(budget):
    t = pool_like_table()
    sel = get_selector("source_filter").select(t, SelectionContext(budget=budget, seed=3))
    src = t["source"].astype(str).to_numpy()
    listed = np.isin(src, TOXICITY_SOURCES)
    assert set(TOXICITY_SOURCES) == {"tweeteval_offensive", "tweeteval_hate", "davidson", "jigsaw"}
    assert not sel.keep[listed].any()
    assert (sel.probability[listed] == 0).all()
    reasons = np.asarray(sel.reason, dtype=str)
    assert (reasons[listed] == np.char.add("source:", src[listed])).all()
    assert set(reasons[~listed]) == {"kept", "budget"}
    assert (reasons[sel.keep] == "kept").all()
    assert len(reasons) == len(t) and all(r for r in reasons)
    total = t["n_tokens"].sum()
    kept = t["n_tokens"][sel.keep].sum()
    assert kept <= budget * total
    assert kept >= budget * total - t["n_tokens"].max()  # within one document of the budget
    # the rest is sampled uniformly: every clean source keeps about the same share of its documents
    shares = [sel.keep[src == s].mean() for s in ("wikitext2", "ptb", "hh_rlhf_helpful")]
    assert max(shares) - min(shares) < 0.12


def test_budget_beyond_the_clean_sources_keeps_all_of_them():
    t = pool_like_table()
    listed = np.isin(t["source"].astype(str), TOXICITY_SOURCES)
    sel = get_selector("source_filter").select(t, SelectionContext(budget=0.9, seed=0))
    assert sel.keep[~listed].all() and not sel.keep[listed].any()


def test_deterministic_per_seed():
    t = pool_like_table()
    a = get_selector("source_filter").select(t, SelectionContext(budget=0.3, seed=5))
    b = get_selector("source_filter").select(t, SelectionContext(budget=0.3, seed=5))
    c = get_selector("source_filter").select(t, SelectionContext(budget=0.3, seed=6))
    assert np.array_equal(a.keep, b.keep) and np.array_equal(a.probability, b.probability)
    assert not np.array_equal(a.keep, c.keep)


def test_own_source_list_and_plain_string_column():
    t = pool_like_table(600, seed=2)
    t["source"] = t["source"].astype(str)  # a table without category codes works the same
    sel = get_selector("source_filter", sources=["ptb"]).select(t, SelectionContext(budget=0.5, seed=0))
    ptb = (t["source"] == "ptb").to_numpy()
    assert not sel.keep[ptb].any()
    assert set(np.asarray(sel.reason, dtype=str)[ptb]) == {"source:ptb"}
    assert sel.keep[np.isin(t["source"], TOXICITY_SOURCES)].any()


def test_registered_and_bad_input_refused():
    assert "source_filter" in available_selectors()
    with pytest.raises(ValueError, match="selector 'source_filter': bad parameters"):
        get_selector("source_filter", source=["jigsaw"])
    with pytest.raises(ValueError, match="list of source names"):
        get_selector("source_filter", sources="jigsaw")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['source'\]"):
        get_selector("source_filter").select(pool_like_table().drop(columns="source"),
                                             SelectionContext(budget=0.5))
    with pytest.raises(ValueError, match="budget"):
        get_selector("source_filter").select(pool_like_table(), SelectionContext(budget=1.5))


def test_a_source_not_in_the_table_is_reported(caplog):
    sel = get_selector("source_filter", sources=["jigsaw", "reddit"]).select(
        pool_like_table(300), SelectionContext(budget=0.5))
    assert "reddit" in caplog.text and sel.keep.any()


def test_experiment_config_accepts_it_as_reward_free():
    from dynacure.experiments.config import experiment_config_from_dict, uses_reward

    assert not uses_reward("source_filter")
    # reward-free: a weight on alignment needs no alignment signal when no strategy reads the reward
    cfg = experiment_config_from_dict({
        "strategies": [{"name": "random"}, {"name": "source_filter", "params": {"sources": ["jigsaw"]}}],
        "scoring": {"signals": ["profanity"]},
        "weights": [{"name": "w", "safety": 0.5, "alignment": 0.5, "utility": 0.0}],
    })
    assert [s.name for s in cfg.strategies] == ["random", "source_filter"]


def test_curate_drops_a_demo_source(tmp_path):
    from dynacure.io.demo_corpus import generate_demo_corpus
    from dynacure.io.writers import write_corpus
    from dynacure.pipeline.curate import curate

    docs = generate_demo_corpus(n_docs=300, toxic_share=0.2, seed=4)
    write_corpus(docs, tmp_path / "corpus", shard_size=70)
    res = curate(tmp_path / "corpus", tmp_path / "out", "source_filter", 0.4, seed=1, shard_size=70,
                 params={"sources": ["demo_forum"]})
    m = res.manifest.set_index("id")
    forum = [d.id for d in docs if d.source == "demo_forum"]
    assert forum and (m.loc[forum, "decision"] == "drop").all()
    assert (m.loc[forum, "reason"].astype(str) == "source:demo_forum").all()
    assert (m["decision"] == "keep").sum() > 0
