"""Paired differences between cells: exact answers on synthetic units (self-pairing, every unit worse,
seed pairing), refusal of units that differ, the best static baseline rule, the table collect_results
writes, and the Units the preference and held-out perplexity suites now carry."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dynacure.experiments.paired import (
    PAIRED_COLUMNS,
    PairingError,
    _blocks,
    _stats,
    best_static,
    cell_units,
    lower_is_better,
    paired_difference,
    paired_rows,
    read_paired,
)
from dynacure.stats import Units

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from eval_word_learner import WordLearner  # noqa: E402

IDS = [f"p{i}" for i in range(60)]


def _tox(values, ids=IDS) -> Units:
    return Units("mean", np.asarray(values, dtype=float), ids=list(ids))


def _metrics(strategy, seed, budget=0.5, weights="w", units=None, name=None, values=None):
    """A cell's metrics.json with the given Units per (suite, metric)."""
    suites: dict = {}
    for (suite, metric), u in (units or {}).items():
        s = suites.setdefault(suite, {"skipped": None, "metrics": {}, "units": {}})
        v = u.statistic()
        s["metrics"][metric] = {"value": v, "low": v, "high": v, "n": len(u)}
        s["units"][metric] = u.to_dict()
    for (suite, metric), v in (values or {}).items():
        s = suites.setdefault(suite, {"skipped": None, "metrics": {}, "units": {}})
        s["metrics"][metric] = {"value": v, "low": v, "high": v, "n": 1}
    return {
        "format_version": 1,
        "cell": {"strategy": strategy, "strategy_name": name or strategy, "seed": seed, "budget": budget,
                 "weights_name": weights, "params": {}, "weights": {}},
        "suites": suites,
        "efficiency": {},
    }


def _cell(strategy, seed, **kw):
    return cell_units(f"{strategy}-s{seed}-{kw.get('weights', 'w')}", _metrics(strategy, seed, **kw))


# ---- one comparison ----------------------------------------------------------------------------------------


def test_a_strategy_against_itself_is_exactly_zero() -> None:
    rng = np.random.default_rng(1)
    u = _tox(rng.random(60))
    r = paired_difference([(u, u), (u, u)], n_boot=500)
    assert (r.diff, r.low, r.high) == (0.0, 0.0, 0.0)
    assert not r.significant and r.n_seeds == 2 and r.n_units == 60
    groups = ["a"] * 20 + ["b"] * 40
    e = Units("exp_ratio", rng.random(60) * 30, rng.integers(5, 15, 60).astype(float), ids=IDS, groups=groups)
    r = paired_difference([(e, e)], n_boot=300)
    assert (r.diff, r.low, r.high) == (0.0, 0.0, 0.0)


def test_worse_on_every_unit_is_significant_with_the_right_sign() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(60) * 0.5
    b = a + 0.05 + 0.1 * rng.random(60)  # the baseline is more toxic on every prompt
    r = paired_difference([(_tox(a), _tox(b))], n_boot=1000)
    assert r.diff == pytest.approx(float(np.mean(a - b)))
    assert r.low <= r.diff <= r.high < 0 and r.significant
    assert r.low >= -0.15 and r.high <= -0.05  # every per-unit difference lies in [-0.15, -0.05]
    # through the experiment table: a less toxic strategy is "better" than random
    cells = [_cell("good", 0, units={("toxicity", "toxicity_probability"): _tox(a)}, name="heuristic"),
             _cell("random", 0, units={("toxicity", "toxicity_probability"): _tox(b)})]
    df, notes = paired_rows(cells, n_boot=500)
    row = df[(df["strategy"] == "good") & (df["baseline"] == "random")].iloc[0]
    assert bool(row["significant"]) and bool(row["better"]) and bool(row["lower_is_better"])
    assert row["diff"] < 0 and row["n_seeds"] == 1 and row["n_units"] == 60
    assert notes["random"] == "random" and notes["best_static"] == {"0.5/w": "good"}


