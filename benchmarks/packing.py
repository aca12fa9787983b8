"""Training throughput, packed against one row per document: tokens/s of the TinyGPT ``base`` preset trained
for the same number of tokens on a tweet-heavy selection, a WikiText-heavy one and the base's pre-training
pieces (<= 80 words), side by side in one run.

    python benchmarks/packing.py [--tokens 30000] [--preset base] [--threads 1] [--data-dir DIR]
        [--docs 3000] [--seed 0] [--repeats 1] [--json out.json]

Selections (from ``--data-dir``, default the public data folder; generated texts of the same shapes when it
is absent): tweet-heavy = 90% TweetEval tweets + 10% WikiText-2 paragraphs, WikiText-heavy = the reverse,
pre-training = ``learners.pretrain.pretraining_texts`` (the base's own text). Every run starts from the
same weights (same seed) over one BPE tokenizer trained on a sample of all three. ``tokens/s`` is target
tokens over the seconds spent in training steps (``TrainLog.tokens_per_second``, what the cells report);
``wall tokens/s`` also counts planning (tokenising the selection, packing). ``fill`` is the share of the
positions run through the model that are real tokens (packed: 1). ``--repeats N`` trains each N times and
keeps the fastest (other processes on a shared machine only ever slow a run down). Prints a table, then one
JSON line.
Figures and the command: docs/RELIABILITY.md, "Packed training throughput".
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch


def _generated(n: int, rng: np.random.Generator, words: tuple[int, int]) -> list[str]:
    vocab = [f"w{i}" for i in range(2000)]
    return [" ".join(rng.choice(vocab, size=int(rng.integers(*words)))) for _ in range(n)]


def selections(data_dir: str | None, docs: int, seed: int) -> tuple[dict[str, list[str]], str]:
    """The three selections (name -> texts) and where their text came from."""
    rng = np.random.default_rng(seed)
    try:
        from dynacure.io import public_data
        from dynacure.learners.pretrain import pretraining_texts

        tweets = public_data.tweeteval("offensive", "train", data_dir)["text"].astype(str).tolist()
        wiki = [ln.strip() for ln in public_data.wikitext2("train", data_dir)
                if len(ln.split()) >= 20 and not ln.strip().startswith("=")]
        pieces = pretraining_texts(data_dir, 80)
        source = "public data"
    except FileNotFoundError:
        tweets, wiki = _generated(20 * docs, rng, (5, 40)), _generated(2 * docs, rng, (60, 250))
        pieces = _generated(2 * docs, rng, (40, 81))
        source = "generated texts (public data not found)"

    def mix(major: list[str], minor: list[str]) -> list[str]:
        a = rng.choice(len(major), size=int(0.9 * docs), replace=False)
        b = rng.choice(len(minor), size=docs - len(a), replace=False)
        return [major[i] for i in a] + [minor[i] for i in b]

    picks = rng.choice(len(pieces), size=min(docs, len(pieces)), replace=False)
    return {"tweet-heavy": mix(tweets, wiki), "wikitext-heavy": mix(wiki, tweets),
            "pretrain pieces": [pieces[i] for i in picks]}, source


def fill(learner, texts: list[str], tokens: int, seed: int) -> float:  # noqa: ANN001
    """Real tokens over positions run through the model, one padded row per document (the unpacked plan)."""
    from dynacure.learners.training import DocumentPlan

    w = np.ones(len(texts))
    plan = DocumentPlan(learner, texts, w, None, tokens, 1, learner.batch_size, seed)
    real = sum(int(plan.lengths[b].sum()) for b in plan.batches)
    padded = sum(len(b) * int(plan.lengths[b].max()) for b in plan.batches)
    return real / padded


def measure(name: str, texts: list[str], tokenizer, args: argparse.Namespace) -> dict:  # noqa: ANN001
    from dynacure.learners.presets import get_preset
    from dynacure.learners.tiny_gpt import TinyGPT
    from dynacure.learners.training import train

    row: dict = {"selection": name, "docs": len(texts),
                 "mean_tokens_per_doc": float(np.mean([len(x) for x in tokenizer.encode(texts)]))}
    for pack in (False, True):
        best = None
        for _ in range(args.repeats):
            learner = TinyGPT(get_preset(args.preset), tokenizer, seed=args.seed, device="cpu")
            t0 = time.perf_counter()
            tlog = train(learner, texts, max_tokens=args.tokens, seed=args.seed, pack=pack, progress=False)
            wall = time.perf_counter() - t0
            if best is None or tlog.seconds < best[0].seconds:
                best = (tlog, wall)
        tlog, wall = best
        key = "packed" if pack else "unpacked"
        row[key] = {"steps": tlog.steps, "tokens": tlog.tokens_seen, "seconds": round(tlog.seconds, 2),
                    "tokens_per_s": round(tlog.tokens_per_second, 1),
                    "wall_tokens_per_s": round(tlog.tokens_seen / wall, 1),
                    "fill": 1.0 if pack else round(fill(learner, texts, args.tokens, args.seed), 3)}
    row["speedup"] = round(row["packed"]["tokens_per_s"] / row["unpacked"]["tokens_per_s"], 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=30_000, help="training tokens per run")
    ap.add_argument("--preset", default="base", help="TinyGPT preset (learners/presets.py)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--data-dir", default=None, help="public data folder (default: DYNACURE_DATA)")
    ap.add_argument("--docs", type=int, default=3000, help="documents per selection")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode; the fastest is kept")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)  # the warm-up cap warns on these short runs; not the point here

    from dynacure.learners.presets import get_preset
    from dynacure.learners.tokenizer import BPETokenizer

    sels, source = selections(args.data_dir, args.docs, args.seed)
    sample = [t for texts in sels.values() for t in texts[:: max(1, len(texts) // 1000)]]
    tokenizer = BPETokenizer.train(sample, vocab_size=get_preset(args.preset).vocab_size)
    rows = [measure(name, texts, tokenizer, args) for name, texts in sels.items()]

    print(f"TinyGPT {args.preset}, {args.tokens:,} tokens per run, {args.threads} torch thread(s), "
          f"best of {args.repeats}, {source}")
    head = f"{'selection':<16} {'tok/doc':>7} | {'unpacked':>9} {'fill':>5} {'steps':>5} | " \
           f"{'packed':>9} {'steps':>5} | {'speedup':>7} | {'wall unp.':>9} {'wall pk.':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        u, p = r["unpacked"], r["packed"]
        print(f"{r['selection']:<16} {r['mean_tokens_per_doc']:>7.1f} | {u['tokens_per_s']:>9,.0f} "
              f"{u['fill']:>5.2f} {u['steps']:>5} | {p['tokens_per_s']:>9,.0f} {p['steps']:>5} | "
              f"{r['speedup']:>6.2f}x | {u['wall_tokens_per_s']:>9,.0f} {p['wall_tokens_per_s']:>9,.0f}")
    out = {"benchmark": "packing", "preset": args.preset, "tokens": args.tokens, "threads": args.threads,
           "repeats": args.repeats, "source": source, "rows": rows}
    print(json.dumps(out))
    if args.json is not None:
        from dynacure.io.atomic import write_json_atomic

        write_json_atomic(args.json, out)


if __name__ == "__main__":
    main()
