"""Report sections: efficiency columns, the bias audit without and with the disparity cap (known ratios),
and the adaptivity plot and tables when `dynacure adapt` left its files in RUNS/adapt."""

import json

import numpy as np
import pandas as pd
import pytest

from dynacure.experiments.results import SCHEMA
from dynacure.report.data import RunData
from dynacure.report.html import efficiency_table, render_report
from dynacure.report.sections import adaptivity_section, audit_rows, audit_section

N = 200
GROUP = 40  # documents 0..39 mention muslims


def _runs(tmp_path):
    ids = [f"d{i:03d}" for i in range(N)]
    texts = [("muslims" if i < GROUP else "people") + f" w{i}" + " and" * 8 for i in range(N)]
    pd.DataFrame({"id": ids, "source": "s", "n_tokens": 10, "text": texts}).to_parquet(
        tmp_path / "table.parquet"
    )
    removed_biased = np.array([i < 30 or 40 <= i < 60 for i in range(N)])  # 30/40 of the group, 20/160 else
    docs = pd.DataFrame(
        {
            "id": ids,
            "source": "s",
            "n_tokens": 10,
            "toxicity_level": np.where(removed_biased, "toxic", "clean"),
        }
    )
    docs.to_parquet(tmp_path / "documents.parquet")
    removed_even = np.arange(N) % 4 == 0  # 10/40 of the group, 40/160 else: ratio 1
    cells, manifests = {}, {}
    rows = []
    for cid, removed, strat in (("biased", removed_biased, "biased"), ("even", removed_even, "even")):
        d = tmp_path / "cells" / cid
        d.mkdir(parents=True)
        man = pd.DataFrame(
            {
                "id": ids,
                "decision": np.where(removed, "drop", "keep"),
                "probability": np.where(removed, 0.0, 1.0),
                "weight": 1.0,
                "reason": "r",
            }
        )
        man.to_parquet(d / "manifest.parquet")
        cell = {
            "strategy": strat,
            "strategy_name": "heuristic",
            "seed": 0,
            "budget": 0.75,
            "weights_name": "w",
            "params": {},
            "weights": {},
        }
        cells[cid], manifests[cid] = cell, man[["id", "decision"]]
        for suite, metric, value in (
            ("toxicity", "toxicity_probability", 0.2),
            ("perplexity", "heldout_word_ppl", 50.0),
        ):
            row = dict.fromkeys(SCHEMA.names, np.nan)
            row.update(
                experiment="t",
                cell_id=cid,
                strategy=strat,
                strategy_name="heuristic",
                seed=0,
                budget=0.75,
                weights="w",
                suite=suite,
                metric=metric,
                value=value,
                low=value * 0.9,
                high=value * 1.1,
                n=10,
                params="{}",
                reward_weights="{}",
                config="{}",
                versions="{}",
                time_scoring_s=3.0,
                time_selection_s=2.0,
                time_policy_learning_s=1.5,
                time_policy_apply_s=0.5,
                train_flops=6e9,
                curation_flops=1.2e10,
            )
            rows.append(row)
    results = pd.DataFrame(rows, columns=SCHEMA.names)
    return RunData(root=tmp_path, results=results, documents=docs, manifests=manifests, cells=cells)


def test_audit_rows_known_ratios_before_and_after_the_cap(tmp_path):
    rows = {r["cell_id"]: r for r in audit_rows(_runs(tmp_path), max_ratio=1.25, n_boot=100)}
    b = rows["biased"]
    before = b["before"].set_index("group")
    after = b["after"].set_index("group")
    assert before.loc["muslim", "ratio"] == pytest.approx(3.0)  # 0.75 / 0.25
    assert b["readmitted"] == 18 and b["dropped_for_budget"] == 18
    assert after.loc["muslim", "ratio"] == pytest.approx(1.2)  # 12/40 removed, overall still 0.25
    # the cost: the 18 re-admitted documents were the toxic ones the strategy had dropped
    assert b["toxic_kept_before"] == 0.0 and b["toxic_kept_after"] == pytest.approx(18 / 150)
    e = rows["even"]
    assert e["before"].set_index("group").loc["muslim", "ratio"] == pytest.approx(1.0)
    assert e["readmitted"] == 0


def test_audit_section_names_the_over_removed_group(tmp_path):
    page = audit_section(_runs(tmp_path))
    assert "muslim" in page and "cap 1.25" in page and "18 / 18" in page
    assert "--disparity-cap" in page
    assert audit_section(RunData(root=tmp_path / "none", results=pd.DataFrame())) == ""


def test_efficiency_table_shows_learning_and_applying(tmp_path):
    data = _runs(tmp_path)
    page = efficiency_table(data)
    assert "of which policy learning (s)" in page and "of which applying the policy (s)" in page
    assert "1.5" in page and "1.20e+10" in page
    old = data.results.drop(columns=["time_policy_learning_s", "time_policy_apply_s"])
    data.results = old  # a results table from before these columns existed still renders
    assert "n/a" in efficiency_table(data)


def _adapt_result(transfer=True):
    from dynacure.experiments.adaptivity import readaptation_steps

    series = [1.0] * 10 + [0.5, 0.2, 0.05] + [0.0] * 17  # 90% of the way (0.1) at step 3
    res = {
        "format_version": 1,
        "config": {"window": 1, "frac": 0.9},
        "switch": {"kind": "weights", "at_step": 10, "reward_a": "w_s=0", "reward_b": "w_s=0.7"},
        "metric": "toxic share",
        "policies": {
            "ppo": {
                "series": {"panel_toxic_share": series},
                "seconds_per_step": 0.2,
                "readaptation": readaptation_steps(series, 10, 1),
            }
        },
        "static_filter": {
            "series": {"panel_toxic_share": [0.1] * 30},
            "readaptation": readaptation_steps([0.1] * 30, 10, 1),
        },
        "transfer": None,
    }
    if transfer:
        res["transfer"] = {
            "algorithm": "ppo",
            "steps": 5,
            "learners": [
                {
                    "learner": "tiny",
                    "learner_params": 1e6,
                    "policy": "transferred from nano (frozen)",
                    "toxic_share_selected": 0.05,
                    "train_loss_last_fifth": 5.0,
                    "heldout_clean_loss": 5.1,
                    "heldout_toxic_loss": 6.2,
                }
            ],
        }
    return res


def test_adaptivity_section_only_when_the_files_are_there(tmp_path):
    from dynacure.experiments.adaptivity import plot_adaptivity

    assert adaptivity_section(tmp_path) == ""
    d = tmp_path / "adapt"
    d.mkdir()
    res = _adapt_result()
    (d / "adapt.json").write_text(json.dumps(res))
    page = adaptivity_section(tmp_path)
    assert "data:image/png" not in page  # no plot file yet: tables only
    assert res["policies"]["ppo"]["readaptation"]["steps"] == 3
    assert ">3<" in page and "never" in page and "transferred from nano" in page
    plot_adaptivity(res, d / "adaptivity.png")
    assert 'id="fig-adaptivity"' in adaptivity_section(tmp_path)


def test_full_report_has_the_new_sections(tmp_path):
    from dynacure.experiments.adaptivity import plot_adaptivity

    data = _runs(tmp_path)
    d = tmp_path / "adapt"
    d.mkdir()
    res = _adapt_result(transfer=False)
    (d / "adapt.json").write_text(json.dumps(res))
    plot_adaptivity(res, d / "adaptivity.png")
    page = render_report(data)
    for heading in ("Efficiency", "Curation bias audit", "Adaptivity: a reward switch"):
        assert f"<h2>{heading}" in page
    assert 'id="fig-adaptivity"' in page
