"""Peak memory of curating (and optionally scoring) a generated corpus, at several corpus sizes.

For each size the script writes a corpus of short generated texts (gzip JSONL shards of 10,000 documents and
``corpus.json``) and, beside it, attribute shards in ``dynacure score``'s layout (``ATTRS/<signal>/
shard-*.parquet``: ``toxicity_ngram``, ``alignment``, ``quality``, synthetic scores), so a 10M-document run
does not spend an hour scoring. Then it runs each step in its own child process and reads that child's peak
resident set size from ``os.wait4`` (``ru_maxrss``; the child's own peak, not this script's):

- ``curate:<strategy>``: ``dynacure curate CORPUS --attributes ATTRS -s <strategy> -b 0.5`` (random,
  heuristic, classifier, raft stream shard by shard, ``pipeline.streaming``);
- ``curate:bandit-policy`` / ``curate:ppo-policy``: the same with ``--param policy_path=P``, a bandit / PPO
  policy learned once on a 2,000-row sample of the same synthetic table;
- ``score`` (``--score``): the local engine (``dynacure.engines.local.score_corpus``) with ``profanity``.

The design target (issue 17) is a peak RSS independent of corpus size: the ratio of the largest to the
smallest size's peak should stay <= 1.2. Usage::

    python benchmarks/memory.py --sizes 1000000 10000000 --json docs/results/memory.json
    python benchmarks/memory.py --sizes 100000 1000000 --strategies random heuristic --jobs 2 --score
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SHARD = 10_000  # documents per corpus shard and per attribute shard (curate's default shard size)
STRATEGIES = ["random", "heuristic", "classifier", "raft", "bandit-policy", "ppo-policy"]
SOURCES = ("synthetic_news", "synthetic_forum", "synthetic_chat", "synthetic_web")
_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vor", "ine", "pa", "del", "ou", "zen", "fi", "mar", "te")


def _vocabulary() -> list[str]:
    words = sorted({a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("", "n", "s", "ta")})
    return words[:2000]


Columns = dict[str, dict[str, np.ndarray]]


def synthetic_columns(rng: np.random.Generator, n: int) -> tuple[np.ndarray, Columns]:
    """(toxic flags, attribute columns per signal) for ``n`` documents: toxicity higher for toxic ones,
    alignment and quality on a coarse grid (ties, as real scorers give)."""
    toxic = rng.random(n) < 0.1
    tox = np.clip(0.55 * toxic + 0.5 * rng.random(n), 0.0, 1.0)
    return toxic, {"toxicity_ngram": {"toxicity": tox},
                   "alignment": {"score": np.round(rng.random(n), 2)},
                   "quality": {"score": np.round(np.clip(rng.normal(0.6, 0.2, n), 0, 1), 2)}}


def generate(corpus: str | Path, attrs: str | Path, n_docs: int, seed: int = 0) -> None:
    """``n_docs`` short texts (4-30 words; a blocklisted word in 3% of them) as a corpus folder (the layout
    ``write_corpus`` writes, each shard compressed in one call: 10M documents in minutes), and their
    attribute shards, ``SHARD`` documents at a time."""
    import gzip

    import orjson

    from dynacure.io.atomic import write_json_atomic
    from dynacure.io.attributes import write_attribute_shard
    from dynacure.io.readers import CORPUS_FORMAT_VERSION, CORPUS_MANIFEST
    from dynacure.io.writers import shard_file_name
    from dynacure.selectors.heuristic import load_blocklist

    vocab = np.array(_vocabulary(), dtype=object)
    block = [w for w in load_blocklist() if " " not in w][:50]
    rng = np.random.default_rng(seed)
    corpus, attrs = Path(corpus), Path(attrs)
    corpus.mkdir(parents=True, exist_ok=True)
    shards, sources = [], {s: {"n_docs": 0, "n_tokens": 0} for s in SOURCES}
    for k, start in enumerate(range(0, n_docs, SHARD)):
        n = min(SHARD, n_docs - start)
        lengths = rng.integers(4, 31, n)
        words = vocab[rng.integers(0, len(vocab), int(lengths.sum()))]
        blocked = rng.random(n) < 0.03
        ends = np.cumsum(lengths)
        ids = [f"doc-{start + i:09d}" for i in range(n)]
        src = rng.integers(0, len(SOURCES), n)
        toxic, cols = synthetic_columns(rng, n)
        for sig, c in cols.items():
            write_attribute_shard(attrs, sig, f"shard-{k:05d}", ids, c)
        lines = []
        for i in range(n):
            text = " ".join(words[ends[i] - lengths[i]:ends[i]])
            if blocked[i]:
                text += " " + block[i % len(block)]
            lines.append(orjson.dumps({"id": ids[i], "text": text, "source": SOURCES[src[i]],
                                       "meta": {"toxic": int(toxic[i])}}))
        n_tok = lengths + blocked
        for j, name in enumerate(SOURCES):
            sources[name]["n_docs"] += int((src == j).sum())
            sources[name]["n_tokens"] += int(n_tok[src == j].sum())
        fname = shard_file_name(k)
        (corpus / fname).write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1, mtime=0))
        shards.append({"name": fname.removesuffix(".jsonl.gz"), "file": fname, "n_docs": n,
                       "n_tokens": int(n_tok.sum())})
    write_json_atomic(corpus / CORPUS_MANIFEST, {
        "description": f"memory benchmark, {n_docs} docs", "format_version": CORPUS_FORMAT_VERSION,
        "n_docs": n_docs, "n_tokens": sum(s["n_tokens"] for s in shards), "shard_size": SHARD,
        "shards": shards, "sources": sources})


def learn_policies(work: str | Path) -> dict[str, Path]:
    """A bandit and a PPO policy learned (briefly, no learner) on 2,000 synthetic rows."""
    import pandas as pd

    from dynacure.loop.config import LoopConfig
    from dynacure.loop.env import CurationEnv
    from dynacure.loop.trainer import LoopTrainer, make_agent

    rng = np.random.default_rng(1)
    n = 2000
    _, cols = synthetic_columns(rng, n)
    table = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "source": rng.choice(SOURCES, n),
                          "text": ["x"] * n, "n_tokens": rng.integers(4, 31, n),
                          **{f"{s}__{k}": v for s, c in cols.items() for k, v in c.items()}})
    out = {}
    for alg in ("bandit", "ppo"):
        cfg = LoopConfig(algorithm=alg, candidates=16, train_batch=8, steps=12, seed=0)
        env = CurationEnv(table, None, cfg)
        agent = make_agent(env, cfg)
        LoopTrainer(env, agent, cfg).run()
        out[alg] = Path(agent.save_policy(Path(work) / f"policy-{alg}", env.encoder, env.summary()))
    return out


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


def _curate_cmd(strategy: str, corpus: Path, attrs: Path, out: Path, policies: dict[str, Path]) -> list[str]:
    dynacure = str(Path(sys.executable).with_name("dynacure"))
    name, params = strategy, []
    if strategy.endswith("-policy"):
        name = strategy.removesuffix("-policy")
        params = ["--param", f"policy_path={policies[name]}"]
    return [dynacure, "curate", str(corpus), "--attributes", str(attrs), "-s", name, "-b", "0.5",
            "-o", str(out), *params]


def measure(size: int, work: Path, strategies: list[str], workers: int, jobs: int, score: bool,
            policies: dict[str, Path], keep: bool = False) -> list[dict[str, float | int | str]]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    corpus, attrs = work / f"corpus-{size}", work / f"attrs-{size}"
    t0 = time.perf_counter()
    if not (corpus / "corpus.json").exists():  # a kept corpus from an earlier --keep run is reused
        shutil.rmtree(attrs, ignore_errors=True)
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"from memory import generate; generate({str(corpus)!r}, {str(attrs)!r}, {size})")
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        print(f"[{size:,}] generated corpus and attributes in {time.perf_counter() - t0:.0f}s", flush=True)
    rows: list[dict[str, float | int | str]] = []
    if score:
        scored = work / f"scored-{size}"
        shutil.rmtree(scored, ignore_errors=True)  # scoring is measured from scratch, not resumed
        wall, rss = run_measured([sys.executable, "-c", SCORE, str(corpus), str(scored), str(workers)], env)
        rows.append({"size": size, "step": "score", "seconds": wall, "peak_rss_mib": rss})
        print(f"[{size:,}] score: {wall:.0f}s, peak RSS {rss:.0f} MiB", flush=True)
        shutil.rmtree(scored, ignore_errors=True)

    def one(strategy: str) -> dict[str, float | int | str]:
        out = work / f"curated-{size}-{strategy}"
        wall, rss = run_measured(_curate_cmd(strategy, corpus, attrs, out, policies), env)
        if json.loads((out / "summary.json").read_text())["documents"] != size:
            raise SystemExit(f"curate {strategy}: not every document was read")
        shutil.rmtree(out, ignore_errors=True)
        print(f"[{size:,}] curate {strategy}: {wall:.0f}s, peak RSS {rss:.0f} MiB", flush=True)
        return {"size": size, "step": f"curate:{strategy}", "seconds": wall, "peak_rss_mib": rss}

    # Children at once (``jobs``): each one's peak is its own, read from its own wait4.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows += list(pool.map(one, strategies))
    if not keep:
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(attrs, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    ap.add_argument("--jobs", type=int, default=1, help="curate children run at once")
    ap.add_argument("--score", action="store_true", help="also measure scoring (profanity, local engine)")
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
        policies = {}
        if any(s.endswith("-policy") for s in args.strategies):
            # In a child: a measured child's ru_maxrss starts from this process's size at the fork, so
            # this process never loads torch or a table.
            code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                    f"from memory import learn_policies; learn_policies({str(work)!r})")
            subprocess.run([sys.executable, "-c", code], check=True)
            policies = {alg: work / f"policy-{alg}" for alg in ("bandit", "ppo")}
        for size in sorted(args.sizes):
            rows += measure(size, work, args.strategies, args.workers, args.jobs, args.score, policies,
                            keep=args.keep)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    small, large = min(args.sizes), max(args.sizes)
    print(f"\n{'step':<24}{'docs':>12}{'seconds':>10}{'peak RSS MiB':>14}")
    for r in rows:
        print(f"{r['step']:<24}{r['size']:>12,}{r['seconds']:>10.1f}{r['peak_rss_mib']:>14.0f}")
    print(f"\npeak RSS ratio {large:,} / {small:,} docs (target <= 1.2):")
    summary = {}
    for step in dict.fromkeys(str(r["step"]) for r in rows):
        a = next(float(r["peak_rss_mib"]) for r in rows if r["step"] == step and r["size"] == small)
        b = next(float(r["peak_rss_mib"]) for r in rows if r["step"] == step and r["size"] == large)
        summary[step] = b / a
        print(f"  {step:<24}{b / a:>6.2f}  {'ok' if b / a <= 1.2 else 'ABOVE TARGET'}")
    if args.json:
        command = "python benchmarks/memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
        result = {"command": command, "rows": rows, "ratio": summary, "sizes": args.sizes}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
