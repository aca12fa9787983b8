"""The disparity cap wired into `curate`: re-admission until the group ratio is under the cap, at the same
token budget, with every re-admission and every budget drop accounted for in the manifest."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io.attributes import write_attribute_shard
from dynacure.pipeline.curate import CAP_DROPPED, CAP_READMITTED, curate


def _corpus(tmp_path):
    """200 docs of 10 tokens; 40 mention muslims, 30 of them scored toxic; 20 of the other 160 toxic."""
    rows, tox = [], []
    for i in range(200):
        group = i < 40
        words = (["muslims"] if group else ["people"]) + [f"w{i}"] + ["and"] * 8
        rows.append({"id": f"d{i:03d}", "text": " ".join(words), "source": "t"})
        tox.append(0.95 if (i < 30 or 40 <= i < 60) else 0.0)
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    attrs = tmp_path / "attrs"
    write_attribute_shard(attrs, "toxicity_ngram", "s0", [r["id"] for r in rows], {"toxicity": np.array(tox)})
    return path, attrs


def test_curate_without_cap_over_removes_the_group(tmp_path):
    corpus, attrs = _corpus(tmp_path)
    res = curate(corpus, tmp_path / "plain", "classifier", 0.9, attributes=attrs, params={"reroute": False})
    man = res.manifest.set_index("id")
    group = [f"d{i:03d}" for i in range(40)]
    removed_group = (man.loc[group, "decision"] != "keep").mean()
    removed_all = (man["decision"] != "keep").mean()
    assert removed_group == pytest.approx(0.75) and removed_all == pytest.approx(0.25)
    assert res.summary["disparity_cap"] is None


def test_curate_with_cap_readmits_until_under_the_ratio_at_equal_budget(tmp_path):
    corpus, attrs = _corpus(tmp_path)
    res = curate(
        corpus,
        tmp_path / "capped",
        "classifier",
        0.9,
        attributes=attrs,
        params={"reroute": False},
        disparity_cap=1.25,
    )
    man = pd.read_parquet(tmp_path / "capped" / "manifest.parquet").set_index("id")
    group = [f"d{i:03d}" for i in range(40)]
    # overall removal 0.25 -> at most floor(1.25 * 0.25 * 40) = 12 of 40 group docs removed: 18 come back,
    # and 18 kept non-group docs leave so the kept tokens stay at 1500
    readmitted = man[man["reason"] == CAP_READMITTED]
    dropped = man[man["reason"] == CAP_DROPPED]
    assert len(readmitted) == 18 and (readmitted["decision"] == "keep").all()
    assert set(readmitted.index) <= set(group)
    assert len(dropped) == 18 and (dropped["decision"] == "drop").all()
    assert not set(dropped.index) & set(group)
    removed_group = (man.loc[group, "decision"] != "keep").mean()
    removed_all = (man["decision"] != "keep").mean()
    assert removed_group / removed_all == pytest.approx(1.2)
    s = res.summary
    assert (
        s["tokens_kept"] == 1500 and s["kept"] + s["dropped"] + s["quarantined"] == s["records_read"] == 200
    )
    cap = s["disparity_cap"]
    assert cap["readmitted"] == 18 and cap["dropped"] == 18
    assert cap["ratios_before"]["muslim"] == pytest.approx(3.0)
    assert cap["ratios_after"]["muslim"] == pytest.approx(1.2)
    assert s["kept_by_reason"][CAP_READMITTED] == 18 and s["dropped_by_reason"][CAP_DROPPED] == 18
    # the re-admitted documents are in the curated corpus
    kept_ids = {
        json.loads(line)["id"]
        for f in (tmp_path / "capped").glob("shard-*.jsonl.gz")
        for line in __import__("gzip").open(f, "rt")
    }
    assert set(readmitted.index) <= kept_ids and not set(dropped.index) & kept_ids


def test_cli_disparity_cap_option_and_bad_ratio(tmp_path):
    corpus, attrs = _corpus(tmp_path)
    runner = CliRunner()
    bad = runner.invoke(
        app,
        [
            "curate",
            str(corpus),
            "-s",
            "classifier",
            "-b",
            "0.9",
            "-o",
            str(tmp_path / "bad"),
            "--attributes",
            str(attrs),
            "--disparity-cap",
            "0.5",
        ],
    )
    assert bad.exit_code == 2 and "disparity-cap" in bad.output
    assert not (tmp_path / "bad").exists()
    ok = runner.invoke(
        app,
        [
            "curate",
            str(corpus),
            "-s",
            "classifier",
            "-b",
            "0.9",
            "-o",
            str(tmp_path / "ok"),
            "--attributes",
            str(attrs),
            "--param",
            "reroute=false",
            "--disparity-cap",
            "1.25",
        ],
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["disparity_cap"]["readmitted"] == 18
    assert json.loads((tmp_path / "ok" / "run.json").read_text())["config"]["disparity_cap"] == 1.25