def test_units_that_differ_are_refused() -> None:
    a = _tox(np.zeros(60))
    with pytest.raises(PairingError, match="different units"):
        paired_difference([(a, _tox(np.zeros(60), ids=[f"q{i}" for i in range(60)]))])
    with pytest.raises(PairingError, match="different units"):
        paired_difference([(a, _tox(np.zeros(59), ids=IDS[:59]))])
    with pytest.raises(PairingError, match="without ids"):
        paired_difference([(a, Units("mean", np.zeros(60)))])
    with pytest.raises(PairingError, match="kind"):
        paired_difference([(a, Units("exp_ratio", np.zeros(60), np.ones(60), ids=IDS))])
    key = ("toxicity", "toxicity_probability")
    cells = [_cell("ppo", 0, units={key: a}), _cell("random", 0, units={key: _tox(np.zeros(30), IDS[30:])})]
    df, notes = paired_rows(cells, n_boot=100)
    assert df.empty
    assert notes["refused"][0]["strategy"] == "ppo" and "different units" in notes["refused"][0]["reason"]


def test_units_in_another_order_are_aligned_by_id() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(60), rng.random(60)
    order = rng.permutation(60)
    shuffled = Units("mean", b[order], ids=[IDS[i] for i in order])
    r1 = paired_difference([(_tox(a), _tox(b))], n_boot=400)
    r2 = paired_difference([(_tox(a), shuffled)], n_boot=400)
    assert (r1.diff, r1.low, r1.high) == pytest.approx((r2.diff, r2.low, r2.high))


def test_seeds_are_combined_only_where_both_have_them() -> None:
    key = ("toxicity", "toxicity_probability")
    ones, zeros, half = _tox(np.ones(60)), _tox(np.zeros(60)), _tox(np.full(60, 0.5))
    cells = [
        _cell("ppo", 0, units={key: ones}),  # random has no seed 0: a difference of 1 must not count
        _cell("ppo", 1, units={key: half}),
        _cell("ppo", 2, units={key: half}),
        _cell("random", 1, units={key: zeros}),
        _cell("random", 2, units={key: half}),
        _cell("random", 3, units={key: zeros}),
    ]
    df, _ = paired_rows(cells, n_boot=200)
    row = df[df["strategy"] == "ppo"].iloc[0]
    assert row["n_seeds"] == 2
    assert row["diff"] == pytest.approx((0.5 + 0.0) / 2)
    assert (row["low"], row["high"]) == pytest.approx((0.25, 0.25))  # constant units: no spread


def test_pairing_is_narrower_than_the_unpaired_difference_when_units_are_correlated() -> None:
    rng = np.random.default_rng(4)
    difficulty = rng.random(200) * 10  # most of the spread is the unit, shared by both strategies
    a = difficulty + rng.normal(0, 0.3, 200)
    b = difficulty + 0.4 + rng.normal(0, 0.3, 200)
    pairs = [(_tox(a, [f"u{i}" for i in range(200)]), _tox(b, [f"u{i}" for i in range(200)]))]
    paired = paired_difference(pairs, n_boot=1000)
    unpaired = paired_difference(pairs, n_boot=1000, paired=False)
    assert paired.high < 0 and paired.significant  # pairing sees the 0.4 difference
    assert unpaired.low < 0 < unpaired.high  # without pairing it drowns in the units' spread
    assert (paired.high - paired.low) * 5 < unpaired.high - unpaired.low
    assert paired.diff == pytest.approx(unpaired.diff)


def test_vectorised_statistic_equals_units_statistic() -> None:
    rng = np.random.default_rng(5)
    groups = ["x"] * 10 + ["y"] * 25 + ["z"] * 5
    u = Units("exp_ratio", rng.random(40) * 20, rng.integers(1, 9, 40).astype(float), ids=None, groups=groups)
    blocks = _blocks(u, 7, rng)
    got = _stats(u, blocks)
    for row in range(7):
        idx = np.concatenate([b[row] for b in blocks])
        assert got[row] == pytest.approx(u.statistic(idx))
    flat = Units("mean", rng.random(40))
    blocks = _blocks(flat, 3, rng)
    assert _stats(flat, blocks) == pytest.approx([flat.statistic(blocks[0][r]) for r in range(3)])


def test_orientation_by_name() -> None:
    assert lower_is_better("toxicity_probability") and lower_is_better("word_perplexity_tweets")
    assert lower_is_better("toxic_continuation_share") and lower_is_better("heldout_word_ppl")
    assert lower_is_better("accuracy") is False and lower_is_better("harmless-base_accuracy") is False
    assert lower_is_better("kept_docs_share") is None


# ---- the best static baseline ------------------------------------------------------------------------------


