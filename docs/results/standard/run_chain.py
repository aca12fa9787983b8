"""The standard preset's whole chain from an empty ``$DYNACURE_HOME``, timed step by step (issue 24, item 2).

Steps, in order: the reward scorers and the judge (``train-scorer``), the pre-trained base (``pretrain``), the
standard experiment (it builds the pool, scores it and runs every cell), the audit, the report, the targets.
After each step ``chain.json`` (beside this script, or ``--record``) is rewritten atomically with the seconds
that step took, so a re-run after a crash skips the finished steps and keeps their measured times; every
step's own command resumes too. ``wall_s`` is the sum of the measured step times (equal to the elapsed time
of an uninterrupted run; a resumed run says so in ``resumed``).

    nohup .venv/bin/python docs/results/standard/run_chain.py > chain.log 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def steps(data: str, runs: Path, threads: int) -> list[tuple[str, list[str]]]:
    bin_ = [str(Path(sys.executable).parent / "dynacure")]
    return [
        ("scorers", bin_ + ["train-scorer", "--data-dir", data, "--which", "ngram,judge,alignment"]),
        ("base", bin_ + ["pretrain", "--data-dir", data, "--threads", str(threads)]),
        ("experiment", bin_ + ["experiment", "--preset", "standard", "--out", str(runs), "-j", str(threads)]),
        ("audit", bin_ + ["audit", str(runs), "--out", str(runs / "audit.json")]),
        ("report", bin_ + ["report", str(runs), "--out", str(runs / "report.html")]),
        ("targets", [sys.executable, str(HERE / "targets.py"), str(runs)]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "standard")
    data = os.environ.get("DYNACURE_DATA", str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=data)
    ap.add_argument("--record", type=Path, default=HERE / "chain.json")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--until", default=None, help="stop after this step; a re-run goes on")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    record = json.loads(args.record.read_text()) if args.record.exists() else {}
    fresh = not record.get("steps")
    record.update(cpus=os.cpu_count(), commit=_commit(), dynacure_home=os.environ.get("DYNACURE_HOME", ""),
                  resumed=not fresh)
    record.setdefault("started", _now())
    record.setdefault("steps", {})
    record.setdefault("commands", {})
    for name, cmd in steps(args.data_dir, args.runs, args.threads):
        if name in record["steps"]:
            print(f"[chain] {name}: done before ({record['steps'][name]:.0f} s), skipped", flush=True)
            continue
        print(f"[chain] {name} {_now()}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True)
        record["steps"][name] = round(time.perf_counter() - t0, 1)
        record["commands"][name] = " ".join(cmd)
        record["wall_s"] = round(sum(record["steps"].values()), 1)
        _write(args.record, record)
        if name == args.until:
            print(f"[chain] stopped after {name} (--until); wall_s so far {record['wall_s']}", flush=True)
            return
    record["finished"] = _now()
    record["wall_s"] = round(sum(record["steps"].values()), 1)
    _write(args.record, record)
    print(f"[chain] done: wall_s {record['wall_s']}", flush=True)


if __name__ == "__main__":
    main()
