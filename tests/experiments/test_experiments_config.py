"""Experiment config: presets load, the grid expands as documented, bad input is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynacure.config import ConfigError
from dynacure.experiments.cells import expand_grid
from dynacure.experiments.config import (
    load_experiment_config,
    load_preset,
    preset_names,
    resolve_workers,
)

BASE = """
name = "t"
seeds = [0, 1]
budgets = [0.25, 0.5]
[corpus]
kind = "demo"
[scoring]
signals = ["profanity", "quality", "toxicity_ngram"]
[[strategies]]
name = "random"
[[strategies]]
name = "raft"
[[weights]]
name = "a"
safety = 0.7
alignment = 0.0
utility = 0.3
[[weights]]
name = "b"
safety = 0.4
alignment = 0.0
utility = 0.6
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def test_presets_ship_and_load():
    assert {"ci", "standard", "gpu"} <= set(preset_names())
    for name in ("ci", "standard", "gpu"):
        cfg = load_preset(name)
        assert cfg.strategies and cfg.seeds and cfg.budgets
    assert load_preset("ci").corpus.kind == "demo"
    assert load_preset("gpu").learner.hf_path is not None
    std = load_preset("standard")
    assert {s.name for s in std.strategies} >= {
        "random",
        "heuristic",
        "classifier",
        "raft",
        "dsir",
        "ppo",
        "bandit",
    }
    assert std.learner.preset == "base" and std.learner.base == "pretrained" and std.budgets == [0.5]
    assert std.seeds == [0, 1, 2, 3, 4]


def test_grid_expands_strategy_seed_budget_weights(tmp_path):
    cfg = load_experiment_config(write(tmp_path, BASE))
    cells = expand_grid(cfg)
    # random ignores the reward: 2 seeds x 2 budgets; raft: 2 seeds x 2 budgets x 2 weight sets
    assert len(cells) == 4 + 8
    assert len({c.cell_id for c in cells}) == len(cells)
    raft = [c for c in cells if c.strategy == "raft"]
    assert {c.weights_name for c in raft} == {"a", "b"}
    assert {(c.seed, c.budget) for c in raft} == {(0, 0.25), (0, 0.5), (1, 0.25), (1, 0.5)}
    # ids are stable across runs (resume depends on it)
    assert [c.cell_id for c in expand_grid(load_experiment_config(write(tmp_path, BASE)))] == [
        c.cell_id for c in cells
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("budgets = [0.25, 0.5]", "budgets = [0.0, 0.5]", "budget"),
        ("budgets = [0.25, 0.5]", "budgets = [1.5]", "(0, 1]"),
        ("utility = 0.3", "utility = 0.5", "sum to 1"),
        ("safety = 0.7", "safety = -0.7", "must be in [0, 1]"),
        ('name = "raft"', 'name = "raftt"', "unknown strategy"),
        ("seeds = [0, 1]", "seeds = [1, 1]", "seeds repeat"),
        ('[corpus]\nkind = "demo"', '[corpus]\nkind = "path"', "corpus.path"),
        (
            'signals = ["profanity", "quality", "toxicity_ngram"]',
            'signals = ["profanity", "toxicity_ngram"]',
            "quality",
        ),
        ('name = "t"', 'name = "t"\nbogus = 3', "bogus"),
    ],
)
def test_bad_configs_are_refused_with_the_field(tmp_path, old, new, message):
    assert old in BASE
    with pytest.raises(ConfigError) as err:
        load_experiment_config(write(tmp_path, BASE.replace(old, new, 1)))
    text = str(err.value)
    assert message in text
    assert str(tmp_path / "exp.toml") in text  # names the file


def test_unknown_strategy_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_experiment_config(write(tmp_path, BASE.replace('name = "raft"', 'name = "nope"')))
    assert "strategies.1.name = 'nope'" in str(err.value)
    assert "random" in str(err.value) and "ppo" in str(err.value)


def test_unknown_preset_names_the_shipped_ones():
    with pytest.raises(ConfigError, match="ci"):
        load_preset("nope")


def test_workers_auto_is_one_on_two_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert resolve_workers("auto", 10) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert resolve_workers("auto", 10) == 8
    assert resolve_workers("auto", 3) == 3
    assert resolve_workers(4, 2) == 2
