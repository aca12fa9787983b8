"""BBQ accuracy and bias scores on four hand-made items; Winogender pronoun preference and correlation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_word_learner import WordLearner

from dynacure.evaluation.bias import BBQSuite, WinogenderSuite, bbq_roles, split_variants


def _item(i, cond, pol, answers, label):
    tags = ["old", "nonOld", "unknown"]
    return {"example_id": i, "context_condition": cond, "question_polarity": pol, "category": "Age",
            "context": "ctx", "question": "who?", "label": label,
            "ans0": answers[0], "ans1": answers[1], "ans2": answers[2],
            "answer_info": {f"ans{k}": [answers[k], tags[k]] for k in range(3)},
            "additional_metadata": {"stereotyped_groups": ["old"]}}


ITEMS = [
    _item(1, "ambig", "neg", ["grandpa", "kid", "undetermined"], 2),      # model: grandpa (biased, wrong)
    _item(2, "ambig", "nonneg", ["elder", "teen", "unknowable"], 2),      # model: unknowable (right)
    _item(3, "disambig", "neg", ["senior", "youth", "unclear"], 1),       # model: senior (biased, wrong)
    _item(4, "disambig", "nonneg", ["retiree", "child", "unsure"], 0),    # model: retiree (not biased, right)
]
PROBS = {"grandpa": 0.3, "kid": 0.1, "undetermined": 0.05, "elder": 0.01, "teen": 0.01, "unknowable": 0.2,
         "senior": 0.3, "youth": 0.02, "unclear": 0.02, "retiree": 0.3, "child": 0.05, "unsure": 0.01}


def test_bbq_accuracy_and_bias_scores_by_hand(tmp_path):
    f = tmp_path / "bbq.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in ITEMS))
    res = BBQSuite(items_file=str(f)).run(WordLearner(PROBS))
    m = res.metrics
    assert m["accuracy_ambiguous"].value == pytest.approx(0.5)
    assert m["accuracy_disambiguated"].value == pytest.approx(0.5)
    # disambiguated: 2 non-unknown answers, 1 biased -> 2 * 1/2 - 1 = 0
    assert m["bias_score_disambiguated"].value == pytest.approx(0.0)
    # ambiguous: 1 non-unknown answer, biased -> s = 1; s_AMB = (1 - 0.5) * 1
    assert m["bias_score_ambiguous"].value == pytest.approx(0.5)
    assert res.details["per_category"]["Age"]["n"] == 4


def test_bbq_roles_match_answer_text_when_tag_is_a_region():
    item = {"question_polarity": "nonneg", "answer_info": {"ans0": ["Nigerian", "Africa"],
                                                           "ans1": ["Swedish", "Europe"],
                                                           "ans2": ["Unknown", "unknown"]},
            "additional_metadata": {"stereotyped_groups": ["Nigerian"]}}
    assert bbq_roles(item) == (2, 1)  # non-negative question: the biased answer is the non-target
    item["question_polarity"] = "neg"
    assert bbq_roles(item) == (2, 0)


def test_bbq_real_items_load(shared_data):
    res = BBQSuite(max_items=30, data_dir=str(shared_data)).run(WordLearner({}, unk=0.1))
    assert res.metrics["accuracy_ambiguous"].n == 30
    assert res.details["target_unknown_items"] < 30


def test_split_variants():
    prefix, rest = split_variants({"male": "The nurse said he was late.",
                                   "female": "The nurse said she was late."})
    assert prefix == "The nurse said"
    assert rest == {"male": " he was late.", "female": " she was late."}


def test_winogender_preference_and_bls_correlation(tmp_path):
    variants = {"alpha": ("The alpha said {} left", ("he", "she", "they")),
                "beta": ("The beta lost {} key", ("his", "her", "their")),
                "gamma": ("The gamma saw {}", ("himself", "herself", "themselves"))}
    rows = [(f"{occ}.x.1.{g}.txt", tpl.format(word))
            for occ, (tpl, words) in variants.items()
            for g, word in zip(("male", "female", "neutral"), words, strict=True)]
    s = tmp_path / "s.tsv"
    s.write_text("sentid\tsentence\n" + "\n".join(f"{a}\t{b}" for a, b in rows) + "\n")
    o = tmp_path / "o.tsv"
    o.write_text("occupation\tbls_pct_female\nalpha\t10\nbeta\t50\ngamma\t90\n")
    probs = {"he": 0.5, "she": 0.2, "they": 0.1, "his": 0.3, "her": 0.3, "their": 0.4,
             "himself": 0.05, "herself": 0.2, "themselves": 0.01}
    res = WinogenderSuite(sentences_file=str(s), stats_file=str(o)).run(WordLearner(probs))
    m = res.metrics
    assert m["male_preference"].value == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["neutral_preference"].value == pytest.approx(1 / 3)  # only "their" beats his/her
    diffs = [math.log(0.2 / 0.5), 0.0, math.log(0.2 / 0.05)]
    assert m["female_minus_male_logprob"].value == pytest.approx(np.mean(diffs))
    assert m["bls_correlation"].value == pytest.approx(np.corrcoef(diffs, [10, 50, 90])[0, 1])
    assert m["bls_correlation"].value > 0.9


def test_winogender_real_files(shared_data):
    res = WinogenderSuite(data_dir=str(shared_data)).run(WordLearner({"he": 0.2, "she": 0.1}))
    assert res.details["sentence_groups"] == 240
    assert res.details["occupations"] == 60
    assert res.metrics["male_preference"].value > 0.5  # "he" is likelier than "she" for this model
