"""The labels comparison on a user corpus (issue 26, docs/results/feedback/labels_only): a JSONL file whose
documents carry ``meta.toxic`` read with corpus.kind = "path", the gold oracle answering from that meta, and
RUNS/labels.json with both paired differences (loop vs uncertainty, loop vs random) at the second share of
calls. The committed configs are the ``labels`` preset as run: only the corpus, the name and the budget
differ."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dynacure.experiments.config import experiment_config_from_dict, load_experiment_config, load_preset
from dynacure.experiments.runner import run_experiment
from dynacure.io.demo_corpus import generate_demo_corpus

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results" / "feedback" / "labels_only"
COMMON = {"toxicity_signals": ["profanity"], "oracle": "gold", "rounds": 2}


def _strategies() -> list[dict]:
    out: list[dict] = [{"name": "raft", "label": "raft_cheap", "params": {"toxicity_signals": ["profanity"]}},
                       {"name": "raft_labels", "label": "labels_all", "params": {**COMMON, "mode": "all"}}]
    for suffix, share in (("", 0.1), ("_lo", 0.05)):
        out += [{"name": "raft_labels", "label": f"labels_{mode}{suffix}",
                 "params": {**COMMON, "mode": mode, "label_share": share}}
                for mode in ("loop", "uncertainty", "random")]
    return out


def test_a_jsonl_corpus_with_meta_toxic_runs_the_labels_comparison(tmp_path):
    docs = generate_demo_corpus(n_docs=300, toxic_share=0.5, low_quality_share=0.1, seed=1)
    corpus = tmp_path / "labelled.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "text": d.text, "source": d.source,
                                          "meta": {"toxic": d.meta["toxic"]}}) + "\n" for d in docs))
    cfg = {"format_version": 1, "name": "labels_path", "seeds": [0, 1], "budgets": [0.4], "target_size": 20,
           "workers": 1, "corpus": {"kind": "path", "path": str(corpus)},
           "scoring": {"signals": ["profanity"]},
           "strategies": _strategies(),
           "weights": [{"name": "safety", "safety": 1.0, "alignment": 0.0, "utility": 0.0}],
           "learner": {"train": False}, "evaluation": {"suites": ["perplexity"]}}
    runs = tmp_path / "runs"
    run_experiment(experiment_config_from_dict(cfg, origin="test"), runs, workers=1)
    summary = json.loads((runs / "labels.json").read_text())
    assert summary["labelled_documents"] == 300
    assert all(v == 30 for v in summary["expensive_calls"]["labels_loop"].values())
    assert all(v == 15 for v in summary["expensive_calls"]["labels_loop_lo"].values())
    # the oracle's answers are the corpus file's meta.toxic, not anything the scorers computed
    truth = {d.id: int(d.meta["toxic"]) for d in docs}
    cell = sorted((runs / "cells").glob("labels_uncertainty__*"))[0]
    answered = [json.loads(line) for line in (cell / "labels" / "labels.jsonl").read_text().splitlines()]
    assert len(answered) == 30 and all(truth[r["id"]] == r["label"] for r in answered)
    lo = summary["other_call_shares"]["lo"]
    for key, other in (("loop_vs_uncertainty", "uncertainty"), ("loop_vs_random", "random")):
        got = lo[key]
        expect = lo[other]["kept_gold_toxic_share"] - lo["loop"]["kept_gold_toxic_share"]
        assert abs(got["difference"] - expect) < 1e-12
        assert got["interval"][0] <= got["interval"][1]
    docs_table = pd.read_parquet(runs / "documents.parquet", columns=["id", "meta_toxic"])
    assert int(docs_table["meta_toxic"].sum()) == sum(truth.values())


def test_the_committed_configs_are_the_labels_preset_on_another_corpus():
    preset = load_preset("labels").model_dump()
    for name, budget in (("labels_only.toml", 0.5), ("labels_only_b03.toml", 0.3)):
        cfg = load_experiment_config(RESULTS / name).model_dump()
        assert cfg["corpus"]["kind"] == "path" and cfg["budgets"] == [budget]
        differ = sorted(k for k in preset if preset[k] != cfg[k])
        assert differ == (["budgets", "corpus", "name"] if budget != 0.5 else ["corpus", "name"])
