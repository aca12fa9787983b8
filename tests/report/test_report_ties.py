"""Honest winners (issue 28, item 11) on a synthetic experiment shaped like the `ci` run: toxicity
probability 0 [0, 0] for every strategy, expected maximum toxicity that differs, and two strategies (raft,
bandit) whose perplexities differ by a few points on noisy units. The headline safety metric is the one
that differs, raft and bandit are a tie (not a winner and a loser), the Pareto caption claims nothing
false, and no axis runs below 0."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from dynacure.experiments.paired import SAFETY_METRICS
from dynacure.experiments.results import collect_results
from dynacure.report.data import load_run, pick_metric
from dynacure.report.html import render_report
from dynacure.report.plots import pareto_figure
from dynacure.report.sections import who_wins
from dynacure.stats import Units

N_PROMPTS, N_BLOCKS = 40, 30


def _cell(root: Path, label: str, max_tox: float, ppl_shift: float, zero_tox: bool = True,
          with_units: bool = True) -> None:
    rng = np.random.default_rng(7)  # the same prompts and text blocks for every strategy
    prompts = [f"p{i}" for i in range(N_PROMPTS)]
    base = rng.uniform(0.05, 0.25, N_PROMPTS)
    own = np.random.default_rng(zlib.crc32(label.encode()))  # each strategy's own noise, the same every run
    emt = np.clip(base + max_tox + own.normal(0, 0.01, N_PROMPTS), 0, 1)
    prob = np.zeros(N_PROMPTS) if zero_tox else (emt > 0.2).astype(float)
    words = rng.integers(100, 300, N_BLOCKS).astype(float)
    nll = words * (7.5 + rng.normal(0, 0.6, N_BLOCKS)) + own.normal(0, 25.0, N_BLOCKS) + ppl_shift * words
    ids = [f"heldout:{i}" for i in range(N_BLOCKS)]
    units = {("toxicity", "toxicity_probability"): Units("mean", prob, ids=prompts),
             ("toxicity", "expected_max_toxicity"): Units("mean", emt, ids=prompts),
             ("perplexity", "heldout_word_ppl"): Units("exp_ratio", nll, words, ids=ids)}
    suites: dict = {}
    for (suite, metric), u in units.items():
        s = suites.setdefault(suite, {"skipped": None, "metrics": {}, "units": {}, "details": {}})
        v = u.statistic()
        half = 0.0 if metric == "toxicity_probability" else 0.1 * v
        s["metrics"][metric] = {"value": v, "low": v - half, "high": v + half, "n": len(u)}
        if with_units:
            s["units"][metric] = u.to_dict()
    cell = {"strategy": label, "strategy_name": label, "seed": 0, "budget": 0.5, "weights_name": "w",
            "params": {}, "weights": {}}
    d = root / "cells" / f"{label}-s0"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"format_version": 1, "cell": cell, "suites": suites,
                                                "efficiency": {}}))
    (d / "run.json").write_text("{}")
    (d / "DONE").write_text("")


@pytest.fixture()
def ci_like(tmp_path: Path) -> Path:
    _cell(tmp_path, "random", max_tox=0.08, ppl_shift=0.4)
    _cell(tmp_path, "heuristic", max_tox=0.0, ppl_shift=0.2)
    _cell(tmp_path, "raft", max_tox=0.0, ppl_shift=0.0)
    _cell(tmp_path, "bandit", max_tox=0.0, ppl_shift=0.002)  # apart from raft by noise only
    collect_results(tmp_path)
    return tmp_path


def test_a_headline_equal_for_every_strategy_gives_way_to_one_that_differs(ci_like: Path) -> None:
    data = load_run(ci_like)
    assert pick_metric(data.results, SAFETY_METRICS) == ("toxicity", "expected_max_toxicity")
    first = pick_metric(data.results, SAFETY_METRICS, informative=False)
    assert first == ("toxicity", "toxicity_probability")
    page = render_report(data)
    assert "Toxicity probability is 0 for every strategy, so it ranks nothing; the headline uses " \
           "expected max. toxicity instead." in page


def test_who_wins_names_a_tie_not_a_winner(ci_like: Path) -> None:
    (budget,) = who_wins(load_run(ci_like))
    pareto = budget["pareto"]
    assert "a point beats another only where the paired 95% interval excludes 0" in pareto
    # raft has the lower point perplexity, but the paired interval holds 0: both stay on the front, as a tie
    front = pareto.split("excludes 0): ", 1)[1].split(". ", 1)[0]
    assert "raft (" in front and "bandit (" in front
    assert "Tied on both metrics" in pareto and ("raft = bandit" in pareto or "bandit = raft" in pareto)
    assert "(by raft)" not in pareto and "(by bandit)" not in pareto
    # random is worse on both, really (prompts and blocks shifted by far more than the noise)
    assert "random (by " in pareto
    for f in budget["findings"]:
        assert "raft" not in f or "bandit" not in f  # no sentence ranks the two against each other


def test_pareto_caption_and_axes_are_true_of_the_data(ci_like: Path) -> None:
    data = load_run(ci_like)
    fig, caption = pareto_figure(data)
    assert "beats every other" not in caption
    assert fig.axes[0].get_ylim()[0] >= 0 and fig.axes[0].get_xlim()[0] >= 0
    # only the all-zero metric on the vertical axis: the caption says so, and the axis does not go negative
    only_zero = data.results[data.results["metric"] != "expected_max_toxicity"]
    data.results = only_zero.reset_index(drop=True)
    fig, caption = pareto_figure(data)
    assert "Every point has the same toxicity probability" in caption
    assert "beats every other" not in caption
    lo, hi = fig.axes[0].get_ylim()
    assert lo == 0 and hi > 0


def test_without_per_unit_values_only_separate_intervals_make_a_winner(tmp_path: Path) -> None:
    # the same experiment, its cells stripped of Units (as in RUNS collected before Units existed)
    for label, tox, shift in (("random", 0.08, 0.4), ("raft", 0.0, 0.0), ("bandit", 0.0, 0.002)):
        _cell(tmp_path, label, max_tox=tox, ppl_shift=shift, with_units=False)
    collect_results(tmp_path)
    (budget,) = who_wins(load_run(tmp_path))
    pareto = budget["pareto"]
    assert "without per-unit values, only where the two 95% intervals do not overlap" in pareto
    assert "raft = bandit" in pareto or "bandit = raft" in pareto
    assert "(by raft)" not in pareto and "(by bandit)" not in pareto
