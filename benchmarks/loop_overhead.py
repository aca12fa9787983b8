"""Overhead of the RL curation loop: wall time of training the learner inside the closed loop (policy acts,
env samples, learner trains, probes every K steps, policy updates) against plain training of the same
learner on the same number of learner tokens, in one run. Target: ratio <= 1.15.

    python benchmarks/loop_overhead.py [--algorithm ppo|bandit|reinforce] [--steps 48] [--docs 1200]

Both runs start from the same initial weights (same seed) on the same generated demo corpus; the plain run
trains on randomly drawn documents with the same batch size until it has seen as many tokens as the loop's
learner did.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch


class CountingLearner:
    """Delegates to a learner and records the tokens and seconds spent in ``train_step``."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.tokens = 0
        self.train_seconds = 0.0
        self.steps = 0

    def train_step(self, texts: Sequence[str], weights: Sequence[float] | None = None) -> float:
        t0 = time.perf_counter()
        loss = self.inner.train_step(texts, weights)
        self.train_seconds += time.perf_counter() - t0
        self.tokens += int(sum(self.inner.token_lengths(list(texts))))
        self.steps += 1
        return loss

    def __getattr__(self, name: str):  # noqa: ANN204 - everything else goes to the wrapped learner
        return getattr(self.inner, name)


def scored_table(docs: int, workdir: Path):  # noqa: ANN201 - a pandas DataFrame
    """The demo corpus scored by the same pipeline as `dynacure demo` (no public data needed)."""
    from dynacure.experiments.config import experiment_config_from_dict
    from dynacure.experiments.runner import prepare

    cfg = experiment_config_from_dict({
        "name": "loop-overhead", "workers": 1, "target_size": 20,
        "corpus": {"kind": "demo", "demo": {"n_docs": docs, "toxic_share": 0.15, "seed": 0}},
        "scoring": {"signals": ["profanity", "quality", "toxicity_ngram"], "demo_models": True},
        "strategies": [{"name": "random"}],
        "evaluation": {"suites": ["perplexity"]},
    })
    ws, _ = prepare(cfg, workdir)
    import pandas as pd

    return pd.read_parquet(ws.table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithm", default="ppo", choices=["ppo", "reinforce", "bandit"])
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from dynacure.learners.tiny_gpt import TinyGPT
    from dynacure.learners.training import train
    from dynacure.loop.config import LoopConfig
    from dynacure.loop.env import CurationEnv
    from dynacure.loop.probes import build_probes
    from dynacure.loop.trainer import LoopTrainer, make_agent

    with tempfile.TemporaryDirectory() as tmp:
        table = scored_table(args.docs, Path(tmp))
    texts = [str(t) for t in table["text"]]
    cfg = LoopConfig(algorithm=args.algorithm, steps=args.steps, w_s=0.7, w_a=0.0, w_u=0.3, refine=False,
                     learner_preset=args.preset, seed=0)

    # --- the closed loop -------------------------------------------------------------------------------
    loop_learner = CountingLearner(TinyGPT.create(texts, preset=args.preset, seed=0))
    probes, train_mask = build_probes(table, cfg.probes, seed=0, pairs=None)
    env = CurationEnv(table, loop_learner, cfg, probes=probes, train_mask=train_mask)
    agent = make_agent(env, cfg)
    t0 = time.perf_counter()
    LoopTrainer(env, agent, cfg).run()
    loop_wall = time.perf_counter() - t0

    # --- plain training on the same number of tokens ------------------------------------------------------
    plain = TinyGPT(loop_learner.inner.config, loop_learner.inner.tokenizer, seed=0)
    t0 = time.perf_counter()
    tlog = train(plain, texts, max_tokens=loop_learner.tokens, batch_size=cfg.train_batch, seed=0,
                 progress=False)
    plain_wall = time.perf_counter() - t0

    ratio = loop_wall / plain_wall
    out = {
        "algorithm": args.algorithm, "preset": args.preset, "loop_steps": args.steps,
        "loop_wall_s": round(loop_wall, 3), "loop_learner_train_s": round(loop_learner.train_seconds, 3),
        "loop_tokens": loop_learner.tokens, "plain_wall_s": round(plain_wall, 3),
        "plain_tokens": tlog.tokens_seen, "ratio": round(ratio, 3), "target": 1.15,
        "meets_target": ratio <= 1.15,
    }
    print(json.dumps(out, indent=2))
    print(f"loop / plain wall time at equal tokens: {ratio:.2f}x (target <= 1.15x)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
