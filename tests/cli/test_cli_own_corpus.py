"""A user's own corpus (issue 28 items 1, 6, 10): stale scores after an edit, a folder of mixed files, and
wall times that cover the whole command.

Every case writes its corpus in ``tmp_path`` and runs the real ``dynacure`` commands with the real
``profanity`` signal (alt-profanity-check's shipped model: no training, milliseconds per document).
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io.attributes import TEXT_DIGEST, read_attributes, text_digest, write_attribute_shard
from dynacure.signals.base import Signal, available_signals, register_signal

INSULT = "you are a stupid worthless idiot, shut the fuck up you dumb moron"
TOPICS = ("the river", "the old mill", "the harvest", "the town council", "the railway", "the library")


def _paragraph(i: int) -> str:
    return (f"Paragraph {i} tells how {TOPICS[i % len(TOPICS)]} changed over the years, with notes on the "
            f"weather, the fields and the people who lived near {TOPICS[(i + 1) % len(TOPICS)]}.")


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _own_corpus(path, n=120, insult_at=None):
    rows = [{"id": f"p{i}", "text": INSULT if i == insult_at else _paragraph(i)} for i in range(n)]
    return _write_jsonl(path, rows)


def _invoke(args, tmp_path):
    env = {"DYNACURE_HOME": str(tmp_path / "home"), "DYNACURE_DATA": str(tmp_path / "no-data"),
           "COLUMNS": "400"}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def _ok(res):
    assert res.exit_code == 0, (res.exit_code, res.output, res.exception)
    return res.output


def _error(res) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert lines and lines[-1].startswith("error: "), res.stderr
    return lines[-1]


def _score_args(corpus, out, *extra):
    return ["score", corpus, "--signals", "profanity", "--out", out, "--workers", "1", "--no-progress",
            "--shard-size", "50", *extra]


def _run_summary(out):
    return json.loads((out / "run.json").read_text())["summary"]


# ---- item 1: stale scores ------------------------------------------------------------------------------

def test_resume_rescores_the_document_whose_text_changed(tmp_path):
    corpus = _own_corpus(tmp_path / "own.jsonl")
    out = tmp_path / "attrs"
    _ok(_invoke(_score_args(corpus, out), tmp_path))
    before = read_attributes(out).set_index("id")["profanity__toxicity"]
    assert before["p7"] < 0.5
    stored = pq.read_table(out / "profanity" / "shard-00000.parquet")
    assert stored.column(TEXT_DIGEST).to_pylist()[7] == text_digest(_paragraph(7))

    _own_corpus(corpus, insult_at=7)  # the user edits one document
    output = _ok(_invoke(_score_args(corpus, out), tmp_path))
    assert "re-scored 1 document whose text changed" in output and "p7" in output
    after = read_attributes(out).set_index("id")["profanity__toxicity"]
    assert after["p7"] > 0.9
    pd.testing.assert_series_equal(after.drop("p7"), before.drop("p7"))
    summary = _run_summary(out)
    assert summary["rescored_docs"] == {"profanity": 1} and summary["changed_ids"] == {"profanity": ["p7"]}
    assert summary["scored_docs"] == {"profanity": 1} and summary["resumed_docs"] == {"profanity": 119}

    # the patched table is the table a fresh run writes
    fresh = tmp_path / "fresh"
    _ok(_invoke(_score_args(corpus, fresh), tmp_path))
    for shard in ("shard-00000", "shard-00001", "shard-00002"):
        assert pq.read_table(out / "profanity" / f"{shard}.parquet").equals(
            pq.read_table(fresh / "profanity" / f"{shard}.parquet"))
    # and a third run has nothing left to do
    output = _ok(_invoke(_score_args(corpus, out), tmp_path))
    assert "re-scored" not in output and _run_summary(out)["scored_docs"] == {"profanity": 0}


@pytest.mark.parametrize("extra", [[], ["--shard-size", "70"], ["--disparity-cap", "1.5"]],
                         ids=["streaming", "join-on-id", "in-memory"])
def test_curate_refuses_attributes_of_other_text(tmp_path, extra):
    corpus = _own_corpus(tmp_path / "own.jsonl")
    attrs = tmp_path / "attrs"
    _ok(_invoke(_score_args(corpus, attrs), tmp_path))
    _own_corpus(corpus, insult_at=7)
    out = tmp_path / "cur"
    line = _error(_invoke(["curate", corpus, "-s", "heuristic", "-b", "0.9", "--attributes", attrs,
                           "--out", out, *extra], tmp_path))
    assert "attributes of other text" in line and "1 document (p7)" in line
    assert str(attrs / "profanity") in line
    assert not (out / "summary.json").exists()

    _ok(_invoke(_score_args(corpus, attrs), tmp_path))  # the resume re-scores p7; now curate accepts
    _ok(_invoke(["curate", corpus, "-s", "heuristic", "-b", "0.9", "--attributes", attrs, "--out", out,
                 *extra], tmp_path))
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("id")
    assert manifest.loc["p7", "decision"] == "drop"


def test_old_attribute_tables_without_digests(tmp_path, caplog):
    """Decision: curate accepts tables scored before ``text_digest`` existed, with a warning; a score
    resume scores such shards again (nothing says which texts they were computed from)."""
    corpus = _own_corpus(tmp_path / "own.jsonl", n=60)
    attrs = tmp_path / "attrs"
    _ok(_invoke(_score_args(corpus, attrs), tmp_path))
    for f in sorted((attrs / "profanity").glob("*.parquet")):  # as an older dynacure wrote them
        tbl = pq.read_table(f)
        write_attribute_shard(attrs, "profanity", f.stem, tbl.column("id").to_pylist(),
                              {"toxicity": tbl.column("profanity__toxicity").to_numpy()})
        assert TEXT_DIGEST not in pq.read_schema(f).names
        marker = attrs / "profanity" / "_done" / f"{f.stem}.json"
        info = json.loads(marker.read_text())
        del info["texts_sha1"]
        marker.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING):
        _ok(_invoke(["curate", corpus, "-s", "heuristic", "-b", "0.9", "--attributes", attrs,
                     "--out", tmp_path / "cur"], tmp_path))
    assert "carry no text digests" in caplog.text

    _own_corpus(corpus, n=60, insult_at=3)
    output = _ok(_invoke(_score_args(corpus, attrs), tmp_path))
    assert "2 shards scored by an older dynacure" in output
    assert read_attributes(attrs).set_index("id").loc["p3", "profanity__toxicity"] > 0.9
    assert TEXT_DIGEST in pq.read_schema(attrs / "profanity" / "shard-00000.parquet").names


def test_curate_without_stored_attributes_rescores_a_changed_shard(tmp_path):
    from dynacure.pipeline.curate import curate

    corpus = _own_corpus(tmp_path / "own.jsonl", n=60)
    out = tmp_path / "cur"
    first = curate(corpus, out, "heuristic", 0.9, shard_size=50)
    assert first.manifest.set_index("id").loc["p7", "decision"] == "keep"
    _own_corpus(corpus, n=60, insult_at=7)
    again = curate(corpus, out, "heuristic", 0.9, shard_size=50)  # reuses OUT/attributes where unchanged
    assert again.manifest.set_index("id").loc["p7", "decision"] == "drop"


# ---- item 6: a folder of mixed files -------------------------------------------------------------------

def _mixed_folder(tmp_path, n_jsonl=40, n_parquet=30, n_broken=5):
    data = tmp_path / "data"
    _write_jsonl(data / "a.jsonl", [{"id": f"a{i}", "text": _paragraph(i)} for i in range(n_jsonl)])
    pq.write_table(pa.table({"id": [f"b{i}" for i in range(n_parquet)],
                             "content": [_paragraph(100 + i) for i in range(n_parquet)]}), data / "b.parquet")
    (data / "c.jsonl").write_text("{broken\n" * n_broken)
    return data


@pytest.mark.parametrize("text_field", [None, "content"])
def test_score_reads_each_file_of_a_mixed_folder(tmp_path, text_field):
    data = _mixed_folder(tmp_path)
    out = tmp_path / "attrs"
    extra = ["--text-field", text_field] if text_field else []
    output = _ok(_invoke(_score_args(data, out, *extra), tmp_path))
    summary = _run_summary(out)
    assert summary["n_docs"] == 70 and summary["n_quarantined"] == 5
    assert summary["quarantine_counts"] == {"bad_json": 5}
    if text_field is None:
        assert f"text field of {data / 'b.parquet'}: 'content' (no column 'text'" in output
        assert "text field of the other 2 files: 'text'" in output
    else:
        assert f"text field of {data / 'a.jsonl'}: 'text' (no record of the first 100 has 'content'" in output
    ids = set(read_attributes(out)["id"])
    assert {"a0", "a39", "b0", "b29"} <= ids


def test_curate_reads_each_file_of_a_mixed_folder(tmp_path):
    data = _mixed_folder(tmp_path)
    out = tmp_path / "cur"
    output = _ok(_invoke(["curate", data, "-s", "random", "-b", "0.5", "--out", out], tmp_path))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_read"] == 75 and summary["documents"] == 70 and summary["quarantined"] == 5
    assert "b.parquet: 'content'" in output.replace("\n", "")


def test_a_run_that_quarantines_most_of_its_input_fails(tmp_path):
    data = _mixed_folder(tmp_path, n_jsonl=10, n_parquet=0, n_broken=30)
    (data / "b.parquet").unlink()
    out = tmp_path / "attrs"
    line = _error(_invoke(_score_args(data, out), tmp_path))
    assert "30 of 40 records (75%) quarantined: 30 bad_json" in line and "--allow-quarantine" in line
    assert f"{data / 'c.jsonl'}:1" in line  # where the top reason first occurred
    assert not out.exists()
    _ok(_invoke(_score_args(data, out, "--allow-quarantine"), tmp_path))
    assert _run_summary(out)["n_docs"] == 10

    cur = tmp_path / "cur"
    line = _error(_invoke(["curate", data, "-s", "random", "-b", "0.5", "--out", cur], tmp_path))
    assert "30 of 40 records (75%) quarantined: 30 bad_json" in line and not cur.exists()
    _ok(_invoke(["curate", data, "-s", "random", "-b", "0.5", "--out", cur, "--allow-quarantine"], tmp_path))
    assert json.loads((cur / "summary.json").read_text())["quarantined"] == 30


def test_half_quarantined_is_not_most(tmp_path):
    data = _mixed_folder(tmp_path, n_jsonl=20, n_parquet=0, n_broken=20)
    (data / "b.parquet").unlink()
    _ok(_invoke(_score_args(data, tmp_path / "attrs"), tmp_path))


# ---- item 10: wall time covers building the signals ----------------------------------------------------

BUILD_SECONDS = 1.0
SLOW = "test_slow_build"


class _SlowBuild(Signal):
    """A signal whose construction takes BUILD_SECONDS, as loading or training a model does."""

    name = SLOW
    columns = ("chars",)

    def __init__(self) -> None:
        time.sleep(BUILD_SECONDS)

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        return {"chars": np.array([len(t) for t in texts], dtype=np.float64)}


def test_wall_time_covers_building_the_signals(tmp_path):
    if SLOW not in available_signals():
        register_signal(SLOW)(_SlowBuild)
    corpus = _own_corpus(tmp_path / "own.jsonl", n=20)
    out = tmp_path / "attrs"
    output = _ok(_invoke(["score", corpus, "--signals", SLOW, "--out", out, "--workers", "1",
                          "--no-progress"], tmp_path))
    summary = _run_summary(out)
    assert summary["setup_seconds"] >= BUILD_SECONDS
    assert summary["wall_seconds"] >= summary["setup_seconds"] + summary["seconds"][SLOW]
    wall = float(output.split(" s wall")[0].split()[-1])
    assert wall >= BUILD_SECONDS
