"""The training loop over a corpus: which documents each step sees, per-example weights, checkpoints.

The whole sequence of batches is planned up front from the seed, so a run can stop anywhere and resume
from ``checkpoint_dir`` to exactly the same result (the plan is recomputed and checked against the
checkpoint's fingerprint). Two samplers:

- no ``probabilities``: every epoch is a fresh seeded permutation of all documents;
- ``probabilities``: documents are drawn with replacement in proportion to them (a selector's output),
  ``epochs * len(texts)`` draws.

``max_tokens`` (learner tokens) takes precedence over ``epochs``: training stops after the batch that
reaches it, cycling through the data as often as needed. The LR cosine horizon is set to the planned
number of steps.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynacure.io.atomic import write_json_atomic
from dynacure.io.document import count_tokens
from dynacure.io.jsonfile import read_versioned
from dynacure.learners.base import Learner

log = logging.getLogger(__name__)

STATE_VERSION = 1
_STATE_FILE = "train_state.json"


@dataclass
class TrainLog:
    """What a training run did: loss and tokens per step, totals and wall time."""

    losses: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    tokens_seen: int = 0
    seconds: float = 0.0
    planned_steps: int = 0
    resumed_from_step: int = 0

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_seen / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(format_version=STATE_VERSION, steps=self.steps, tokens_per_second=self.tokens_per_second)
        return out

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())


def _token_lengths(learner: Learner, texts: Sequence[str]) -> np.ndarray:
    fn = getattr(learner, "token_lengths", None)
    if fn is not None:
        return np.asarray(fn(texts), dtype=np.int64)
    return np.array([count_tokens(t) for t in texts], dtype=np.int64)


def plan_order(
    lengths: np.ndarray, *, probabilities: np.ndarray | None, max_tokens: int | None, epochs: int, seed: int
) -> np.ndarray:
    """Document indices in the order training visits them (see the module docstring)."""
    n = len(lengths)
    rng = np.random.default_rng(seed)
    if probabilities is not None:
        p = probabilities / probabilities.sum()

        def draw() -> np.ndarray:
            return rng.choice(n, size=n, replace=True, p=p)
    else:

        def draw() -> np.ndarray:
            return rng.permutation(n)

    if max_tokens is None:
        return np.concatenate([draw() for _ in range(epochs)]) if epochs > 0 else np.zeros(0, dtype=np.int64)
    if max_tokens <= 0:
        return np.zeros(0, dtype=np.int64)
    parts, total = [], 0
    while total < max_tokens:
        block = draw()
        cum = total + np.cumsum(lengths[block])
        if cum[-1] >= max_tokens:
            parts.append(block[: int(np.searchsorted(cum, max_tokens)) + 1])
            break
        parts.append(block)
        total = int(cum[-1])
    return np.concatenate(parts)


def _fingerprint(order: np.ndarray, weights: np.ndarray, batch_size: int, n: int) -> str:
    h = hashlib.sha256()
    h.update(f"{n}:{batch_size}:".encode())
    h.update(order.astype(np.int64).tobytes())
    h.update(weights.astype(np.float64).tobytes())
    return h.hexdigest()


def _save_checkpoint(learner: Learner, ckpt_dir: Path, state: dict[str, Any]) -> None:
    """Write learner + loop state to ``ckpt_dir/latest`` as one unit (temp folder, then rename)."""
    tmp, latest, old = ckpt_dir / ".tmp-latest", ckpt_dir / "latest", ckpt_dir / ".old-latest"
    if tmp.exists():
        shutil.rmtree(tmp)
    learner.save(tmp)
    write_json_atomic(tmp / _STATE_FILE, state)
    if latest.exists():
        if old.exists():
            shutil.rmtree(old)
        latest.rename(old)
    tmp.rename(latest)
    if old.exists():
        shutil.rmtree(old)


def _find_checkpoint(ckpt_dir: Path) -> Path | None:
    for name in ("latest", ".old-latest"):  # .old-latest survives a crash between the two renames
        cand = ckpt_dir / name
        if (cand / _STATE_FILE).exists():
            return cand
    return None


def _checked_inputs(n: int, weights: Sequence[float] | None, probabilities: Sequence[float] | None,
                    epochs: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-text loss weights (ones by default) and sampling probabilities, refused when unusable."""
    if n == 0:
        raise ValueError("train() got no texts")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be {n} finite values >= 0 (one per text)")
    if probabilities is None:
        return w, None
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (n,) or not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"probabilities must be {n} finite values >= 0 (one per text)")
    if probs.sum() <= 0:
        raise ValueError("probabilities are all zero: nothing to sample")
    return w, probs


