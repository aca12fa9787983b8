"""Every document is scored or quarantined, in order; the CLI reports it and fails early on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from engines_corpus import BAD_LINES
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.engines.common import ScoreSummary, marker_path, shard_is_done
from dynacure.engines.local import score_corpus
from dynacure.io.attributes import read_attributes
from dynacure.io.quarantine import read_quarantine

runner = CliRunner()


def _ordered_ids(attrs: Path, signal: str) -> list[str]:
    ids: list[str] = []
    for f in sorted((attrs / signal).glob("*.parquet")):
        ids.extend(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def test_every_document_scored_in_order_and_bad_lines_quarantined(tmp_path, bad_corpus):
    corpus, good_ids = bad_corpus
    attrs = tmp_path / "attrs"
    s = score_corpus(corpus, "profanity,pii", attrs, shard_size=64, workers=1, progress=False)
    n_bad = len(good_ids) // 36  # one bad line before every 37th document
    assert s.n_docs == len(good_ids) == 300
    assert s.n_quarantined == n_bad and s.n_read == 300 + n_bad
    assert s.accounting_errors() == []
    expected = {}
    for i in range(n_bad):
        reason = BAD_LINES[i % len(BAD_LINES)][1]
        expected[reason] = expected.get(reason, 0) + 1
    assert s.quarantine_counts == dict(sorted(expected.items()))
    assert len(read_quarantine(attrs / "quarantine.jsonl")) == n_bad
    for sig in ("profanity", "pii"):
        assert _ordered_ids(attrs, sig) == good_ids  # same ids, same order, no gaps, no duplicates
        assert s.scored_docs[sig] == 300
    assert len(list((attrs / "profanity").glob("*.parquet"))) == 5  # ceil(300 / 64)
    table = read_attributes(attrs)
    assert {"id", "profanity__toxicity", "pii__email", "pii__any"} <= set(table.columns)
    assert sorted(table["id"]) == sorted(good_ids)  # the outer join of signals orders by id
    assert table["profanity__toxicity"].between(0, 1).all()
    info = json.loads((attrs / "run.json").read_text())
    assert info["command"] == "score" and info["seed"] == 0 and "numpy" in info["versions"]
    assert info["config"]["signals"] == ["profanity", "pii"] and info["summary"]["n_quarantined"] == n_bad


def test_scores_have_known_answers(tmp_path):
    corpus = tmp_path / "c.jsonl"
    rows = [{"id": "clean", "text": "The museum opens at nine and the garden tour starts at ten."},
            {"id": "rude", "text": "shut up you fucking idiot, you are a worthless piece of shit"},
            {"id": "mail", "text": "Write to jane.doe@example.org or call 415-555-0134 for details."}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    attrs = tmp_path / "a"
    score_corpus(corpus, ["profanity", "pii"], attrs, workers=1, progress=False)
    t = read_attributes(attrs).set_index("id")
    assert t.loc["rude", "profanity__toxicity"] > 0.9 > 0.2 > t.loc["clean", "profanity__toxicity"]
    assert t.loc["mail", "pii__email"] == 1 and t.loc["clean", "pii__email"] == 0
    assert t.loc["mail", "pii__any"] == 1 and t.loc["rude", "pii__any"] == 0


def test_local_pool_matches_inline(tmp_path, bad_corpus):
    corpus, _ = bad_corpus
    a, b = tmp_path / "inline", tmp_path / "pool"
    score_corpus(corpus, "pii", a, shard_size=100, workers=1, progress=False)
    score_corpus(corpus, "pii", b, shard_size=100, workers=2, progress=False)
    files = sorted(p.name for p in (a / "pii").glob("*.parquet"))
    assert files == sorted(p.name for p in (b / "pii").glob("*.parquet")) and len(files) == 3
    for f in files:
        assert (a / "pii" / f).read_bytes() == (b / "pii" / f).read_bytes()


def test_accounting_errors_detects_a_gap():
    s = ScoreSummary(engine="local", attrs_dir="x", signals=["pii"], n_read=10, n_docs=8, n_quarantined=2,
                     scored_docs={"pii": 5}, resumed_docs={"pii": 2})
    assert s.accounting_errors() == ["signal 'pii': 7 documents scored (incl. resumed), corpus has 8"]


def test_cli_scores_and_prints_summary(tmp_path, bad_corpus):
    corpus, good_ids = bad_corpus
    out = tmp_path / "attrs"
    res = runner.invoke(app, ["score", str(corpus), "--signals", "pii", "--out", str(out), "--workers", "1",
                              "--shard-size", "128", "--no-progress",
                              "--signal-arg", 'pii.types=["email", "phone"]'])
    assert res.exit_code == 0, res.output
    assert "every record accounted for" in res.output and "bad_json=" in res.output
    assert _ordered_ids(out, "pii") == good_ids
    marker = json.loads(marker_path(out, "pii", "shard-00000").read_text())
    assert marker["kwargs"] == {"types": ["email", "phone"]}
    assert marker["params"] == {"types": ["email", "phone"]}  # the --signal-arg reached the signal
    # a rerun resumes: nothing scored again
    res = runner.invoke(app, ["score", str(corpus), "--signals", "pii", "--out", str(out), "--workers", "1",
                              "--shard-size", "128", "--no-progress",
                              "--signal-arg", 'pii.types=["email", "phone"]'])
    assert res.exit_code == 0, res.output
    assert "300 (3 shards)" in res.output
    # ... and resuming with other arguments is refused before any work
    res = runner.invoke(app, ["score", str(corpus), "--signals", "pii", "--out", str(out), "--no-progress"])
    assert res.exit_code == 2 and "was scored here with arguments" in res.output


def test_cli_error_paths_exit_2_before_work(tmp_path, bad_corpus):
    corpus, _ = bad_corpus
    out = tmp_path / "attrs"
    res = runner.invoke(app, ["score", str(corpus), "--signals", "profanity,toxicity_nope",
                              "--out", str(out)])
    assert res.exit_code == 2 and "toxicity_nope" in res.output
    missing = tmp_path / "no_such_corpus"
    res = runner.invoke(app, ["score", str(missing), "--signals", "pii", "--out", str(out)])
    assert res.exit_code == 2 and "no_such_corpus" in res.output
    res = runner.invoke(app, ["score", str(corpus), "--signals", "pii", "--out", str(out),
                              "--signal-arg", "pii.bogus=1"])
    assert res.exit_code == 2 and "pii" in res.output and "bogus" in res.output
    res = runner.invoke(app, ["score", str(corpus), "--signals", "pii", "--out", str(out),
                              "--signal-arg", "piitypes"])
    assert res.exit_code == 2 and "SIGNAL.KEY=VALUE" in res.output
    assert not out.exists()  # nothing was started


def test_cli_missing_model_exit_2(tmp_path, bad_corpus, monkeypatch):
    corpus, _ = bad_corpus
    monkeypatch.setenv("DYNACURE_HOME", str(tmp_path / "home"))
    out = tmp_path / "attrs"
    res = runner.invoke(app, ["score", str(corpus), "--signals", "toxicity_minilm", "--out", str(out)])
    assert res.exit_code == 2 and "toxicity_minilm" in res.output and "train-scorer" in res.output
    assert not out.exists()


def test_marker_without_table_or_with_other_ids_is_not_done(tmp_path, bad_corpus):
    corpus, good_ids = bad_corpus
    attrs = tmp_path / "a"
    score_corpus(corpus, "pii", attrs, shard_size=100, workers=1, progress=False)
    ids0 = good_ids[:100]
    assert shard_is_done(attrs, "pii", "shard-00000", ids0)
    assert not shard_is_done(attrs, "pii", "shard-00000", ids0[:-1] + ["other"])
    (attrs / "pii" / "shard-00000.parquet").unlink()
    assert not shard_is_done(attrs, "pii", "shard-00000", ids0)
    marker_path(attrs, "pii", "shard-00001").unlink()
    assert not shard_is_done(attrs, "pii", "shard-00001", good_ids[100:200])
