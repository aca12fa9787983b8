"""expensive_calls / expensive_flops count what a strategy spent on the expensive scorer: 0 for a strategy
that makes no call, never NaN (issue 28, item 11: the demo's results had NaN there)."""

from __future__ import annotations

import math
from pathlib import Path

from dynacure.experiments.config import load_experiment_config
from dynacure.experiments.efficiency import expensive_figures
from dynacure.experiments.runner import run_experiment

CONFIG = """
format_version = 1
name = "zero-calls"
seeds = [0]
budgets = [0.5]
target_size = 20
workers = 1

[corpus]
kind = "demo"
demo = { n_docs = 120, toxic_share = 0.2, low_quality_share = 0.2, seed = 0 }

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


def test_expensive_figures_are_zero_without_calls_and_the_counts_with_them() -> None:
    assert expensive_figures(None) == {"expensive_calls": 0.0, "expensive_flops": 0.0}
    assert expensive_figures({}) == {"expensive_calls": 0.0, "expensive_flops": 0.0}
    got = expensive_figures({"calls": 24, "flops": 3.5e9, "seconds": 1.2})
    assert got == {"expensive_calls": 24.0, "expensive_flops": 3.5e9}


def test_strategies_without_calls_record_zero_in_the_results_table(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)
    res = run_experiment(load_experiment_config(tmp_path / "c.toml"), tmp_path / "runs")
    cells = res.drop_duplicates("cell_id")
    assert len(cells) == 2
    for col in ("expensive_calls", "expensive_flops"):
        values = cells[col].astype(float).tolist()
        assert not any(math.isnan(v) for v in values), (col, values)
        assert values == [0.0, 0.0]
