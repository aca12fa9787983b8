"""Toxicity suite: expected maximum toxicity and toxicity probability on known generations and judge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_word_learner import WordLearner, keyword_judge

from dynacure.evaluation.judge import JudgeIsRewardScorer, check_judge
from dynacure.evaluation.toxicity import ToxicitySuite, read_prompt_file


def _prompt_file(tmp_path):
    rows = [{"prompt": "p1", "kind": "toxic"}, {"prompt": "p2", "kind": "nontoxic"},
            {"prompt": "p3", "kind": "toxic"}]
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


REPLIES = {"p1": [" nice", " meh", " badword"], "p2": [" nice", " nice", " meh"],
           "p3": [" meh", " meh", " nice"]}


def test_expected_max_toxicity_and_probability_by_hand(tmp_path):
    learner = WordLearner({"nice": 1.0}, replies=REPLIES)
    suite = ToxicitySuite(judge=keyword_judge, prompts_file=str(_prompt_file(tmp_path)), samples=3)
    res = suite.run(learner, seed=0)
    m = res.metrics
    # per-prompt max: p1 0.9, p2 0.3, p3 0.3
    assert m["expected_max_toxicity_toxic"].value == pytest.approx(0.6)
    assert m["expected_max_toxicity_nontoxic"].value == pytest.approx(0.3)
    assert m["expected_max_toxicity"].value == pytest.approx(0.5)
    assert m["toxicity_probability_toxic"].value == pytest.approx(0.5)
    assert m["toxicity_probability_nontoxic"].value == pytest.approx(0.0)
    assert m["toxicity_probability"].value == pytest.approx(1 / 3)
    assert m["expected_max_toxicity_toxic"].n == 2
    # interval by bootstrap over the two toxic prompts spans their max scores
    assert m["expected_max_toxicity_toxic"].low == pytest.approx(0.3)
    assert m["expected_max_toxicity_toxic"].high == pytest.approx(0.9)
    # the protocol: 3 samples, nucleus 0.9, 20 new tokens
    assert all(c["num_samples"] == 3 and c["top_p"] == 0.9 and c["max_new_tokens"] == 20
               for c in learner.calls)
    assert res.details["n_prompts"] == {"nontoxic": 1, "toxic": 2}


def test_max_prompts_limits_each_kind(tmp_path):
    learner = WordLearner({"nice": 1.0}, replies=REPLIES)
    res = ToxicitySuite(judge=keyword_judge, prompts_file=str(_prompt_file(tmp_path)), samples=2,
                        max_prompts=1).run(learner)
    assert res.details["n_prompts"] == {"nontoxic": 1, "toxic": 1}


def test_prompt_file_without_kind_reports_overall_only(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "p1"}\n{"prompt": "p2"}\n')
    suite = ToxicitySuite(judge=keyword_judge, prompts_file=str(p), samples=3)
    res = suite.run(WordLearner({}, replies=REPLIES))
    assert set(res.metrics) == {"expected_max_toxicity", "toxicity_probability"}
    assert res.metrics["expected_max_toxicity"].value == pytest.approx(0.6)


def test_bad_prompt_file_names_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'prompt'"):
        read_prompt_file(p)


class _Judge:
    def __init__(self, meta):
        self.meta = meta

    def __call__(self, texts):
        return np.zeros(len(texts))


def test_reward_scorer_refused_as_judge(tmp_path):
    with pytest.raises(JudgeIsRewardScorer):
        check_judge(_Judge({"name": "toxicity_ngram", "training": {"parts": ["reward"]}}))
    with pytest.raises(JudgeIsRewardScorer):
        ToxicitySuite(judge=_Judge({"role": "reward"}), prompts_file=str(_prompt_file(tmp_path)),
                      samples=1).run(WordLearner({}, replies=REPLIES))
    assert check_judge(_Judge({"name": "judge", "parts": ["judge"]}))["parts"] == ["judge"]


def test_judge_must_return_probabilities(tmp_path):
    with pytest.raises(ValueError, match="probabilities"):
        ToxicitySuite(judge=lambda t: np.full(len(t), 2.0), prompts_file=str(_prompt_file(tmp_path)),
                      samples=1).run(WordLearner({}, replies=REPLIES))


def test_unknown_option_refused():
    with pytest.raises(ValueError, match="max_promts"):
        ToxicitySuite(judge=keyword_judge, max_promts=3)


def test_default_prompts_are_rtp(shared_data):
    res = ToxicitySuite(judge=keyword_judge, max_prompts=3, samples=2, data_dir=str(shared_data)).run(
        WordLearner({"nice": 0.5, "meh": 0.5}))
    assert res.details["n_prompts"] == {"nontoxic": 3, "toxic": 3}
    assert any("toxic.jsonl.gz" in f for f in res.details["data_files"])


def test_real_judge_metadata_is_accepted():
    meta = {"part": "judge", "role": "judge: evaluation only, never part of a reward", "seed": 0}
    assert check_judge(_Judge(meta))["part"] == "judge"
    with pytest.raises(JudgeIsRewardScorer):
        check_judge(_Judge({"part": "reward", "role": "reward scorer"}))


def _save_small_judge(folder, part):
    """A real n-gram judge model (the signals layer's format) trained on a few hand-labelled lines."""
    from dynacure.signals.hashing import HashingParams, NgramFeaturizer
    from dynacure.signals.toxicity import NgramModel
    from dynacure.signals.training import fit_logistic

    texts = ["you are an idiot", "I hate you, idiot", "shut up you moron", "what a stupid moron",
             "the weather is nice", "thank you for the help", "a lovely day at the park", "see you tomorrow"]
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    feat = NgramFeaturizer(HashingParams(word_bits=10, char_bits=10))
    w, b = fit_logistic(feat.transform(texts), labels, None, 4.0, 0)
    NgramModel(feat, w[None, :], np.array([b], dtype=np.float32), ["toxicity"], {"part": part}).save(folder)


def test_default_judge_reads_model_folder(tmp_path):
    from dynacure.evaluation.judge import default_judge

    _save_small_judge(tmp_path / "judge", "judge")
    judge = default_judge(tmp_path)
    assert check_judge(judge)["part"] == "judge"
    scores = judge(["you stupid idiot", "a nice day"])
    assert scores.shape == (2,) and scores[0] > scores[1]
