"""Perplexity, HH-RLHF preference accuracy and TruthfulQA MC1/MC2 on cases with hand-computed answers."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
from eval_word_learner import WordLearner

from dynacure.evaluation.common import ratio_ci
from dynacure.evaluation.perplexity import PerplexitySuite, make_windows
from dynacure.evaluation.preference import PreferenceSuite, pair_wins
from dynacure.evaluation.truthfulqa import TruthfulQASuite, mc1_score, mc2_score
from dynacure.io import public_data

# ---- perplexity


def test_uniform_model_perplexity_is_vocab_size(shared_data):
    v = 50
    learner = WordLearner({}, unk=1 / v)  # every word has probability 1/V
    res = PerplexitySuite(max_tokens=600, window_tokens=40, data_dir=str(shared_data)).run(learner)
    for corpus in ("wikitext2", "ptb"):
        for kind in ("token", "word"):
            est = res.metrics[f"{corpus}_{kind}_ppl"]
            assert est.value == pytest.approx(v)
            assert est.low == pytest.approx(v) and est.high == pytest.approx(v)
        assert res.details["corpora"][corpus]["words"] == 600
    assert res.metrics["ptb_token_ppl"].n == res.details["corpora"]["ptb"]["windows"]


def test_word_perplexity_differs_from_token_perplexity_when_tokens_are_not_words():
    # 2 windows: 4 tokens / 2 words with total logprob -4, and 6 tokens / 2 words with total -2
    lp = np.array([-4.0, -2.0])
    tok = ratio_ci(-lp, np.array([4.0, 6.0]), seed=0, transform=math.exp)
    word = ratio_ci(-lp, np.array([2.0, 2.0]), seed=0, transform=math.exp)
    assert tok.value == pytest.approx(math.exp(6 / 10))
    assert word.value == pytest.approx(math.exp(6 / 4))
    assert tok.low <= tok.value <= tok.high


def test_windows_pack_whole_words():
    words = ["a", "bb", "c", "dd", "e"]
    assert make_windows(words, [1, 2, 1, 2, 1], 3) == ["a bb", "c dd", "e"]
    assert make_windows(["long"], [9], 3) == ["long"]


def test_unknown_corpus_refused():
    with pytest.raises(ValueError, match="unknown corpus"):
        PerplexitySuite(corpora=["c4"])


# ---- preference


def test_pair_wins_ties_count_half():
    assert pair_wins(np.array([-1.0, -2.0, -3.0]), np.array([-2.0, -2.0, -1.0])).tolist() == [1.0, 0.5, 0.0]


PROBS = {"good": 0.5, "ok": 0.3, "bad": 0.1, "same": 0.2}


def _write_hh(data_dir, replies):
    folder = data_dir / "hh-rlhf" / "harmless-base"
    folder.mkdir(parents=True)
    with gzip.open(folder / "test.jsonl.gz", "wt") as fh:
        for i, (c, r) in enumerate(replies):
            pre = f"\n\nHuman: question {i}\n\nAssistant:"
            fh.write(json.dumps({"chosen": pre + " " + c, "rejected": pre + " " + r}) + "\n")


def test_preference_accuracy_plain_and_length_normalised(tmp_path):
    kinds = [("good", "bad"), ("same", "same"), ("ok ok ok", "bad"), ("bad", "good")] * 6
    _write_hh(tmp_path, kinds)
    ev = public_data.hh_rlhf("harmless-base", half="eval", data_dir=tmp_path)
    # expected by hand, per pair kind: (plain, normalised)
    table = {("good", "bad"): (1, 1), ("same", "same"): (0.5, 0.5), ("ok ok ok", "bad"): (0, 1),
             ("bad", "good"): (0, 0)}
    exp = [table[kinds[r]] for r in ev["row"]]
    res = PreferenceSuite(subsets=["harmless-base"], data_dir=str(tmp_path)).run(WordLearner(PROBS))
    assert res.metrics["harmless-base_accuracy"].value == pytest.approx(np.mean([e[0] for e in exp]))
    assert res.metrics["harmless-base_accuracy_length_normalised"].value == pytest.approx(
        np.mean([e[1] for e in exp]))
    assert res.metrics["harmless-base_accuracy"].n == len(ev) < len(kinds)  # only the eval half
    assert res.details["pairs"]["harmless-base"]["ties"] == sum(1 for r in ev["row"] if kinds[r][0] == "same")


# ---- TruthfulQA


def test_mc_scores():
    assert mc1_score(np.array([-1.0, -2.0]), np.array([1, 0])) == 1.0
    assert mc1_score(np.array([-1.0, -1.0]), np.array([1, 0])) == 0.5  # tie at the top
    assert mc2_score(np.log(np.array([0.5, 0.3, 0.1])), np.array([1, 1, 0])) == pytest.approx(0.8 / 0.9)


def test_truthfulqa_two_questions(tmp_path):
    items = [
        {"question": "Q1?", "mc1_targets": {"good": 1, "bad": 0},
         "mc2_targets": {"good": 1, "ok": 1, "bad": 0}},
        {"question": "Q2?", "mc1_targets": {"bad": 1, "good": 0},
         "mc2_targets": {"bad": 1, "good": 0, "ok": 0}},
    ]
    f = tmp_path / "mc.json"
    f.write_text(json.dumps(items))
    res = TruthfulQASuite(items_file=str(f)).run(WordLearner(PROBS))
    assert res.metrics["mc1"].value == pytest.approx(0.5)
    assert res.metrics["mc2"].value == pytest.approx((0.8 / 0.9 + 0.1 / 0.9) / 2)
    assert res.metrics["mc1"].n == 2


def test_truthfulqa_bad_item_named(tmp_path):
    f = tmp_path / "mc.json"
    f.write_text(json.dumps([{"question": "Q?", "mc1_targets": {"a": 1, "b": 1}, "mc2_targets": {"a": 1}}]))
    with pytest.raises(ValueError, match="item 0: mc1_targets must have exactly one"):
        TruthfulQASuite(items_file=str(f)).run(WordLearner(PROBS))
