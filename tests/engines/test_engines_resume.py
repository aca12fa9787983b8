"""Resume at shard granularity: a kill -9 mid-run, then a rerun, gives the same files as one clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
from engines_corpus import attr_tables, done_markers, write_jsonl_with_bad_lines

from dynacure.engines.common import marker_path
from dynacure.engines.local import score_corpus

SIGNALS = "profanity,pii"
SHARD = 60


def test_kill9_then_resume_matches_clean_run(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl_with_bad_lines(corpus, 1200, seed=3, every=1000)
    n_shards = 20
    clean = tmp_path / "clean"
    score_corpus(corpus, SIGNALS, clean, shard_size=SHARD, workers=1, progress=False)
    assert len(attr_tables(clean)) == 2 * n_shards

    attrs = tmp_path / "attrs"
    cmd = [sys.executable, "-c", "from dynacure.cli.main import app; app()", "score", str(corpus),
           "--signals", SIGNALS, "--out", str(attrs), "--shard-size", str(SHARD), "--workers", "1",
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = marker_path(attrs, "pii", "shard-00000")
    deadline = time.monotonic() + 60
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    done = list(attrs.glob("*/_done/*.json"))
    assert first.exists() and 1 <= len(done) < 2 * n_shards, "the kill should land mid-run"
    assert not (attrs / "run.json").exists()  # written only by a finished run

    # A half-written table under the final name without a marker, and a stray temp file, as a kill
    # during a write could leave: neither may count as a finished shard.
    last = "shard-00019"
    assert not marker_path(attrs, "profanity", last).exists()
    (attrs / "profanity").mkdir(exist_ok=True)
    (attrs / "profanity" / f"{last}.parquet").write_bytes(b"PAR1 half written")
    (attrs / "profanity" / f".{last}.parquet.abc123.tmp").write_bytes(b"PAR1 half")

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "every record accounted for" in res.stdout
    info = json.loads((attrs / "run.json").read_text())["summary"]
    assert sum(info["skipped_shards"].values()) == len(done)  # marked shards were not scored again
    assert all(info["scored_docs"][s] + info["resumed_docs"][s] == 1200 for s in SIGNALS.split(","))

    assert attr_tables(attrs) == attr_tables(clean)  # byte-for-byte (pyarrow writes no timestamps)
    assert done_markers(attrs) == done_markers(clean)
    assert not list(attrs.rglob("*.tmp"))
    assert pq.read_table(attrs / "profanity" / f"{last}.parquet").num_rows == 1200 - 19 * SHARD
