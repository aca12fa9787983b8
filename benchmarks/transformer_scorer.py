"""Reward toxicity scorers side by side: fine-tuned ``toxicity_transformer`` vs hashed ``toxicity_ngram``.

In one process, on the same documents and held-out rows:

- docs/s of each model's ``predict_proba`` on the first ``--docs`` documents of the raw pool
  (``dynacure.io.pool.pool_documents``: WikiText-2/PTB paragraphs, HH-RLHF dialogues, tweets, Jigsaw
  comments), interleaved per repeat so machine load hits both alike, with ``--threads`` torch threads;
- the held-out figures of both (``training.evaluate_toxicity``: AUROC and macro-F1 on the TweetEval and
  Jigsaw test splits with thresholds from their validation splits, and identity-group false-positive rates);
  ``--eval-max-rows`` samples each benchmark for a quick look, 0 uses the figures stored in ``meta.json``;
- with ``--distill N``, also ``transformer.distill_to_ngram`` trained on the transformer's calibrated scores
  over N pool documents (the documents timed are excluded from that pool), timed and evaluated the same way.

Usage::

    python benchmarks/transformer_scorer.py --model-dir RUNS/models --docs 2000 --threads 1 --distill 5000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def docs_per_second(predict: Any, texts: list[str]) -> float:
    t0 = time.perf_counter()
    predict(texts)
    return len(texts) / (time.perf_counter() - t0)


def summary(heldout: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of an ``evaluate_toxicity`` result."""
    out: dict[str, Any] = {}
    for bench in ("tweeteval_offensive", "tweeteval_hate", "jigsaw"):
        if bench in heldout:
            b = heldout[bench]
            out[bench] = {"auroc": round(b["auroc"], 4), "macro_f1": round(b["macro_f1"], 4),
                          "n_test": b["n_test"]}
    fpr = heldout.get("identity_fpr", {})
    groups = {g: v["fpr"] for g, v in fpr.items() if g != "all" and v.get("fpr") is not None}
    out["fpr_all"] = fpr.get("all", {}).get("fpr")
    out["fpr_worst_group"] = max(groups.items(), key=lambda kv: kv[1]) if groups else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="folder with toxicity_transformer/ and "
                    "toxicity_ngram/ (default: dynacure's model dir)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--docs", type=int, default=2000, help="pool documents to time on")
    ap.add_argument("--repeats", type=int, default=2, help="median over this many runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the transformer")
    ap.add_argument("--eval-max-rows", type=int, default=None,
                    help="sample each benchmark to this many rows; 0 = use the figures in meta.json")
    ap.add_argument("--distill", type=int, default=0, help="also distill into an n-gram model on this many "
                    "pool documents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()

    import torch

    from dynacure.io.atomic import write_json_atomic
    from dynacure.io.pool import pool_documents
    from dynacure.signals import training
    from dynacure.signals.models import TOXICITY_NGRAM, resolve
    from dynacure.signals.toxicity import NgramModel
    from dynacure.signals.transformer import TOXICITY_TRANSFORMER, TransformerScorer, distill_to_ngram

    torch.set_num_threads(args.threads)
    tf = TransformerScorer.load(resolve(TOXICITY_TRANSFORMER, args.model_dir))
    ng = NgramModel.load(resolve(TOXICITY_NGRAM, args.model_dir))
    docs = pool_documents(args.data_dir, seed=args.seed)
    timed = [d.text for d in docs[: args.docs]]
    models: dict[str, Any] = {"toxicity_transformer": tf, "toxicity_ngram": ng}
    info: dict[str, Any] = {}
    if args.distill:
        pool = [d.text for d in docs[args.docs: args.docs + args.distill]]
        t0 = time.perf_counter()
        models["distilled_ngram"] = distill_to_ngram(tf, pool, seed=args.seed)
        info["distill_seconds"] = round(time.perf_counter() - t0, 1)
        info["distill_pool_docs"] = len(pool)

    speed: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, m in models.items():
            speed[name].append(docs_per_second(m.predict_proba, timed))
    rows: dict[str, Any] = {}
    for name, m in models.items():
        tox = m.categories.index("toxicity")
        if args.eval_max_rows == 0 and "heldout" in m.meta:
            heldout, source = m.meta["heldout"], "meta.json"
        else:
            heldout = training.evaluate_toxicity(lambda t, m=m, tox=tox: m.predict_proba(t)[:, tox],
                                                 args.data_dir, args.eval_max_rows or None)
            source = "computed"
            if args.eval_max_rows:
                source += f" (max {args.eval_max_rows} rows per benchmark)"
        rows[name] = {"docs_per_s": round(statistics.median(speed[name]), 1), "heldout_from": source,
                      **summary(heldout)}
        print(json.dumps({name: rows[name]}), flush=True)

    print()
    print(f"{'model':<22}{'docs/s':>9}{'TE-off AUROC/F1':>18}{'TE-hate AUROC/F1':>19}"
          f"{'Jigsaw AUROC/F1':>18}{'FPR all':>9}  worst group FPR")
    for name, r in rows.items():
        cells = [f"{r[b]['auroc']:.3f}/{r[b]['macro_f1']:.3f}" if b in r else "-"
                 for b in ("tweeteval_offensive", "tweeteval_hate", "jigsaw")]
        worst = f"{r['fpr_worst_group'][0]} {r['fpr_worst_group'][1]:.2f}" if r["fpr_worst_group"] else "-"
        fpr_all = f"{r['fpr_all']:.3f}" if r["fpr_all"] is not None else "-"
        print(f"{name:<22}{r['docs_per_s']:>9,.1f}{cells[0]:>18}{cells[1]:>19}{cells[2]:>18}{fpr_all:>9}  "
              f"{worst}")
    mean_words = statistics.mean(len(t.split()) for t in timed)
    print(f"\n{len(timed)} pool docs (mean {mean_words:.0f} words; the transformer reads the first "
          f"{tf.max_length} tokens), {args.threads} torch thread(s), median of {args.repeats}")
    if args.json is not None:
        write_json_atomic(args.json, {"docs": len(timed), "threads": args.threads, "repeats": args.repeats,
                                      "models": rows, **info})


if __name__ == "__main__":
    main()
