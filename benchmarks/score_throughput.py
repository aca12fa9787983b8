"""Scoring throughput: `dynacure score` (local engine) vs a plain loop vs a datatrove 0.10.1 pipeline.

On one generated corpus (gzip JSONL shards from ``dynacure.io.demo_corpus``), measured side by side in one
process, interleaved per repeat so machine load hits all three alike:

(a) ``dynacure.engines.local.score_corpus`` (what ``dynacure score`` runs) with the profanity signal
    (alt-profanity-check): read shards, score, write attribute Parquet + done-markers;
(b) a plain Python loop calling ``profanity_check.predict_prob`` on the same texts (already in memory) in
    the same batch size: the floor, no reading or writing; and (b') the same loop that first reads each
    gzip JSONL shard (orjson, text field only), the cheapest honest read of the same files;
(c) datatrove: ``JsonlReader -> ProfanityFilter (predict_prob per batch) -> JsonlWriter`` on the
    ``LocalPipelineExecutor`` with the same number of workers (one task per shard).

Optionally (``--quality``) the same (a)/(b) pair for the quality signal. Usage::

    python benchmarks/score_throughput.py --docs 20000 --workers 1 2 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

BATCH = 1024  # ProfanitySignal.resources.batch_size


def make_corpus(root: Path, n_docs: int, shard_size: int, seed: int) -> tuple[Path, list[str]]:
    from dynacure.io.demo_corpus import generate_demo_corpus
    from dynacure.io.writers import write_corpus

    docs = generate_demo_corpus(n_docs, seed=seed)
    corpus = root / "corpus"
    write_corpus(docs, corpus, shard_size=shard_size)
    return corpus, [d.text for d in docs]


def run_dynacure(corpus: Path, out: Path, signal: str, workers: int, shard_size: int) -> float:
    from dynacure.engines.local import score_corpus

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    s = score_corpus(corpus, signal, out, shard_size=shard_size, workers=workers, progress=False)
    dt = time.perf_counter() - t0
    assert s.accounting_errors() == [] and s.scored_docs[signal] == s.n_docs, s
    return dt


def run_plain(texts: list[str], signal: str) -> float:
    if signal == "profanity":
        from profanity_check import predict_prob

        t0 = time.perf_counter()
        for i in range(0, len(texts), BATCH):
            predict_prob(texts[i:i + BATCH])
        return time.perf_counter() - t0
    from dynacure.signals.base import get_signal

    sig = get_signal(signal)  # built outside the timer, as the engine's pre-flight builds it too
    size = sig.resources.batch_size
    t0 = time.perf_counter()
    for i in range(0, len(texts), size):
        sig.score(texts[i:i + size])
    return time.perf_counter() - t0


def run_plain_read(corpus: Path) -> float:
    """The plain loop plus the cheapest honest read of the same files (gzip + orjson, text field only)."""
    import gzip

    import orjson
    from profanity_check import predict_prob

    t0 = time.perf_counter()
    for f in sorted(corpus.glob("shard-*.jsonl.gz")):
        with gzip.open(f, "rb") as fh:
            texts = [orjson.loads(line)["text"] for line in fh]
        for i in range(0, len(texts), BATCH):
            predict_prob(texts[i:i + BATCH])
    return time.perf_counter() - t0


def run_datatrove(corpus: Path, out: Path, workers: int, n_shards: int) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    class ProfanityFilter(BaseFilter):
        name = "profanity"

        def filter(self, doc):  # noqa: ANN001, ANN201 - datatrove's signature
            return self.filter_batch([doc])[0]

        def filter_batch(self, batch):  # noqa: ANN001, ANN201
            from profanity_check import predict_prob

            probs = predict_prob([d.text for d in batch])
            for d, p in zip(batch, probs, strict=True):
                d.metadata["profanity"] = float(p)
            return [bool(p < 0.5) for p in probs]

    shutil.rmtree(out, ignore_errors=True)
    pipeline = [JsonlReader(str(corpus), glob_pattern="shard-*.jsonl.gz"),
                ProfanityFilter(batch_size=BATCH),
                JsonlWriter(str(out / "kept"))]
    ex = LocalPipelineExecutor(pipeline=pipeline, tasks=n_shards, workers=workers,
                               logging_dir=str(out / "logs"), skip_completed=False)
    t0 = time.perf_counter()
    ex.run()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--shard-size", type=int, default=2500)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2, help="median over this many runs")
    ap.add_argument("--quality", action="store_true", help="also (a)/(b) for the quality signal")
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    import logging

    logging.getLogger("datatrove").setLevel(logging.WARNING)
    try:
        from loguru import logger  # datatrove logs through loguru

        logger.remove()
    except ImportError:
        pass

    root = Path(tempfile.mkdtemp(prefix="dyn_bench_"))
    try:
        corpus, texts = make_corpus(root, args.docs, args.shard_size, args.seed)
        n_shards = -(-args.docs // args.shard_size)
        n = len(texts)
        rows: list[dict] = []
        signals = ["profanity"] + (["quality"] if args.quality else [])
        for signal in signals:
            run_plain(texts[:BATCH], signal)  # warm the model and imports outside the timers
            run_dynacure(corpus, root / "attrs", signal, 1, args.shard_size)  # and the engine's imports
            for w in args.workers:
                times: dict[str, list[float]] = {"dynacure": [], "plain": [], "plain_read": [],
                                                 "datatrove": []}
                for _ in range(args.repeats):
                    times["dynacure"].append(run_dynacure(corpus, root / "attrs", signal, w, args.shard_size))
                    times["plain"].append(run_plain(texts, signal))
                    if signal == "profanity":
                        times["plain_read"].append(run_plain_read(corpus))
                    if signal == "profanity" and not args.skip_datatrove:
                        times["datatrove"].append(run_datatrove(corpus, root / "dt", w, n_shards))
                med = {k: statistics.median(v) for k, v in times.items() if v}
                row = {"signal": signal, "workers": w, "docs": n,
                       **{f"{k}_s": round(v, 3) for k, v in med.items()},
                       **{f"{k}_docs_per_s": round(n / v, 1) for k, v in med.items()},
                       "dynacure_over_plain": round(med["dynacure"] / med["plain"], 3)}
                if "plain_read" in med:
                    row["dynacure_over_plain_read"] = round(med["dynacure"] / med["plain_read"], 3)
                if "datatrove" in med:
                    row["dynacure_speed_over_datatrove"] = round(med["datatrove"] / med["dynacure"], 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
        print()
        nan = float("nan")
        print(f"{'signal':<10}{'workers':>8}{'dynacure d/s':>14}{'plain d/s':>12}{'plain+read d/s':>16}"
              f"{'datatrove d/s':>15}{'dyn/plain':>11}{'dyn/plain+read':>16}{'dyn speed/dt':>14}")
        for r in rows:
            print(f"{r['signal']:<10}{r['workers']:>8}{r['dynacure_docs_per_s']:>14,.0f}"
                  f"{r['plain_docs_per_s']:>12,.0f}{r.get('plain_read_docs_per_s', nan):>16,.0f}"
                  f"{r.get('datatrove_docs_per_s', nan):>15,.0f}{r['dynacure_over_plain']:>11.3f}"
                  f"{r.get('dynacure_over_plain_read', nan):>16.3f}"
                  f"{r.get('dynacure_speed_over_datatrove', nan):>14.3f}")
        print(f"\n{n} docs, {n_shards} shards of {args.shard_size}, batch {BATCH}, median of {args.repeats}; "
              f"plain = one process, texts in memory; cpus={os.cpu_count()}, load={os.getloadavg()[0]:.1f}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
