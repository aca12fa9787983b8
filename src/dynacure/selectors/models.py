"""The models the model-aware strategies (CoLoR-Filter, ICA) score with, and what they cost.

Without a learner handed in, a TinyGPT (``nano`` by default: CoLoR-Filter's point is that a small auxiliary
model selects for a larger one) gets a tokenizer trained on a random sample of the pool and a few hundred
steps on that sample: the "prior model trained on generic data" of CoLoR-Filter, and a stand-in for the
current model when ICA runs outside a training loop. A learner handed in that has never been trained is
trained the same way first (on a copy): scores from a randomly initialised model carry no information.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Sequence

import numpy as np

from dynacure.learners.base import Learner

log = logging.getLogger(__name__)

# Which model an experiment hands a model-aware selector: "own" = none (the selector trains a TinyGPT of its
# ``preset``), "learner" = a fresh learner of the experiment's kind (trained on a pool sample first).
PRIOR_CHOICES = ("own", "learner")


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


def pool_sample(pool_texts: Sequence[str], n_docs: int, seed: int) -> list[str]:
    """A seeded random sample of ``n_docs`` pool texts (all of them when the pool is smaller)."""
    texts = list(pool_texts)
    if not texts:
        raise ValueError("cannot train a prior model on an empty pool")
    idx = np.random.default_rng(seed).choice(len(texts), size=min(n_docs, len(texts)), replace=False)
    return [texts[i] for i in idx]


def _log_prior(name: str, steps: int, n_docs: int, losses: list[float]) -> None:
    if losses:
        log.info("prior %s: %d steps on %d pool docs, loss %.3f -> %.3f", name, steps, n_docs, losses[0],
                 float(np.mean(losses[-10:])))


def pool_learner(
    pool_texts: Sequence[str], preset: str = "nano", seed: int = 0, n_docs: int = 2000, steps: int = 200
) -> Learner:
    """A fresh TinyGPT trained on a random sample of ``n_docs`` pool texts for ``steps`` steps."""
    from dynacure.learners.factory import LearnerSpec, build_learner

    sample = pool_sample(pool_texts, n_docs, seed)
    learner = build_learner(LearnerSpec(preset=preset), seed, texts=sample)
    _log_prior(f"{preset} TinyGPT", steps, len(sample), train_steps(learner, sample, steps, seed))
    return learner


def prior_learner(
    learner: Learner | None,
    pool_texts: Sequence[str],
    preset: str = "nano",
    seed: int = 0,
    n_docs: int = 2000,
    steps: int = 200,
) -> Learner:
    """The model to score with: ``learner`` when it has been trained, a trained copy of it when it has
    not (step 0), else a fresh ``preset`` TinyGPT from ``pool_learner``."""
    if learner is None:
        return pool_learner(pool_texts, preset, seed, n_docs, steps)
    if int(getattr(learner, "step", 1)) > 0:
        return learner
    prior = clone_learner(learner)
    sample = pool_sample(pool_texts, n_docs, seed)
    losses = train_steps(prior, sample, steps, seed)
    _log_prior(f"untrained {type(learner).__name__}", steps, len(sample), losses)
    return prior


def work_done(learner: Learner) -> tuple[int, int]:
    """(positions forwarded by scoring, positions trained) so far: subtract two readings for a cost."""
    return int(getattr(learner, "positions_forwarded", 0)), int(getattr(learner, "positions_trained", 0))


def model_cost(learner: Learner, forward_positions: int, train_positions: int) -> dict[str, float]:
    """What a model-aware selection spent, for ``experiments.efficiency.curation_flops``."""
    fn = getattr(learner, "num_parameters", None)
    return {
        "params": float(fn()) if callable(fn) else float("nan"),
        "forward_positions": float(forward_positions),
        "train_positions": float(train_positions),
    }


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
