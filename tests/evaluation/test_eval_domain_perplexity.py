"""domain_perplexity: word perplexity on held-out clean text of every pool domain; perplexity's Units."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_word_learner import WordLearner

from dynacure.evaluation import get_suite
from dynacure.evaluation.domain_perplexity import (
    DOMAINS,
    MACRO,
    DomainPerplexitySuite,
    heldout_texts,
    normalise,
    text_windows,
)
from dynacure.evaluation.perplexity import PerplexitySuite, pack_words
from dynacure.io.pool import POOL_SOURCES, pool_documents
from dynacure.stats import Units, units_ci

# ---- no data needed


def test_pack_words_ranges():
    assert pack_words([1, 2, 1, 2, 1], 3) == [(0, 2), (2, 4), (4, 5)]
    assert pack_words([9, 1], 3) == [(0, 1), (1, 2)]
    assert pack_words([], 3) == []


def test_text_windows_keep_whitespace_and_cut_at_max_words():
    text = "a bb\n\nc  dd e"
    pieces, n = text_windows(text, lambda ws: [len(w) for w in ws], 3, None)
    assert n == 5
    assert pieces == ["a bb\n\n", "c  dd ", "e"]
    assert "".join(pieces) == text
    pieces, n = text_windows(text, lambda ws: [1] * len(ws), 10, 3)
    assert (pieces, n) == (["a bb\n\nc"], 3)
    assert text_windows("   ", lambda ws: [1] * len(ws), 10, None) == ([], 0)


def test_units_ci_macro_is_geometric_mean_over_domains():
    # domain a: 2 texts, NLL 2+2 over 1+1 words -> ppl e^2; domain b: 1 text, NLL 3 over 3 words -> e^1
    u = Units("exp_ratio", np.array([2.0, 2.0, 3.0]), np.array([1.0, 1.0, 3.0]), ids=["x", "y", "z"],
              groups=["a", "a", "b"])
    est = units_ci(u, seed=0)
    # domains weigh equally in log space: exp((2 + 1) / 2), not the arithmetic (e^2 + e) / 2
    assert est.value == pytest.approx(math.exp(1.5))
    assert est.n == 3
    # every resample keeps both domains (stratified), and each domain's texts have one ppl: no spread
    assert est.low == pytest.approx(est.value) and est.high == pytest.approx(est.value)
    # pooled (not macro) would weight b's 3 words more
    assert est.value != pytest.approx(math.exp(7 / 5))


def test_bad_options_refused():
    with pytest.raises(ValueError, match="unknown domain"):
        DomainPerplexitySuite(domains=["tweets", "reddit"])
    with pytest.raises(ValueError, match="max_text_per_domain"):
        DomainPerplexitySuite(max_text_per_domain=3)
    with pytest.raises(ValueError, match="max_texts_per_domain"):
        DomainPerplexitySuite(max_texts_per_domain=0)
    assert isinstance(get_suite("domain_perplexity", options={"domains": ["ptb"]}), DomainPerplexitySuite)


# ---- on the public data


def test_uniform_model_is_vocab_size_in_every_domain(shared_data):
    v = 40
    suite = DomainPerplexitySuite(data_dir=str(shared_data), max_texts_per_domain=15)
    res = suite.run(WordLearner({}, unk=1 / v))
    assert set(res.metrics) == {f"word_perplexity_{d}" for d in DOMAINS} | {MACRO}
    for name, est in res.metrics.items():
        assert est.value == pytest.approx(v) and est.low == pytest.approx(v) and est.high == pytest.approx(v)
        assert est.n == (15 * len(DOMAINS) if name == MACRO else 15)
    macro = res.units[MACRO]
    assert macro.kind == "exp_ratio" and sorted(set(macro.groups)) == sorted(DOMAINS)
    assert len(set(macro.ids)) == len(macro.ids) == 15 * len(DOMAINS)
    for d in DOMAINS:
        u = res.units[f"word_perplexity_{d}"]
        assert all(i.startswith(f"{d}:") for i in u.ids)
        assert u.weights.sum() == res.details["domains"][d]["words"]
    assert any("offensive_test.csv" in f for f in res.details["data_files"])


def test_values_are_the_learners_nll_over_whitespace_words(shared_data):
    # a unigram with different probabilities per word: the summed window NLLs must equal the whole text's
    learner = WordLearner({"the": 0.2, "a": 0.1, ",": 0.1, ".": 0.1, "@USER": 0.05}, unk=1e-4)
    res = DomainPerplexitySuite(data_dir=str(shared_data), max_texts_per_domain=20, max_words=300,
                                window_tokens=16).run(learner)
    texts, _, _ = heldout_texts(list(DOMAINS), str(shared_data), 20)
    for d in DOMAINS:
        mine = [t for t in texts if t.domain == d]
        words = [t.text.split()[:300] for t in mine]
        nll = sum(-sum(learner.logp(w) for w in ws) for ws in words)
        want = math.exp(nll / sum(map(len, words)))
        assert res.metrics[f"word_perplexity_{d}"].value == pytest.approx(want)
        assert res.units[f"word_perplexity_{d}"].ids == [t.id for t in mine]
    per_domain = [res.metrics[f"word_perplexity_{d}"].value for d in DOMAINS]
    assert res.metrics[MACRO].value == pytest.approx(np.exp(np.mean(np.log(per_domain))))  # geometric
    assert res.metrics[MACRO].low < res.metrics[MACRO].value < res.metrics[MACRO].high


def test_no_heldout_text_is_in_the_pool_and_ids_are_stable(shared_data):
    texts, counts, _ = heldout_texts(list(DOMAINS), str(shared_data), None)
    pool = {normalise(d.text) for d in pool_documents(shared_data)}
    assert len(pool) > 30_000
    assert not [t.id for t in texts if normalise(t.text) in pool]
    assert {t.domain for t in texts} == set(DOMAINS)
    assert all(counts[d]["texts"] > 300 for d in DOMAINS)
    # a few TweetEval test tweets repeat a train tweet of the pool: they are left out, and counted
    assert counts["tweets"]["left_out_in_pool"] >= 1
    # Davidson: only "neither" tweets of the parts that never enter the pool
    pool_rows = {d.meta["row"] for d in POOL_SOURCES["davidson"](shared_data)}
    dav = [int(t.id.rsplit(":", 1)[1]) for t in texts if t.domain == "davidson"]
    assert dav and not set(dav) & pool_rows
    # the same sample and ids on a second run, whatever the learner
    suite = DomainPerplexitySuite(data_dir=str(shared_data), max_texts_per_domain=10)
    a = suite.run(WordLearner({}, unk=0.01))
    b = DomainPerplexitySuite(data_dir=str(shared_data), max_texts_per_domain=10).run(
        WordLearner({"the": 0.5}, unk=0.001))
    assert a.units[MACRO].ids == b.units[MACRO].ids
    assert a.units[MACRO].groups == b.units[MACRO].groups
    assert a.units[MACRO].weights.tolist() == b.units[MACRO].weights.tolist()


def _tweets_and_wiki(shared_data, n: int) -> tuple[list[str], list[str]]:
    def head(text: str) -> str:  # the first words only: a nano model sees 64 tokens per row anyway
        return " ".join(text.split()[:32])

    tweets = [head(d.text) for d in POOL_SOURCES["tweeteval_offensive"](shared_data) if not d.meta["toxic"]]
    wiki = [head(d.text) for d in POOL_SOURCES["wikitext2"](shared_data)]
    return tweets[:n], wiki[:n]


def test_tweet_trained_unigram_has_lower_tweet_perplexity(shared_data):
    tweets, wiki = _tweets_and_wiki(shared_data, 400)
    suite = DomainPerplexitySuite(data_dir=str(shared_data), domains=["tweets", "wikitext2"],
                                  max_texts_per_domain=40, max_words=64)
    res = {}
    for name, texts in (("tweets", tweets), ("wiki", wiki)):
        learner = WordLearner({})
        learner.train_step(texts)  # the unigram's counts: a (very small) trained language model
        res[name] = suite.run(learner).metrics
    tw, wk = res["tweets"], res["wiki"]
    assert tw["word_perplexity_tweets"].high < wk["word_perplexity_tweets"].low
    assert wk["word_perplexity_wikitext2"].high < tw["word_perplexity_wikitext2"].low


def test_tweet_trained_gpt_has_lower_perplexity_on_each_tweet(shared_data):
    from dynacure.learners.tiny_gpt import TinyGPT

    tweets, wiki = _tweets_and_wiki(shared_data, 320)
    suite = DomainPerplexitySuite(data_dir=str(shared_data), domains=["tweets", "wikitext2"],
                                  max_texts_per_domain=30, max_words=64)
    res = {}
    for name, texts in (("tweets", tweets), ("wiki", wiki)):
        # one tokenizer for both, so the only difference is the training text (20 steps of 16)
        learner = TinyGPT.create(tweets[:200] + wiki[:200], preset="nano", seed=0, vocab_size=512)
        for i in range(0, len(texts), 16):
            learner.train_step(texts[i:i + 16])
        res[name] = suite.run(learner)
    for domain, own, other in (("tweets", "tweets", "wiki"), ("wikitext2", "wiki", "tweets")):
        key = f"word_perplexity_{domain}"
        assert res[own].metrics[key].value < res[other].metrics[key].value
        a, b = res[own].units[key], res[other].units[key]
        assert a.ids == b.ids  # paired text by text
        assert np.mean(a.values / a.weights < b.values / b.weights) >= 0.9


# ---- the perplexity suite's Units


class _ThreeTokenWords(WordLearner):
    """The same model, but a tokenizer that makes every word 3 tokens: other windows, same blocks."""

    class tokenizer:  # noqa: N801 - mimics a learner's tokenizer attribute
        @staticmethod
        def encode(words):
            return [[0, 1, 2] for _ in words]


def test_perplexity_word_units_are_blocks_independent_of_the_tokenizer(shared_data):
    opts = {"data_dir": str(shared_data), "max_tokens": 1000, "unit_words": 300, "window_tokens": 40}
    probs = {"the": 0.1, ",": 0.05, ".": 0.05}
    a = PerplexitySuite(**opts).run(WordLearner(probs, unk=1e-3))
    b = PerplexitySuite(**opts).run(_ThreeTokenWords(probs, unk=1e-3))
    for corpus in ("wikitext2", "ptb"):
        ua, ub = a.units[f"{corpus}_word_ppl"], b.units[f"{corpus}_word_ppl"]
        assert ua.ids == ub.ids == [f"{corpus}:w0+300", f"{corpus}:w300+300", f"{corpus}:w600+300",
                                    f"{corpus}:w900+100"]
        assert ua.weights.tolist() == [300, 300, 300, 100]
        assert a.details["corpora"][corpus]["windows"] != b.details["corpora"][corpus]["windows"]
        # a unigram ignores context: the block values and the metric agree whatever the windows
        assert ua.values == pytest.approx(ub.values)
        assert ua.statistic() == pytest.approx(a.metrics[f"{corpus}_word_ppl"].value)
        assert f"{corpus}_token_ppl" not in a.units