def test_best_static_baseline_by_rank_sum_on_the_headline_metrics() -> None:
    tox, util = ("toxicity", "toxicity_probability"), ("domain_perplexity", "word_perplexity_macro")
    cells = [
        _cell("heuristic", 0, values={tox: 0.30, util: 100.0}),  # ranks 2 + 1 = 3
        _cell("classifier", 0, values={tox: 0.10, util: 300.0}),  # ranks 1 + 3 = 4
        _cell("source_filter", 0, values={tox: 0.40, util: 200.0}),  # ranks 3 + 2 = 5
        _cell("ppo", 0, values={tox: 0.0, util: 50.0}),  # learned: never a static baseline
        _cell("random", 0, values={tox: 0.9, util: 90.0}),
    ]
    by_label = {c.strategy: [c] for c in cells}
    assert best_static(by_label, 0.5, "w") == "heuristic"
    # a tie on the rank sum goes to the better utility
    cells[1] = _cell("classifier", 0, values={tox: 0.10, util: 150.0})  # ranks 1 + 2 = 3, heuristic 2 + 1 = 3
    by_label = {c.strategy: [c] for c in cells}
    assert best_static(by_label, 0.5, "w") == "heuristic"
    assert best_static({"ppo": [cells[3]]}, 0.5, "w") is None


def test_reward_free_baseline_pairs_with_every_weight_set() -> None:
    key = ("toxicity", "toxicity_probability")
    cells = [_cell("random", 0, weights="w1", units={key: _tox(np.full(60, 0.5))}),
             _cell("ppo", 0, weights="w1", units={key: _tox(np.full(60, 0.2))}),
             _cell("ppo", 0, weights="w2", units={key: _tox(np.full(60, 0.1))})]
    df, _ = paired_rows(cells, n_boot=100)
    got = df.set_index("weights")["diff"].to_dict()
    assert got == pytest.approx({"w1": -0.3, "w2": -0.4})


# ---- written by collect_results ----------------------------------------------------------------------------


def test_collect_results_writes_the_paired_table(tmp_path: Path) -> None:
    from dynacure.experiments.results import collect_results

    rng = np.random.default_rng(6)
    tox = ("toxicity", "toxicity_probability")
    base = rng.random(60)
    texts = [f"t{i}" for i in range(30)]
    nll, words = rng.random(30) * 50, rng.integers(5, 20, 30).astype(float)
    for strat, shift in (("random", 0.0), ("heuristic", -0.2), ("ppo", 0.1)):
        for seed in (0, 1):
            ppl = Units("exp_ratio", nll * (1 + shift), words, ids=texts)
            units = {tox: _tox(np.clip(base + shift + 0.01 * seed, 0, 1)),
                     ("perplexity", "heldout_word_ppl"): ppl}
            d = tmp_path / "cells" / f"{strat}-{seed}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps(_metrics(strat, seed, units=units)))
            (d / "run.json").write_text("{}")
            (d / "DONE").write_text("")
    res = collect_results(tmp_path)
    assert res.attrs["runs"] == str(tmp_path)
    paired = read_paired(tmp_path)
    assert list(paired.columns) == list(PAIRED_COLUMNS)
    # ppo and heuristic against random, ppo against the best static (heuristic, the only one): 3 x 2 metrics
    assert len(paired) == 6
    assert set(zip(paired["strategy"], paired["baseline_role"], strict=True)) == {
        ("ppo", "random"), ("heuristic", "random"), ("ppo", "best_static")}
    h = paired[(paired["strategy"] == "heuristic") & (paired["metric"] == "toxicity_probability")].iloc[0]
    assert h["n_seeds"] == 2 and h["significant"] and h["better"]
    want = np.mean([np.mean(np.clip(base - 0.2 + 0.01 * s, 0, 1) - np.clip(base + 0.01 * s, 0, 1))
                    for s in (0, 1)])
    assert h["diff"] == pytest.approx(want, abs=1e-12)
    p = paired[(paired["strategy"] == "ppo") & (paired["metric"] == "heldout_word_ppl")
               & (paired["baseline"] == "random")].iloc[0]
    assert p["significant"] and not p["better"] and p["diff"] > 0
    saved = json.loads((tmp_path / "paired.json").read_text())
    assert saved["best_static"] == {"0.5/w": "heuristic"} and len(saved["rows"]) == 6
    assert saved["refused"] == []
    # the terminal summary prints the paired table under the headline one
    from rich.console import Console

    from dynacure.cli.experiment import summary_table

    console = Console(record=True, width=200)
    console.print(summary_table(res))
    text = console.export_text()
    assert "paired differences vs random and the best static baseline" in text
    line = next(x for x in text.splitlines() if "heuristic (best static)" in x)
    assert "ppo" in line and line.count("*") == 2  # worse on both metrics, both significant


