"""Accounting: for every curate run, kept + dropped (by reason) + quarantined (by reason) == records read.

The corpus mixes good documents with one injected bad record of every kind the readers know (bad JSON,
not an object, missing / non-string / empty text, invalid UTF-8, over-long text, duplicate and bad ids,
a truncated gzip file, a Parquet row without text, an undecodable text line), so the expected counts are
known exactly. The manifest must list every record once, and the CLI summary must print the balance.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.readers import read_documents
from dynacure.io.writers import write_documents
from dynacure.pipeline.curate import curate

N_GOOD = 400
# reason -> how many records of the corpus below are quarantined with it
EXPECTED_QUARANTINE = {"bad_json": 1, "not_object": 2, "missing_text": 3, "non_string_text": 1, "non_utf8": 2,
                       "empty_text": 1, "too_long": 1, "duplicate_id": 1, "bad_id": 1, "unreadable_file": 1}


def _build_corpus(root: Path) -> tuple[Path, set[str]]:
    corpus = root / "corpus"
    corpus.mkdir()
    docs = generate_demo_corpus(n_docs=N_GOOD, toxic_share=0.15, low_quality_share=0.2, seed=11)
    write_documents(docs[:250], corpus / "a_good.jsonl.gz")
    write_documents(docs[250:], corpus / "b_good.parquet")
    good_ids = {d.id for d in docs}
    bad_lines = [
        b'{"id": "x1", "text": "unterminated',  # bad_json
        b'[1, 2, 3]',  # not_object
        b'"just a string"',  # not_object
        b'{"id": "x2"}',  # missing_text
        b'{"id": "x3", "text": null}',  # missing_text
        b'{"id": "x4", "text": 42}',  # non_string_text
        b'{"id": "x5", "text": "caf\xe9 latin-1"}',  # non_utf8
        b'{"id": "x6", "text": "   "}',  # empty_text
        json.dumps({"id": "x7", "text": "a" * 1_000_001}).encode(),  # too_long (over max_chars)
        json.dumps({"id": docs[0].id, "text": "a second record with a taken id"}).encode(),  # duplicate_id
        json.dumps({"id": ["not", "an", "id"], "text": "a list as id"}).encode(),  # bad_id
        b"",  # blank lines hold no record
        json.dumps({"id": "fine-1", "text": "a fine record among the bad ones"}).encode(),
    ]
    (corpus / "c_bad.jsonl").write_bytes(b"\n".join(bad_lines) + b"\n")
    # a gzip file cut short: one good record, then an unreadable tail (one entry for the rest of the file)
    blob = gzip.compress(b"".join(
        json.dumps({"id": f"gz-{i}", "text": f"record {i} of a file that was cut " * 40}).encode() + b"\n"
        for i in range(200)), mtime=0)
    (corpus / "d_truncated.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    with gzip.open(corpus / "d_truncated.jsonl.gz") as fh:  # how many whole lines survive the cut
        survived = partial = 0
        try:
            for line in fh:
                survived += line.endswith(b"\n")
                partial += not line.endswith(b"\n")
        except EOFError:
            pass
    # a cut line that the decompressor still hands out is a record of its own: bad JSON
    EXPECTED_QUARANTINE["bad_json"] = 1 + partial
    # a Parquet file with a null text (missing_text) and a good row
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": [None, "a good parquet row"]}), corpus / "e.parquet")
    # plain text: one line of invalid UTF-8 (non_utf8), one good line
    (corpus / "f.txt").write_bytes(b"\xff\xfe broken bytes\nan ordinary line of text\n")
    good_ids |= {"fine-1", "p2"} | {f"gz-{i}" for i in range(survived)}
    good_ids.add(next(d.id for d in read_documents(corpus / "f.txt") if d.text.startswith("an ordinary")))
    return corpus, good_ids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    return _build_corpus(tmp_path_factory.mktemp("accounting"))


def _check_accounting(out: Path, good_ids: set[str], expect_missing_attributes: int = 0) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    manifest = pd.read_parquet(out / "manifest.parquet")
    n_good = len(good_ids)
    assert summary["records_read"] == n_good + sum(EXPECTED_QUARANTINE.values())
    assert summary["kept"] + summary["dropped"] + summary["quarantined"] == summary["records_read"]
    assert sum(summary["dropped_by_reason"].values()) == summary["dropped"]
    assert sum(summary["kept_by_reason"].values()) == summary["kept"]
    expected_q = dict(EXPECTED_QUARANTINE)
    if expect_missing_attributes:
        expected_q["missing_attributes"] = expect_missing_attributes
    assert summary["quarantined_by_reason"] == expected_q
    assert summary["quarantined"] == sum(expected_q.values())
    # the manifest: one row per record read, each id once, every good document decided
    assert len(manifest) == summary["records_read"]
    assert not manifest["id"].duplicated().any()
    decided = manifest[manifest["decision"] != "quarantined"]
    missing = manifest.loc[manifest["reason"] == "missing_attributes", "id"]
    assert set(decided["id"]) | set(missing) == good_ids
    assert (manifest["decision"] == "keep").sum() == summary["kept"]
    # the curated corpus holds exactly the kept documents
    kept_ids = [d.id for d in read_documents(out)]
    assert sorted(kept_ids) == sorted(manifest.loc[manifest["decision"] == "keep", "id"])
    return summary


@pytest.mark.parametrize("strategy", ["random", "heuristic", "dsir"])
def test_every_record_is_accounted_for(corpus: tuple[Path, set[str]], tmp_path: Path, strategy: str) -> None:
    path, good_ids = corpus
    target = ["a clean and informative encyclopedia paragraph about rivers and mountains"] * 5
    result = curate(path, tmp_path / strategy, strategy, 0.4, seed=1, target=target, shard_size=100)
    summary = _check_accounting(result.out_dir, good_ids)
    assert summary == result.summary
    assert summary["kept"] > 0 and summary["dropped"] > 0
    if strategy == "heuristic":
        assert any(r.startswith(("toxicity>=", "blocklist:")) for r in summary["dropped_by_reason"])


def test_documents_without_stored_attributes_are_quarantined_not_lost(corpus: tuple[Path, set[str]],
                                                                       tmp_path: Path) -> None:
    path, good_ids = corpus
    first = curate(path, tmp_path / "scored", "heuristic", 0.5, shard_size=100)
    attrs = tmp_path / "scored" / "attributes"
    lost = pq.read_table(attrs / "profanity" / "shard-00001.parquet").num_rows
    (attrs / "profanity" / "shard-00001.parquet").unlink()
    out = curate(path, tmp_path / "partial", "heuristic", 0.5, attributes=attrs, shard_size=100).out_dir
    summary = _check_accounting(out, good_ids, expect_missing_attributes=lost)
    assert summary["records_read"] == first.summary["records_read"]


def test_cli_summary_prints_the_balance(corpus: tuple[Path, set[str]], tmp_path: Path) -> None:
    path, good_ids = corpus
    args = ["curate", str(path), "-s", "random", "-b", "0.5", "-o", str(tmp_path / "o")]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "150"})
    assert res.exit_code == 0, res.output
    total = len(good_ids) + sum(EXPECTED_QUARANTINE.values())
    assert f"{total:,} = records read (ok)" in res.output
    assert "quarantined: unreadable_file" in res.output and "dropped: budget" in res.output
    _check_accounting(tmp_path / "o", good_ids)


def test_experiment_tables_account_for_quarantined_records(corpus: tuple[Path, set[str]],
                                                           tmp_path: Path) -> None:
    from dynacure.experiments.config import experiment_config_from_dict
    from dynacure.experiments.runner import build_tables, open_workspace, prepare_corpus, score_corpus

    path, good_ids = corpus
    cfg = experiment_config_from_dict({
        "corpus": {"kind": "path", "path": str(path)}, "scoring": {"signals": ["profanity"]},
        "strategies": [{"name": "random"}], "evaluation": {"suites": ["perplexity"]}})
    ws = open_workspace(cfg, tmp_path / "runs")
    source = prepare_corpus(cfg, ws)
    score_corpus(cfg, ws, source)
    table = build_tables(cfg, ws, source)
    info = json.loads(ws.experiment.read_text())
    assert set(table["id"]) == good_ids and len(table) == len(good_ids)
    assert info["corpus_quarantined"] == EXPECTED_QUARANTINE
    assert len((ws.root / "quarantine.jsonl").read_text().splitlines()) == sum(EXPECTED_QUARANTINE.values())


def test_manifest_rows_are_written_in_order_and_only_when_complete(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from dynacure.pipeline.write import manifest_writer
    from dynacure.selectors.base import Selection

    sel = Selection(np.arange(3), np.array([1.0, 0.5, 0.0], np.float32), np.ones(3),
                    np.array([True, True, False]), pd.Categorical(["kept", "kept", "budget"]))
    codes, names = sel.reason.codes, sel.reason.categories
    extra = pd.DataFrame({"id": ["q"], "decision": ["quarantined"], "probability": [0.0], "weight": [0.0],
                          "reason": ["invalid_json: line 3"]})
    with manifest_writer(tmp_path / "m.parquet", sel, codes, names) as rows:
        for doc_id in ("a", "b", "c"):
            rows.add(doc_id)
        rows.finish(extra)
    m = pd.read_parquet(tmp_path / "m.parquet")
    assert m["id"].tolist() == ["a", "b", "c", "q"]
    assert m["decision"].tolist() == ["keep", "keep", "drop", "quarantined"]
    assert m["reason"].tolist() == ["kept", "kept", "budget", "invalid_json: line 3"]
    assert m["probability"].tolist() == [1.0, 0.5, 0.0, 0.0]
    with pytest.raises(RuntimeError, match="2 selection rows for 3"), \
            manifest_writer(tmp_path / "short.parquet", sel, codes, names) as rows:
        rows.add("a")
        rows.add("b")
        rows.finish(extra)
    assert not (tmp_path / "short.parquet").exists()  # an incomplete manifest never appears
