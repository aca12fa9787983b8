"""A curation-only experiment (learner.train = false): selections, composition, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dynacure.experiments.composition import ALL, write_composition
from dynacure.experiments.config import load_experiment_config
from dynacure.experiments.runner import run_experiment

CONFIG = """
format_version = 1
name = "compose"
seeds = [0]
budgets = [0.3, 0.5]
target_size = 20
workers = 1

[corpus]
kind = "demo"
demo = { n_docs = 300, toxic_share = 0.2, low_quality_share = 0.2, seed = 0 }

[scoring]
signals = ["profanity"]

[[strategies]]
name = "random"

[[strategies]]
name = "heuristic"

[learner]
train = false

[evaluation]
suites = ["perplexity"]
"""


def test_curation_only_grid_reports_selection_and_composition(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    runs = tmp_path / "runs"
    res = run_experiment(load_experiment_config(tmp_path / "c.toml"), runs)
    assert set(res["suite"]) == {"selection"}  # nothing was trained or evaluated
    assert res["train_tokens"].eq(0).all()
    shares = res[res["metric"] == "kept_tokens_share"].set_index(["strategy_name", "budget"])["value"]
    assert len(shares) == 4
    for (_, budget), share in shares.items():
        assert budget - 0.05 <= share <= budget + 1e-9  # fills the budget without passing it
    comp = write_composition(runs)
    assert json.loads((runs / "composition.json").read_text())["format_version"] == 1
    total = comp[comp["source"] == ALL].set_index(["strategy", "budget"])
    pool_toxic = total["pool_toxic_share"].iloc[0]
    heur = total.xs(0.5, level="budget").filter(like="heuristic", axis=0)["kept_toxic_share"].iloc[0]
    rand = total.xs(0.5, level="budget").filter(like="random", axis=0)["kept_toxic_share"].iloc[0]
    # The filter removes toxic documents; random keeps about the pool's share.
    assert heur < 0.5 * pool_toxic
    assert rand == pytest.approx(pool_toxic, abs=0.1)
    assert not pd.isna(pool_toxic) and pool_toxic > 0.1


def test_runs_folder_written_before_a_new_default_option_still_resumes(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    cfg = load_experiment_config(tmp_path / "c.toml")
    runs = tmp_path / "runs"
    first = run_experiment(cfg, runs)
    info = json.loads((runs / "experiment.json").read_text())
    del info["config"]["learner"]["params"]  # as written by a version without this (defaulted) field
    (runs / "experiment.json").write_text(json.dumps(info))
    again = run_experiment(cfg, runs)  # resumes: every cell is already done
    pd.testing.assert_frame_equal(first, again)
    info["config"]["learner"]["preset"] = "tiny"  # a real change is still refused
    (runs / "experiment.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="different learner"):
        run_experiment(cfg, runs)