# ---- Units of the suites owned here ------------------------------------------------------------------------


def test_preference_suite_carries_per_pair_units(tmp_path: Path) -> None:
    from dynacure.evaluation.preference import PreferenceSuite

    for sub in ("harmless-base", "helpful-base"):
        folder = tmp_path / "hh-rlhf" / sub
        folder.mkdir(parents=True)
        with gzip.open(folder / "test.jsonl.gz", "wt") as fh:
            for i in range(30):
                pre = f"\n\nHuman: question {i}\n\nAssistant:"
                c, r = ("good", "bad") if i % 10 else ("bad", "good")
                fh.write(json.dumps({"chosen": pre + " " + c, "rejected": pre + " " + r}) + "\n")
    suite = PreferenceSuite(subsets=["harmless-base", "helpful-base"], data_dir=str(tmp_path))
    res = suite.run(WordLearner({"good": 0.5, "bad": 0.1}))
    for name, est in res.metrics.items():
        u = res.units[name]
        assert u.kind == "mean" and u.statistic() == pytest.approx(est.value) and len(u) == est.n
        assert len(set(u.ids)) == len(u.ids)
    assert res.units["accuracy"].ids[0].startswith("harmless-base:")
    other = suite.run(WordLearner({"good": 0.1, "bad": 0.5}))
    r = paired_difference([(res.units["accuracy"], other.units["accuracy"])], n_boot=300)
    assert r.significant and r.diff > 0  # preferring "good" wins exactly the pairs where it is chosen


def test_heldout_suite_carries_per_window_units(tmp_path: Path) -> None:
    from dynacure.experiments.heldout import HeldoutPerplexitySuite

    text = tmp_path / "heldout.txt"
    text.write_text(" ".join(["good", "ok", "bad", "zzz"] * 120))
    suite = HeldoutPerplexitySuite(text)
    a = suite.run(WordLearner({"good": 0.5, "ok": 0.3, "bad": 0.1}))
    b = suite.run(WordLearner({"good": 0.3, "ok": 0.3, "bad": 0.3}))
    for name in ("heldout_token_ppl", "heldout_word_ppl"):
        u = a.units[name]
        assert u.kind == "exp_ratio" and u.statistic() == pytest.approx(a.metrics[name].value)
        assert u.ids == b.units[name].ids and len(u) == a.details["windows"]
    assert int(a.units["heldout_word_ppl"].weights.sum()) == 480  # weights of the word metric: words
    r = paired_difference([(a.units["heldout_word_ppl"], b.units["heldout_word_ppl"])], n_boot=300)
    assert r.diff == pytest.approx(a.metrics["heldout_word_ppl"].value - b.metrics["heldout_word_ppl"].value)


def test_gap_closed_is_the_share_of_the_floor_to_ceiling_gap_with_a_paired_interval() -> None:
    from dynacure.experiments.paired import gap_closed

    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(400)]
    triples = []
    for _ in range(3):  # seeds
        hard = rng.random(400)  # the units' own difficulty, shared by all three strategies
        floor = Units("mean", (hard < 0.5).astype(float), ids=ids)
        ceiling = Units("mean", (hard < 0.1).astype(float), ids=ids)
        mid = Units("mean", (hard < 0.2).astype(float), ids=ids)
        triples.append((floor, ceiling, mid))
    g = gap_closed(triples, n_boot=500)
    f, c, m = (np.mean([t[i].statistic() for t in triples]) for i in range(3))
    assert g["value"] == pytest.approx((f - m) / (f - c))
    assert 0.6 < g["value"] < 0.9 and g["low"] <= g["value"] <= g["high"]
    assert g["gap_low"] > 0 and g["n_seeds"] == 3
    # the ceiling against itself closes all of the gap, exactly, in every resample
    same = gap_closed([(a, b, b) for a, b, _ in triples], n_boot=200)
    assert same["value"] == pytest.approx(1.0) and same["low"] == pytest.approx(1.0)
    with pytest.raises(PairingError):
        gap_closed([])
