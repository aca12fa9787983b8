"""Evaluation that resumes: a suite interrupted after its first checkpoint chunk and run again gives the same
figures as an uninterrupted run, reuses what was done (and says so), and a finished suite is reused whole
by key; plus the quick sizes of `dynacure evaluate` and its --full."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_word_learner import WordLearner, keyword_judge
from test_eval_bias import ITEMS, PROBS

from dynacure.evaluation import common, run_suites
from dynacure.evaluation.checkpoint import Checkpoint, ChunkStore
from dynacure.evaluation.suites import QUICK_SIZES, apply_sizes

WORDS = {"the": 0.3, "cat": 0.2, "badword": 0.05, "meh": 0.15, "sat": 0.3}


class Stop(Exception):
    """Raised from a progress callback: the interruption (the CLI sees Ctrl-C the same way)."""


def _prompts(tmp_path: Path, n: int = 18) -> Path:
    p = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"prompt number {i}", "kind": "toxic" if i % 2 else "nontoxic"} for i in range(n)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _tox_options(tmp_path: Path) -> dict:
    return {"toxicity": {"prompts_file": str(_prompts(tmp_path)), "samples": 4, "batch_prompts": 4,
                         "max_new_tokens": 6}}


def _stop_after_first(suite_name: str):
    def progress(name: str, done: int, total: int) -> None:
        if name == suite_name and done < total:
            raise Stop(f"{name} {done}/{total}")
    return progress


def test_toxicity_interrupted_after_one_chunk_then_resumed_equals_uninterrupted(tmp_path):
    opts = _tox_options(tmp_path)
    whole = run_suites(WordLearner(WORDS), ["toxicity"], seed=5, options=opts, judge=keyword_judge,
                       checkpoint=Checkpoint(tmp_path / "a" / "results.json", "model-x"))
    out = tmp_path / "b" / "results.json"
    with pytest.raises(Stop):
        run_suites(WordLearner(WORDS), ["toxicity"], seed=5, options=opts, judge=keyword_judge,
                   progress=_stop_after_first("toxicity"), checkpoint=Checkpoint(out, "model-x"))
    chunks = list((out.parent / ".results.json.parts").rglob("generations-*.json"))
    assert [c.name for c in chunks] == ["generations-00000.json"]  # the first batch of 4 prompts, kept
    assert not out.exists()  # no suite finished yet
    said: list[str] = []
    learner = WordLearner(WORDS)
    again = run_suites(learner, ["toxicity"], seed=5, options=opts, judge=keyword_judge,
                       checkpoint=Checkpoint(out, "model-x", say=said.append))
    assert any("resuming, 1 chunk(s) done earlier are reused" in s for s in said)
    assert len(learner.calls) == 4  # 18 prompts in batches of 4: 5 batches, the first one reused
    a, b = whole["suites"]["toxicity"], again["suites"]["toxicity"]
    assert b["details"].pop("chunks_reused") == 1
    assert a["metrics"] == b["metrics"] and a["units"] == b["units"]
    assert a["metrics"]["mean_continuation_toxicity"]["value"] > 0  # the judge saw real generations
    saved = json.loads(out.read_text())
    assert saved["complete"] is True and saved["suites"]["toxicity"]["metrics"] == a["metrics"]
    # the suite's chunks go once its result is in the results file
    assert not list((out.parent / ".results.json.parts").rglob("*.json"))


def test_likelihood_chunks_resume_to_the_same_values(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "CHECKPOINT_ITEMS", 4)
    learner = WordLearner(PROBS)
    conts = [" ".join(["senior", "youth", "the"][: 1 + i % 3]) for i in range(11)]
    prefixes = ["p"] * len(conts)
    want = common.batched_logprob(learner, prefixes, conts, batch_size=2)
    store = ChunkStore(tmp_path / "parts", "x")

    def stop(_s: str, done: int, total: int) -> None:
        if done > 4:  # inside the second chunk: the first one is on disk
            raise Stop

    with pytest.raises(Stop):
        common.batched_logprob(learner, prefixes, conts, batch_size=2, progress=stop, store=store, key="k")
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["k-00000000.json"]
    store2 = ChunkStore(tmp_path / "parts", "x")
    got = common.batched_logprob(learner, prefixes, conts, batch_size=2, store=store2, key="k")
    assert store2.reused == 1 and store2.written == 2  # items 0-3 reused; 4-7 and 8-10 scored
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def _bbq_tqa(tmp_path: Path) -> dict:
    bbq = tmp_path / "bbq.jsonl"
    bbq.write_text("\n".join(json.dumps(x) for x in ITEMS))
    mc = tmp_path / "mc.json"
    mc.write_text(json.dumps([{"question": "Q?", "mc1_targets": {"senior": 1, "youth": 0},
                               "mc2_targets": {"senior": 1, "youth": 0}}]))
    return {"bbq": {"items_file": str(bbq)}, "truthfulqa": {"items_file": str(mc)}}


def test_a_finished_suite_is_reused_by_key_and_recomputed_when_its_key_changes(tmp_path):
    opts = _bbq_tqa(tmp_path)
    out = tmp_path / "results.json"
    with pytest.raises(Stop):  # bbq finishes and is written; truthfulqa is interrupted
        run_suites(WordLearner(PROBS), ["bbq", "truthfulqa"], options=opts,
                   on_suite=lambda name, _d: (_ for _ in ()).throw(Stop()) if name == "bbq" else None,
                   checkpoint=Checkpoint(out, "m1"))
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and partial["suites_pending"] == ["truthfulqa"]
    assert list(partial["suites"]) == ["bbq"]
    said: list[str] = []
    res = run_suites(WordLearner(PROBS), ["bbq", "truthfulqa"], options=opts,
                     checkpoint=Checkpoint(out, "m1", say=said.append))
    assert [s for s in said if "reused, finished earlier" in s] == [f"bbq: reused, finished earlier ({out})"]
    assert res["suites"]["bbq"] == partial["suites"]["bbq"]
    assert res["suites"]["truthfulqa"]["metrics"]["mc1"]["value"] == 1.0
    # another model in the same place (or other options, another seed): nothing is reused
    said.clear()
    run_suites(WordLearner(PROBS), ["bbq", "truthfulqa"], options=opts,
               checkpoint=Checkpoint(out, "m2", say=said.append))
    assert not [s for s in said if "reused" in s]


def test_quick_sizes_by_default_user_sizes_win_and_full_adds_none():
    opts, added = apply_sizes({"toxicity": {"samples": 9}, "bbq": {"items_file": "x.jsonl"}},
                              ["toxicity", "perplexity", "bbq"], full=False)
    assert opts["toxicity"] == {"samples": 9, "max_prompts": QUICK_SIZES["toxicity"]["max_prompts"]}
    assert opts["perplexity"] == {"max_tokens": QUICK_SIZES["perplexity"]["max_tokens"]}
    assert opts["bbq"] == {"items_file": "x.jsonl"}  # the user's own file is used whole
    assert added == {"toxicity": {"max_prompts": 50}, "perplexity": {"max_tokens": 20_000}}
    full, none = apply_sizes({"toxicity": {"samples": 9}}, ["toxicity", "perplexity"], full=True)
    assert full == {"toxicity": {"samples": 9}} and none == {}


def test_cli_evaluate_quick_by_default_writes_complete_results_and_reuses_them(tmp_path, shared_data):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from typer.testing import CliRunner

    from dynacure.cli.main import app
    from dynacure.learners.tiny_gpt import TinyGPT

    texts = [f"the cat number {i} sat on the mat ." for i in range(40)]
    model = tmp_path / "model"
    TinyGPT.create(texts, preset="nano", seed=0).save(model)
    out = tmp_path / "ev" / "results.json"
    mc = _bbq_tqa(tmp_path)["truthfulqa"]["items_file"]
    args = ["evaluate", str(model), "--suite", "truthfulqa,perplexity", "--out", str(out),
            "--option", f'truthfulqa.items_file="{mc}"', "--option", 'perplexity.corpora=["ptb"]',
            "--data-dir", str(shared_data)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "quick sizes (--full for the full sets): perplexity max_tokens=20000" in first.output
    res = json.loads(out.read_text())
    assert res["complete"] is True and res["sizes"] == "quick" and res["suites_pending"] == []
    assert res["suites"]["perplexity"]["details"]["corpora"]["ptb"]["words"] == 20_000
    assert not (out.parent / ".results.json.parts").exists()
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "truthfulqa: reused, finished earlier" in second.output
    assert "perplexity: reused, finished earlier" in second.output
    assert json.loads(out.read_text())["suites"] == res["suites"]
