"""The labels preset's path end to end on the demo corpus (issue 26): curation-only cells, the gold labels
answering raft_labels' proposal files through the runner, and RUNS/labels.json with gap_closed, its paired
interval and the share of label calls for the loop and both baselines."""

from __future__ import annotations

import json
import math

import pandas as pd

from dynacure.experiments.config import experiment_config_from_dict, load_preset
from dynacure.experiments.labels import ROLES
from dynacure.experiments.runner import run_experiment

COMMON = {"toxicity_signals": ["profanity"], "oracle": "gold"}
CONFIG = {
    "format_version": 1, "name": "labels_demo", "seeds": [0, 1], "budgets": [0.5], "target_size": 20,
    "workers": 1,
    "corpus": {"kind": "demo", "demo": {"n_docs": 400, "toxic_share": 0.3, "low_quality_share": 0.1,
                                        "seed": 0}},
    "scoring": {"signals": ["profanity"]},
    "strategies": [
        {"name": "raft", "label": "raft_cheap", "params": {"toxicity_signals": ["profanity"]}},
        {"name": "raft_labels", "label": "labels_all", "params": {**COMMON, "mode": "all"}},
        {"name": "raft_labels", "label": "labels_loop", "params": {**COMMON, "mode": "loop",
                                                                   "label_share": 0.1}},
        {"name": "raft_labels", "label": "labels_uncertainty", "params": {**COMMON, "mode": "uncertainty",
                                                                          "label_share": 0.1}},
        {"name": "raft_labels", "label": "labels_random", "params": {**COMMON, "mode": "random",
                                                                     "label_share": 0.1}},
    ],
    "weights": [{"name": "safety", "safety": 1.0, "alignment": 0.0, "utility": 0.0}],
    "learner": {"train": False},
    "evaluation": {"suites": ["perplexity"]},
}


def test_labels_experiment_writes_gap_closed_through_the_proposal_files(tmp_path):
    run_experiment(experiment_config_from_dict(CONFIG, origin="test"), tmp_path, workers=1)
    summary = json.loads((tmp_path / "labels.json").read_text())
    assert summary["roles"] == ROLES and summary["seeds"] == [0, 1]
    docs = pd.read_parquet(tmp_path / "documents.parquet")
    n_labelled = int(docs["meta_toxic"].notna().sum())
    assert summary["labelled_documents"] == n_labelled == 400
    calls = summary["expensive_calls"]
    assert all(v == n_labelled for v in calls["labels_all"].values())  # the ceiling: every label
    assert all(v == 40 for lab in ("labels_loop", "labels_uncertainty", "labels_random")
               for v in calls[lab].values())
    assert all(v == 0 for v in calls["raft_cheap"].values())
    for role in ("loop", "uncertainty", "random"):
        got = summary[role]
        assert got["expensive_call_share"] == 0.1
        lo, hi = got["gap_closed_interval"]
        assert lo <= got["gap_closed"] <= hi or math.isnan(got["gap_closed"])
    shares = summary["kept_gold_toxic_share"]
    assert all(shares["labels_all"][s] < shares["raft_cheap"][s] for s in ("0", "1"))  # a real gap
    assert summary["gap"]["value"] > 0 and summary["gap"]["interval"][1] > 0
    assert summary["secondary"]["status"].startswith("not run")
    # the cell kept the files a person would have: the proposals and the labels the oracle wrote
    loop_cells = sorted((tmp_path / "cells").glob("labels_loop__*"))
    assert len(loop_cells) == 2
    files = sorted(p.name for p in (loop_cells[0] / "labels").iterdir())
    assert files == ["labels.jsonl", "proposal-01.jsonl", "proposal-02.jsonl", "proposal-03.jsonl",
                     "proposal-04.jsonl", "state.json"]
    answered = (loop_cells[0] / "labels" / "labels.jsonl").read_text().splitlines()
    labelled = [json.loads(line) for line in answered]
    truth = docs.set_index("id")["meta_toxic"]
    assert len(labelled) == 40 and all(int(bool(truth[r["id"]])) == r["label"] for r in labelled)


def test_the_labels_preset_loads_with_its_roles_and_five_seeds():
    cfg = load_preset("labels")
    labels = {s.label or s.name for s in cfg.strategies}
    assert set(ROLES.values()) <= labels and cfg.seeds == [0, 1, 2, 3, 4] and not cfg.learner.train
