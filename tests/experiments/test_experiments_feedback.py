"""The feedback preset's pipeline end to end on the demo corpus: cheap RAFT, RAFT on the expensive scores,
the loop with counted expensive calls and its no-call ablation; RUNS/feedback.json holds the gap closed with
its interval, the kept gold-toxic shares and the calls. (The figures of the real preset are in
docs/results/feedback/; here the expensive scorer is `profanity` and the cheap one the demo n-gram model.)"""

from __future__ import annotations

import json
import math

from dynacure.experiments.config import experiment_config_from_dict, load_preset
from dynacure.experiments.demo import smoke_config
from dynacure.experiments.feedback import ROLES
from dynacure.experiments.runner import run_experiment

LOOP = {"steps": 8, "sample_size": 120, "probe_every": 4, "refine": False, "use_pairs": False,
        "candidates": 16, "train_batch": 8, "signals": ["toxicity_ngram", "alignment", "quality"],
        "toxicity_signal": "toxicity_ngram", "expensive_signal": "profanity"}


def test_feedback_experiment_writes_gap_closed_and_counted_calls(tmp_path):
    data = json.loads(smoke_config(n_docs=240).model_dump_json())
    data["seeds"] = [0, 1]
    data["strategies"] = [
        {"name": "random"},
        {"name": "raft", "label": "raft_cheap", "params": {"toxicity_signals": ["toxicity_ngram"]}},
        {"name": "raft", "label": "raft_expensive", "params": {"toxicity_signals": ["profanity"]}},
        {"name": "ppo", "label": "ppo_feedback", "params": {**LOOP, "query_share": 0.1}},
        {"name": "ppo", "label": "ppo_feedback_off", "params": {**LOOP, "query_share": 0.0}},
    ]
    run_experiment(experiment_config_from_dict(data, origin="test"), tmp_path, workers=1)
    summary = json.loads((tmp_path / "feedback.json").read_text())
    assert summary["roles"] == ROLES
    n_docs = summary["expensive_calls"]["raft_expensive"]
    assert n_docs == 240
    assert summary["expensive_calls"]["ppo_feedback"] == round(0.1 * 240)
    assert summary["expensive_calls"]["ppo_feedback_off"] == 0
    assert summary["expensive_call_share"] == round(0.1 * 240) / 240
    # profanity declares no forward FLOPs (the transformer does: forward_flops), so they are unknown, not 0
    flops = summary["expensive_flops"]
    assert math.isnan(flops["ppo_feedback"]) and flops["raft_cheap"] == 0
    head = summary["gap_closed_by_metric"]["loop"]["toxicity/toxicity_probability"]
    assert head["n_seeds"] == 2 and "gap_low" in head
    # the headline ratio is given only where the ceiling beats the floor beyond its interval
    assert (summary["gap_closed"] is not None) == head["defined"]
    assert head["defined"] or "no gap to close" in summary["gap_closed_reason"]
    shares = summary["kept_gold_toxic_share"]
    assert set(shares) == {"random", *ROLES.values()} and all(len(v) == 2 for v in shares.values())
    # the loop never read the expensive columns: its policy log names them as hidden
    logs = [json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*/train_log.json")]
    hidden = [lg["policy"]["expensive"]["hidden_columns"] for lg in logs
              if (lg.get("policy") or {}).get("expensive")]
    assert len(hidden) == 4 and all(h and all(c.startswith("profanity__") for c in h) for h in hidden)


def test_the_feedback_preset_loads_with_its_four_roles():
    cfg = load_preset("feedback")
    labels = {s.label or s.name for s in cfg.strategies}
    assert set(ROLES.values()) <= labels and len(cfg.seeds) == 3
