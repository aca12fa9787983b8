"""Peak memory of scoring and curating a generated corpus, at several corpus sizes.

For each size the script writes a generated corpus (the demo generator, streamed to gzip JSONL shards), then
runs each step in its own child process and reads that child's peak resident set size from ``os.wait4``
(``ru_maxrss``; the child's own peak, not this script's):

- ``score``: the local engine (``dynacure.engines.local.score_corpus``) with the ``profanity`` signal;
- ``curate:<strategy>``: ``dynacure curate CORPUS --attributes ATTRS -s <strategy> -b 0.5``.

The design target (issue 9) is a peak RSS independent of corpus size: the ratio of the largest to the
smallest size's peak should stay <= 1.2. Usage::

    python benchmarks/memory.py --sizes 100000 1000000
    python benchmarks/memory.py --sizes 50000 500000 --strategies random heuristic --json mem.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 20_000  # documents generated per call (each call has its own seed, so ids never collide)


def generate(path: Path, n_docs: int, seed: int = 0) -> None:
    """Stream ``n_docs`` generated documents into a corpus folder, ``CHUNK`` at a time."""
    from dynacure.io.demo_corpus import generate_demo_corpus
    from dynacure.io.writers import write_corpus

    def docs():
        left, k = n_docs, 0
        while left > 0:
            n = min(CHUNK, left)
            yield from generate_demo_corpus(n_docs=max(n, 20), toxic_share=0.1, low_quality_share=0.2,
                                            seed=seed * 100_000 + k)[:n]
            left -= n
            k += 1

    write_corpus(docs(), path, shard_size=10_000, extra={"description": f"memory benchmark, {n_docs} docs"})


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of ``cmd`` run as a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0  # Linux reports KiB


SCORE = ("import sys, torch; torch.set_num_threads(1); from dynacure.engines.local import score_corpus; "
         "score_corpus(sys.argv[1], ['profanity'], sys.argv[2], workers=int(sys.argv[3]), progress=False)")


def measure(size: int, work: Path, strategies: list[str], workers: int,
            keep: bool = False) -> list[dict[str, float | int | str]]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    corpus, attrs = work / f"corpus-{size}", work / f"attrs-{size}"
    t0 = time.perf_counter()
    if not (corpus / "corpus.json").exists():  # a kept corpus from an earlier --keep run is reused
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"from memory import generate; generate({str(corpus)!r}, {size})")
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        print(f"[{size:,}] generated corpus in {time.perf_counter() - t0:.0f}s", flush=True)
    rows: list[dict[str, float | int | str]] = []
    shutil.rmtree(attrs, ignore_errors=True)  # scoring is measured from scratch, not resumed
    wall, rss = run_measured([sys.executable, "-c", SCORE, str(corpus), str(attrs), str(workers)], env)
    rows.append({"size": size, "step": "score", "seconds": wall, "peak_rss_mib": rss})
    print(f"[{size:,}] score: {wall:.0f}s, peak RSS {rss:.0f} MiB", flush=True)
    dynacure = str(Path(sys.executable).with_name("dynacure"))
    for strategy in strategies:
        out = work / f"curated-{size}-{strategy}"
        wall, rss = run_measured([dynacure, "curate", str(corpus), "--attributes", str(attrs), "-s", strategy,
                                  "-b", "0.5", "-o", str(out)], env)
        rows.append({"size": size, "step": f"curate:{strategy}", "seconds": wall, "peak_rss_mib": rss})
        print(f"[{size:,}] curate {strategy}: {wall:.0f}s, peak RSS {rss:.0f} MiB", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    if not keep:
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(attrs, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--strategies", nargs="+", default=["random", "heuristic"])
    ap.add_argument("--workers", type=int, default=1, help="scoring processes (1: in the measured process)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    ap.add_argument("--keep", action="store_true",
                    help="keep generated corpora in --workdir for later runs")
    args = ap.parse_args(argv)
    if any(s < 20 for s in args.sizes):
        ap.error("--sizes must be >= 20")
    if args.keep and args.workdir is None:
        ap.error("--keep needs --workdir")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dynacure-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, float | int | str]] = []
    try:
        for size in sorted(args.sizes):
            rows += measure(size, work, args.strategies, args.workers, keep=args.keep)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    small, large = min(args.sizes), max(args.sizes)
    print(f"\n{'step':<20}{'docs':>12}{'seconds':>10}{'peak RSS MiB':>14}")
    for r in rows:
        print(f"{r['step']:<20}{r['size']:>12,}{r['seconds']:>10.1f}{r['peak_rss_mib']:>14.0f}")
    print(f"\npeak RSS ratio {large:,} / {small:,} docs (target <= 1.2):")
    summary = {}
    for step in dict.fromkeys(str(r["step"]) for r in rows):
        a = next(float(r["peak_rss_mib"]) for r in rows if r["step"] == step and r["size"] == small)
        b = next(float(r["peak_rss_mib"]) for r in rows if r["step"] == step and r["size"] == large)
        summary[step] = b / a
        print(f"  {step:<20}{b / a:>6.2f}  {'ok' if b / a <= 1.2 else 'ABOVE TARGET'}")
    if args.json:
        result = {"rows": rows, "ratio": summary, "sizes": args.sizes}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
