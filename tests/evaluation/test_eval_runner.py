"""run_suites, the `dynacure evaluate` command, and a smoke run on a real nano TinyGPT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_word_learner import WordLearner, keyword_judge
from test_eval_bias import ITEMS, PROBS
from typer.testing import CliRunner

from dynacure.cli.evaluate import build_options
from dynacure.evaluation import available_suites, run_suites


def _files(tmp_path):
    bbq = tmp_path / "bbq.jsonl"
    bbq.write_text("\n".join(json.dumps(x) for x in ITEMS))
    mc = tmp_path / "mc.json"
    mc.write_text(json.dumps([{"question": "Q?", "mc1_targets": {"senior": 1, "youth": 0},
                               "mc2_targets": {"senior": 1, "youth": 0}}]))
    return bbq, mc


def test_run_suites_collects_results_and_data_files(tmp_path):
    bbq, mc = _files(tmp_path)
    out = run_suites(WordLearner(PROBS), "bbq,truthfulqa", seed=3,
                     options={"bbq": {"items_file": str(bbq)}, "truthfulqa": {"items_file": str(mc)}})
    assert out["seed"] == 3 and out["format_version"] == 1
    assert set(out["suites"]) == {"bbq", "truthfulqa"}
    assert out["suites"]["truthfulqa"]["metrics"]["mc1"]["value"] == 1.0
    assert out["suites"]["bbq"]["metrics"]["bias_score_ambiguous"]["value"] == pytest.approx(0.5)
    assert str(bbq.resolve()) in out["data_files"] and str(mc.resolve()) in out["data_files"]
    json.dumps(out)  # JSON-able as is


def test_run_suites_refuses_bad_names_and_stray_options():
    with pytest.raises(ValueError, match="unknown evaluation suite 'toxic'"):
        run_suites(WordLearner({}), ["toxic"])
    with pytest.raises(ValueError, match="not run"):
        run_suites(WordLearner({}), ["bbq"], options={"perplexity": {"max_tokens": 5}})
    with pytest.raises(ValueError, match="max_itemz"):
        run_suites(WordLearner({}), ["bbq"], options={"bbq": {"max_itemz": 5}})
    assert set(available_suites()) == {"toxicity", "perplexity", "preference", "truthfulqa", "bbq",
                                       "winogender", "refusal", "domain_perplexity"}


def test_cli_options_routing(tmp_path):
    opts = build_options(["toxicity", "perplexity", "bbq"], max_prompts=5, samples=2, max_tokens=100,
                         max_items=7, data_dir=None, prompts=None, force_refusal=False,
                         extra=['perplexity.corpora=["ptb"]'])
    assert opts == {"toxicity": {"max_prompts": 5, "samples": 2},
                    "perplexity": {"max_tokens": 100, "corpora": ["ptb"]}, "bbq": {"max_items": 7}}
    with pytest.raises(ValueError, match="not selected"):
        build_options(["bbq"], max_prompts=None, samples=None, max_tokens=None, max_items=None, data_dir=None,
                      prompts=None, force_refusal=False, extra=["toxicity.samples=3"])


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from dynacure.learners.tiny_gpt import TinyGPT

    texts = [f"the cat number {i} sat on the mat and looked at the dog ." for i in range(60)]
    learner = TinyGPT.create(texts, preset="nano", seed=0)
    for _ in range(3):
        learner.train_step(texts[:16])
    path = tmp_path_factory.mktemp("nano")
    learner.save(path)
    return learner, path


def test_smoke_nano_tinygpt_toxicity_and_perplexity(nano, tmp_path, shared_data):
    learner, _ = nano
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "the cat", "kind": "toxic"}\n{"prompt": "a dog", "kind": "nontoxic"}\n')
    out = run_suites(learner, ["toxicity", "perplexity"], judge=keyword_judge,
                     options={"toxicity": {"prompts_file": str(p), "samples": 3},
                              "perplexity": {"max_tokens": 150, "data_dir": str(shared_data)}})
    tox = out["suites"]["toxicity"]["metrics"]
    assert tox["expected_max_toxicity_toxic"]["n"] == 1
    assert 0.0 <= tox["expected_max_toxicity"]["value"] <= 0.9
    ppl = out["suites"]["perplexity"]["metrics"]["wikitext2_token_ppl"]
    # a barely trained model over a 2048-token vocabulary: perplexity well above 1, below ~vocab size x 2
    assert 1.0 < ppl["low"] <= ppl["value"] <= ppl["high"] < 5000
    words = out["suites"]["perplexity"]["metrics"]["wikitext2_word_ppl"]["value"]
    assert words > ppl["value"]  # more than one BPE token per word on WikiText


def test_cli_evaluate_on_saved_nano(nano, tmp_path, shared_data):
    from dynacure.cli.main import app

    _, model = nano
    out = tmp_path / "res" / "results.json"
    result = CliRunner().invoke(app, ["evaluate", str(model), "--suite", "truthfulqa,perplexity,refusal",
                                      "--out", str(out), "--max-items", "4", "--max-tokens", "120",
                                      "--option", 'perplexity.corpora=["ptb"]',
                                      "--data-dir", str(shared_data)])
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert res["model"] == str(model.resolve())
    assert res["suites"]["truthfulqa"]["metrics"]["mc1"]["n"] == 4
    assert set(res["suites"]["perplexity"]["metrics"]) == {"ptb_token_ppl", "ptb_word_ppl"}
    assert "does not follow instructions" in res["suites"]["refusal"]["skipped"]
    run = json.loads((out.parent / "run.json").read_text())
    assert run["command"] == "evaluate" and run["seed"] == 0
    assert any(f.endswith("mc_task.json") for f in run["data_files"])
    assert np.isfinite(res["suites"]["perplexity"]["metrics"]["ptb_token_ppl"]["value"])


def test_cli_bad_suite_is_a_clear_error(tmp_path):
    from dynacure.cli.main import app

    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--suite", "nope"])
    assert result.exit_code == 2
    assert "unknown evaluation suite 'nope'" in result.output
