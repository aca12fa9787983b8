"""A real 2-node Ray cluster on this machine: Ray tasks score like the local engine and survive a dead worker.

Two ``ray start`` nodes (a head and a second node, 1 CPU each) under a private temp dir; the engine
connects through RAY_ADDRESS (set inside the test only). Checks: every attribute table is byte-identical to
the local engine's (pyarrow writes no timestamps), markers equal but for their ``seconds``, the quarantine
file identical; then a worker process exits mid-task (``os._exit`` on a task's first attempt, once before it
wrote anything and once after it wrote its outputs but before it reported) and the retried tasks give the
same files, with every document in exactly one table once. The cluster's processes are found by the temp
dir in their command line and ended by PID (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from engines_corpus import attr_tables, done_markers, write_jsonl_with_bad_lines

import dynacure
from dynacure.engines.local import score_corpus as score_local

ray = pytest.importorskip("ray", reason="ray is not installed; the Ray engine cannot be tested")

pytestmark = pytest.mark.ray

RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]  # this venv's `ray`
SIGNALS = "profanity,pii"
SHARD = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_under(temp: Path) -> list[int]:
    """PIDs of the processes whose command line names ``temp`` (every process of this test's cluster)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(temp).encode() in cmd:
            pids.append(int(proc.name))
    return pids


def _end(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    if ray.is_initialized():  # another module's local Ray
        ray.shutdown()
    # A short path: Ray's unix sockets live under it and socket paths are limited to ~107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="dynray-", dir="/tmp"))
    src = str(Path(dynacure.__file__).resolve().parents[1])  # the nodes' workers import this dynacure
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{_free_port()}"
    starts = [["start", "--head", f"--port={address.split(':')[1]}", "--num-cpus=1", f"--temp-dir={temp}",
               "--include-dashboard=false", "--disable-usage-stats"],
              # A worker node takes its temp dir from the head (a --temp-dir of its own is refused).
              ["start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats"]]
    try:
        for args in starts:
            try:
                res = subprocess.run(RAY_CLI + args, env=env, capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                pytest.skip(f"`ray {' '.join(args[:2])}` did not start within 60 s")
            if res.returncode != 0:
                pytest.skip(f"`ray {' '.join(args[:2])}` failed: {(res.stderr or res.stdout)[-400:]}")
        yield address, {"RAY_AUTH_MODE": "disabled"}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _end(_pids_under(temp))
        shutil.rmtree(temp, ignore_errors=True)


def _ids(attrs: Path, signal_name: str) -> list[str]:
    ids: list[str] = []
    for f in sorted((attrs / signal_name).glob("*.parquet")):
        ids.extend(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def test_two_node_cluster_equals_local_and_retries_a_dead_worker(tmp_path, cluster, monkeypatch):
    from dynacure.engines.executor import RayExecutor
    from dynacure.engines.local import prepare, run_scoring
    from dynacure.engines.ray import score_corpus as score_ray

    address, env = cluster
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RAY_ADDRESS", address)
    corpus = tmp_path / "c.jsonl"
    good = write_jsonl_with_bad_lines(corpus, 450, seed=7, every=60)
    local = tmp_path / "local"
    sl = score_local(corpus, SIGNALS, local, shard_size=SHARD, workers=1, progress=False)
    assert sl.n_docs == 450 and sl.n_quarantined == 7 and len(attr_tables(local)) == 2 * 5

    try:
        on_ray = tmp_path / "ray"
        sr = score_ray(corpus, SIGNALS, on_ray, shard_size=SHARD, progress=False)
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2 and ray.cluster_resources()["CPU"] == 2
        assert sr.accounting_errors() == [] and (sr.n_docs, sr.n_quarantined) == (450, 7)
        assert attr_tables(on_ray) == attr_tables(local)  # byte for byte
        assert done_markers(on_ray) == done_markers(local)
        assert (on_ray / "quarantine.jsonl").read_bytes() == (local / "quarantine.jsonl").read_bytes()

        # A worker dies on the first attempt of two tasks: shard 1 before writing anything, shard 3 after
        # writing its tables and markers but before its result reached the driver.
        marks = tmp_path / "attempts"
        marks.mkdir()

        class DyingOnce(RayExecutor):
            def map(self, fn, tasks):  # noqa: ANN001, ANN201 - the Executor signature
                def first_attempt_dies(task, _fn=fn, _marks=str(marks)):  # noqa: ANN001, ANN202
                    import os as _os
                    from pathlib import Path as _Path

                    when = {"shard-00001": "before", "shard-00003": "after"}.get(task.shard)
                    mark = _Path(_marks) / task.shard
                    first = when is not None and not mark.exists()
                    if first:
                        mark.write_text(str(_os.getpid()))
                    if first and when == "before":
                        _os._exit(1)
                    result = _fn(task)
                    if first:
                        _os._exit(1)
                    return result

                return super().map(first_attempt_dies, tasks)

        crashed = tmp_path / "crashed"
        names, kwargs, attrs, _ = prepare(corpus, SIGNALS, crashed, SHARD, None)
        sc = run_scoring(DyingOnce(max_retries=2), "ray", corpus, names, kwargs, attrs, SHARD, 2, False, 0)
        assert sorted(p.name for p in marks.iterdir()) == ["shard-00001", "shard-00003"]  # both died once
        assert sc.accounting_errors() == [] and sc.n_docs == 450
        # shard 3's retry found its outputs done: counted once, as resumed, not scored twice
        assert sc.resumed_docs == {"profanity": SHARD, "pii": SHARD}
        assert sc.scored_docs == {"profanity": 450 - SHARD, "pii": 450 - SHARD}
        for name in SIGNALS.split(","):
            assert _ids(crashed, name) == good  # every document once, in order
        assert attr_tables(crashed) == attr_tables(local)
        assert done_markers(crashed) == done_markers(local)
        assert not list(crashed.rglob("*.tmp"))
    finally:
        ray.shutdown()
