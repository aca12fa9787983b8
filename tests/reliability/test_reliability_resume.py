"""Crash safety: `dynacure curate` and `dynacure experiment` killed with SIGKILL mid-run, then rerun, give the
same outputs as an uninterrupted run (byte-for-byte for data files, equal metrics for the same seeds).

The kill points are detected from the files the run writes (an attribute shard, an output shard, a cell's
DONE marker), so each kill lands inside the stage it is meant to interrupt; the test checks that it did.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dynacure.experiments.config import load_experiment_config
from dynacure.experiments.runner import Events, run_experiment
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.io.writers import write_corpus
from dynacure.pipeline.curate import curate

DYNACURE = [str(Path(sys.executable).with_name("dynacure"))]
CURATE_ARGS = ["-s", "heuristic", "-b", "0.5", "--seed", "3",
               "--shard-size", "250", "--out-shard-size", "20"]
# Files whose bytes must match; run.json differs only by its written_at stamp (checked without it).
DATA_FILES = ("corpus.json", "manifest.parquet", "quarantine.jsonl", "summary.json")


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="120")
    env.pop("DYNACURE_HOME", None)
    return env


def _start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    # Output to a file, not a pipe: a full pipe nobody reads would stall the run before its kill point.
    log = open(cwd / f"run-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([*DYNACURE, *args], cwd=cwd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log.name  # type: ignore[attr-defined]
    log.close()
    return proc


def _kill_when(proc: subprocess.Popen[bytes], trigger: Path, timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` as soon as ``trigger`` exists; fail if the run ended first."""
    deadline = time.monotonic() + timeout
    while not trigger.exists():
        if proc.poll() is not None:
            out = Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
            pytest.fail(f"run ended (rc={proc.returncode}) before {trigger.name} appeared:\n{out[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{trigger} did not appear within {timeout}s")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _run_json_without_stamp(path: Path) -> dict:
    info = json.loads(path.read_text())
    info.pop("written_at", None)
    return info


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    docs = generate_demo_corpus(n_docs=2000, toxic_share=0.1, low_quality_share=0.2, seed=7)
    write_corpus(docs, root / "corpus", shard_size=500)
    return root


def _assert_partial_never_looks_done(out: Path) -> None:
    assert not (out / "summary.json").exists(), "a killed run left its completion marker"
    for f in out.glob("shard-*.jsonl.gz"):  # whatever is in place is whole: atomic rename only
        with gzip.open(f) as fh:
            assert all(json.loads(line) for line in fh)
    for f in out.glob("attributes/*/*.parquet"):
        pq.read_table(f)


def test_curate_killed_twice_then_rerun_matches_uninterrupted(corpus_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The uninterrupted reference runs in this process (what the CLI calls, with the same arguments).
    monkeypatch.chdir(corpus_dir)
    curate("corpus", "ref", "heuristic", 0.5, seed=3, shard_size=250, out_shard_size=20)
    ref = corpus_dir / "ref"
    work = corpus_dir / "work"
    args = ["curate", "corpus", "-o", "work", *CURATE_ARGS]

    # 1) killed while scoring its read shards (3 of 8 shards scored)
    _kill_when(_start(args, corpus_dir), work / "attributes" / "profanity" / "shard-00002.parquet")
    _assert_partial_never_looks_done(work)
    assert not (work / "attributes" / "profanity" / "shard-00007.parquet").exists()

    # 2) the rerun is killed while writing the curated shards (3 of ~47 written, no manifest yet)
    _kill_when(_start(args, corpus_dir), work / "shard-00002.jsonl.gz")
    _assert_partial_never_looks_done(work)

    # 3) the final rerun (in this process, same arguments as the CLI passes) completes
    curate("corpus", "work", "heuristic", 0.5, seed=3, shard_size=250, out_shard_size=20)

    ref_files = sorted(p.name for p in ref.iterdir() if p.is_file())
    work_files = sorted(p.name for p in work.iterdir() if p.is_file())
    assert work_files == ref_files, "stray or missing files after resume"
    shards = [n for n in ref_files if n.startswith("shard-")]
    assert len(shards) >= 5
    for name in (*DATA_FILES, *shards):
        assert (work / name).read_bytes() == (ref / name).read_bytes(), f"{name} differs after resume"
    for sig_file in sorted((ref / "attributes").rglob("*.parquet")):
        rel = sig_file.relative_to(ref)
        assert (work / rel).read_bytes() == sig_file.read_bytes(), f"{rel} differs after resume"
    assert not list(work.rglob("*.tmp")), "temporary files of the killed runs were left behind"
    assert _run_json_without_stamp(work / "run.json") == _run_json_without_stamp(ref / "run.json")
    summary = json.loads((work / "summary.json").read_text())
    assert summary["records_read"] == 2000
    assert summary["kept"] + summary["dropped"] + summary["quarantined"] == 2000


TINY_EXPERIMENT = """
format_version = 1
name = "tiny"
seeds = [0, 1]
budgets = [0.5]
target_size = 20
workers = 1

[corpus]
kind = "demo"
demo = { n_docs = 120, toxic_share = 0.15, low_quality_share = 0.2, seed = 0 }

[scoring]
signals = ["profanity"]

[[strategies]]
name = "random"

[learner]
preset = "nano"
max_tokens = 400

[evaluation]
suites = ["perplexity"]
"""

METRIC_COLUMNS = ["cell_id", "strategy", "seed", "budget", "suite", "metric", "value", "low", "high", "n",
                  "share_selected_tokens", "n_selected_docs", "train_tokens"]


def _metrics(runs: Path) -> pd.DataFrame:
    res = pd.read_parquet(runs / "results.parquet")
    return res[METRIC_COLUMNS].sort_values(["cell_id", "suite", "metric"]).reset_index(drop=True)


def test_experiment_killed_after_first_cell_resumes_and_matches(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_EXPERIMENT)
    args = ["experiment", "tiny.toml", "--no-report"]
    run_experiment(load_experiment_config(tmp_path / "tiny.toml"), tmp_path / "ref")  # uninterrupted

    runs = tmp_path / "work"
    cells = runs / "cells"
    proc = _start([*args, "--out", "work"], tmp_path)
    deadline = time.monotonic() + 300  # generous: CI machines may be loaded
    first: Path | None = None
    while first is None:
        done = list(cells.glob("*/DONE")) if cells.exists() else []
        if done:
            first = done[0].parent
            break
        assert proc.poll() is None, "experiment ended before any cell finished"
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.005)
    _kill_when(proc, first / "DONE")
    assert len(list(cells.glob("*/DONE"))) == 1, "the kill came after more than one cell finished"
    assert not (runs / "results.parquet").exists()
    first_files = {p.name: p.read_bytes() for p in first.iterdir()}

    seen: list[tuple[int, int]] = []
    run_experiment(load_experiment_config(tmp_path / "tiny.toml"), runs,
                   events=Events(cells_total=lambda total, done: seen.append((total, done))))
    assert seen == [(2, 1)], "the rerun did not see the finished cell as done"
    # the finished cell was skipped: its files (DONE, run.json with its time stamp) are untouched
    assert {p.name: p.read_bytes() for p in first.iterdir()} == first_files
    assert len(list(cells.glob("*/DONE"))) == 2
    pd.testing.assert_frame_equal(_metrics(runs), _metrics(tmp_path / "ref"), check_exact=True)
    for cell in sorted((tmp_path / "ref" / "cells").iterdir()):
        for name in ("manifest.parquet",):
            assert (cells / cell.name / name).read_bytes() == (cell / name).read_bytes()
