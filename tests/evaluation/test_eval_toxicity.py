"""Toxicity suite: expected maximum toxicity and toxicity probability on known generations and judge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_word_learner import WordLearner, keyword_judge

from dynacure.evaluation.judge import JudgeIsRewardScorer, check_judge
from dynacure.evaluation.toxicity import ToxicitySuite, prompt_ids, read_prompt_file
from dynacure.stats import Units


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


def test_per_continuation_metrics_by_hand(tmp_path):
    learner = WordLearner({"nice": 1.0}, replies=REPLIES)
    res = ToxicitySuite(judge=keyword_judge, prompts_file=str(_prompt_file(tmp_path)), samples=3).run(learner)
    m = res.metrics
    # scores: p1 (toxic) [0, .3, .9], p2 (nontoxic) [0, 0, .3], p3 (toxic) [.3, .3, 0]; threshold 0.5
    assert m["toxic_continuation_share"].value == pytest.approx(1 / 9)
    assert m["toxic_continuation_share_toxic"].value == pytest.approx(1 / 6)
    assert m["toxic_continuation_share_nontoxic"].value == pytest.approx(0.0)
    assert m["mean_continuation_toxicity"].value == pytest.approx(2.1 / 9)
    assert m["mean_continuation_toxicity_toxic"].value == pytest.approx(1.8 / 6)
    assert m["mean_continuation_toxicity_nontoxic"].value == pytest.approx(0.1)
    # the interval over the two toxic prompts spans their per-prompt shares 1/3 and 0
    assert m["toxic_continuation_share_toxic"].low == pytest.approx(0.0)
    assert m["toxic_continuation_share_toxic"].high == pytest.approx(1 / 3)
    assert m["toxic_continuation_share_toxic"].n == 2


def test_every_metric_has_units_that_reproduce_it(tmp_path):
    res = ToxicitySuite(judge=keyword_judge, prompts_file=str(_prompt_file(tmp_path)), samples=3).run(
        WordLearner({"nice": 1.0}, replies=REPLIES))
    assert set(res.units) == set(res.metrics) and len(res.metrics) == 12
    # prompts are evaluated grouped by kind: p2 (nontoxic), then p1 and p3 (toxic)
    ids = prompt_ids(["p2", "p1", "p3"], ["nontoxic", "toxic", "toxic"])
    for name, est in res.metrics.items():
        u = res.units[name]
        assert u.kind == "mean" and len(u) == est.n
        assert u.statistic() == pytest.approx(est.value)
        kind = "nontoxic" if name.endswith("_nontoxic") else "toxic" if name.endswith("_toxic") else None
        assert u.ids == {"nontoxic": ids[:1], "toxic": ids[1:], None: ids}[kind]
    # the serialised form round-trips (what a cell's metrics.json holds)
    d = res.to_dict()["units"]["toxicity_probability"]
    assert Units.from_dict(d).values.tolist() == [0.0, 1.0, 0.0]


def test_prompt_ids_are_stable_digests_and_unique():
    a = prompt_ids(["same", "other", "same"], ["toxic", "toxic", "toxic"])
    assert a == prompt_ids(["same", "other", "same"], ["toxic", "toxic", "toxic"])
    assert len(set(a)) == 3 and a[2] == a[0] + "#1" and a[0].startswith("toxic:")
    assert prompt_ids(["same"], ["nontoxic"])[0] != a[0]


def _always_toxic_learner(prompts: list[str], every: int) -> WordLearner:
    """Replies with one 'badword' continuation in ``every`` samples (every=1: all of them)."""
    reply = [" badword"] + [" nice"] * (every - 1)
    return WordLearner({"nice": 1.0}, replies={p: reply for p in prompts})


def test_per_continuation_metrics_separate_learners_where_probability_saturates(tmp_path):
    prompts = [f"prompt {i}" for i in range(30)]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "kind": "toxic" if i % 2 else "nontoxic"}) + "\n"
                            for i, p in enumerate(prompts)))
    suite = ToxicitySuite(judge=keyword_judge, prompts_file=str(path), samples=10)
    rare = suite.run(_always_toxic_learner(prompts, every=10)).metrics  # 1 toxic continuation in 10
    often = suite.run(_always_toxic_learner(prompts, every=1)).metrics  # every continuation toxic
    for m in (rare, often):
        for suffix in ("", "_toxic", "_nontoxic"):
            assert 0.0 <= m[f"toxic_continuation_share{suffix}"].value <= 1.0
            assert 0.0 <= m[f"mean_continuation_toxicity{suffix}"].value <= 1.0
            assert m[f"toxic_continuation_share{suffix}"].value <= m[f"toxicity_probability{suffix}"].value
    # toxicity probability saturates at 1 for both; it cannot tell them apart
    assert rare["toxicity_probability"].value == often["toxicity_probability"].value == 1.0
    # the per-continuation figures can, with intervals that do not overlap
    assert rare["toxic_continuation_share"].value == pytest.approx(0.1)
    assert often["toxic_continuation_share"].value == pytest.approx(1.0)
    assert rare["toxic_continuation_share"].high < often["toxic_continuation_share"].low
    assert rare["mean_continuation_toxicity"].value == pytest.approx(0.09)
    assert rare["mean_continuation_toxicity"].high < often["mean_continuation_toxicity"].low


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
    assert set(res.metrics) == {"expected_max_toxicity", "toxicity_probability", "toxic_continuation_share",
                                "mean_continuation_toxicity"}
    assert set(res.units) == set(res.metrics)
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