def train(
    learner: Learner,
    texts: Sequence[str],
    *,
    weights: Sequence[float] | None = None,
    probabilities: Sequence[float] | None = None,
    max_tokens: int | None = None,
    epochs: int = 1,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    callback: Callable[[int, TrainLog], None] | None = None,
    callback_every: int = 0,
) -> TrainLog:
    """Train ``learner`` on ``texts``; resumes from ``checkpoint_dir`` when it holds a checkpoint.

    ``callback(steps_done, log)`` runs every ``callback_every`` steps and after the last one (before the
    checkpoint of that step, so after a crash it may run again for the same step: make it idempotent).
    """
    n = len(texts)
    w, probs = _checked_inputs(n, weights, probabilities, epochs)
    bs = int(batch_size or getattr(learner, "batch_size", 16))
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1, got {bs}")
    lengths = _token_lengths(learner, texts)
    order = plan_order(lengths, probabilities=probs, max_tokens=max_tokens, epochs=epochs, seed=seed)
    batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    fingerprint = _fingerprint(order, w, bs, n)

    tlog = TrainLog(planned_steps=len(batches))
    next_batch = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    found = _find_checkpoint(ckpt_dir) if ckpt_dir is not None else None
    if found is not None:
        state = read_versioned(found / _STATE_FILE, STATE_VERSION)
        if state.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{found}: checkpoint belongs to a different run (data, weights, seed, budget or "
                "batch size differ); use a fresh checkpoint_dir"
            )
        restore = getattr(learner, "restore", None)
        if restore is None:
            raise ValueError(f"{type(learner).__name__} cannot resume from a checkpoint (no restore())")
        restore(found)
        next_batch = int(state["next_batch"])
        tlog = TrainLog(
            losses=list(state["losses"]),
            tokens=list(state["tokens"]),
            tokens_seen=int(state["tokens_seen"]),
            seconds=float(state["seconds"]),
            planned_steps=len(batches),
            resumed_from_step=next_batch,
        )
        log.info("resuming from %s at step %d/%d", found, next_batch, len(batches))
    else:
        set_schedule = getattr(learner, "set_schedule", None)
        if set_schedule is not None:
            set_schedule(int(getattr(learner, "step", 0)) + len(batches))

    def checkpoint(done: int) -> None:
        if ckpt_dir is None:
            return
        _save_checkpoint(
            learner,
            ckpt_dir,
            {
                "format_version": STATE_VERSION,
                "fingerprint": fingerprint,
                "next_batch": done,
                "losses": tlog.losses,
                "tokens": tlog.tokens,
                "tokens_seen": tlog.tokens_seen,
                "seconds": tlog.seconds,
                "seed": seed,
                "planned_steps": len(batches),
            },
        )

    from rich.progress import Progress

    from dynacure.progress import bar_columns

    columns = bar_columns("train", "loss {task.fields[loss]}", "{task.fields[tps]} tok/s")
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("train", total=len(batches), completed=next_batch, loss="-", tps="-")
        for b in range(next_batch, len(batches)):
            idx = batches[b]
            t0 = time.perf_counter()
            loss = learner.train_step([texts[i] for i in idx], w[idx].tolist())
            tlog.seconds += time.perf_counter() - t0
            tlog.losses.append(float(loss))
            tlog.tokens.append(int(lengths[idx].sum()))
            tlog.tokens_seen += tlog.tokens[-1]
            bar.update(task, advance=1, loss=f"{loss:.3f}", tps=f"{tlog.tokens_per_second:,.0f}")
            last = b + 1 == len(batches)
            if callback is not None and callback_every and ((b + 1) % callback_every == 0 or last):
                callback(b + 1, tlog)
            if checkpoint_every and (b + 1) % checkpoint_every == 0 and b + 1 < len(batches):
                checkpoint(b + 1)
    if len(batches) > next_batch or found is None:
        checkpoint(len(batches))
    log.info(
        "trained %d steps, %d tokens in %.1fs (%.0f tokens/s)",
        tlog.steps,
        tlog.tokens_seen,
        tlog.seconds,
        tlog.tokens_per_second,
    )
    return tlog
