"""Small models the model-aware strategies (CoLoR-Filter, ICA) build when no learner is handed in.

A TinyGPT (``nano`` by default) gets a tokenizer trained on a random sample of the pool and a few hundred
steps on that sample: the "prior model trained on generic data" of CoLoR-Filter, and a stand-in for the
current model when ICA runs outside a training loop.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Sequence

import numpy as np

from dynacure.learners.base import Learner

log = logging.getLogger(__name__)


def train_steps(
    learner: Learner, texts: Sequence[str], steps: int, seed: int, batch_size: int | None = None
) -> list[float]:
    """``steps`` optimiser steps on batches drawn uniformly (seeded) from ``texts``; returns the losses."""
    texts = list(texts)
    if not texts or steps <= 0:
        return []
    bs = int(batch_size or getattr(learner, "batch_size", 16))
    rng = np.random.default_rng(seed)
    if hasattr(learner, "set_schedule"):
        # The cosine horizon must end with this run, else a short fine-tune never leaves warm-up/high LR.
        learner.set_schedule(int(getattr(learner, "step", 0)) + steps)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(texts), size=min(bs, len(texts)), replace=len(texts) < bs)
        losses.append(float(learner.train_step([texts[i] for i in idx])))
    return losses


def pool_learner(
    pool_texts: Sequence[str], preset: str = "nano", seed: int = 0, n_docs: int = 2000, steps: int = 200
) -> Learner:
    """A fresh TinyGPT trained on a random sample of ``n_docs`` pool texts for ``steps`` steps."""
    from dynacure.learners.tiny_gpt import TinyGPT

    rng = np.random.default_rng(seed)
    texts = list(pool_texts)
    if not texts:
        raise ValueError("cannot train a prior model on an empty pool")
    sample_idx = rng.choice(len(texts), size=min(n_docs, len(texts)), replace=False)
    sample = [texts[i] for i in sample_idx]
    learner = TinyGPT.create(sample, preset=preset, seed=seed)
    losses = train_steps(learner, sample, steps, seed)
    if losses:
        log.info(
            "prior %s learner: %d steps on %d pool docs, loss %.3f -> %.3f",
            preset,
            steps,
            len(sample),
            losses[0],
            float(np.mean(losses[-10:])),
        )
    return learner


def clone_learner(learner: Learner) -> Learner:
    """An independent copy (weights, optimiser state, tokenizer) that can be trained without touching
    ``learner``."""
    try:
        return copy.deepcopy(learner)
    except (TypeError, RuntimeError, copy.Error) as exc:
        log.info("deepcopy of %s failed (%s); copying through save/load", type(learner).__name__, exc)
        from dynacure.learners import load_learner  # type: ignore[attr-defined]

        with tempfile.TemporaryDirectory() as tmp:
            learner.save(tmp)
            return load_learner(tmp)
