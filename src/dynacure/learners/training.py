"""The training loop over a corpus: which documents each step sees, per-example weights, checkpoints.

The whole sequence of batches is planned up front from the seed, so a run can stop anywhere and resume
from ``checkpoint_dir`` to exactly the same result (the plan is recomputed and checked against the
checkpoint's fingerprint). Two samplers decide the order in which documents are visited:

- no ``probabilities``: every epoch is a fresh seeded permutation of all documents;
- ``probabilities``: documents are drawn with replacement in proportion to them (a selector's output),
  ``epochs * len(texts)`` draws.

Packed training (``pack=True``, the default, and the path the base's pre-training takes): the visits are
laid end to end with an EOS between documents and cut into full blocks of the learner's context
(``PackedPlan``; loss and attention in ``learners.causal_lm``). A step trains ``batch_size`` blocks, every
position a real token, each target weighted by its document's weight. Without packing each visit is one row,
padded to the longest of its batch, which for short texts (tweets, comments) wastes most of every row: at
300k tokens a tweet-heavy cell trained at ~1,000 tokens/s against ~1,850 for a WikiText-heavy one.

Tokens (``max_tokens``, ``TrainLog.tokens_seen``) are target tokens trained on: per visit ``min(len + 1,
n_ctx)`` unpacked (its tokens and the EOS, a long document cut to one window), ``len + 1`` packed.
``max_tokens`` takes precedence over ``epochs``, cycling through the data as often as needed: unpacked,
training stops after the batch that reaches it; packed, it trains ``ceil(max_tokens / n_ctx)`` blocks, so
it overshoots by less than one block. The LR cosine horizon is set to the planned number of steps, and the
warm-up is cut to a tenth of it when longer (``CausalLMLearner.set_schedule``).
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
    packed: bool = False  # documents packed into full blocks (PackedPlan) or one row each

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


def _fingerprint(order: np.ndarray, weights: np.ndarray, batch_size: int, n: int, tag: str = "") -> str:
    h = hashlib.sha256()
    h.update(f"{tag}{n}:{batch_size}:".encode())
    h.update(order.astype(np.int64).tobytes())
    h.update(weights.astype(np.float64).tobytes())
    return h.hexdigest()


class DocumentPlan:
    """Per-document batches: ``batch_size`` planned visits per step, each its own (padded) row."""

    packed = False

    def __init__(self, learner: Learner, texts: Sequence[str], w: np.ndarray, probs: np.ndarray | None,
                 max_tokens: int | None, epochs: int, bs: int, seed: int) -> None:
        self.texts, self.w = texts, w
        self.lengths = _token_lengths(learner, texts)
        order = plan_order(self.lengths, probabilities=probs, max_tokens=max_tokens, epochs=epochs, seed=seed)
        self.batches = [order[i : i + bs] for i in range(0, len(order), bs)]
        self.fingerprint = _fingerprint(order, w, bs, len(texts))

    @property
    def steps(self) -> int:
        return len(self.batches)

    def run(self, learner: Learner, b: int) -> tuple[float, int]:
        """Train step ``b``; its loss and the target tokens it trained on."""
        idx = self.batches[b]
        loss = learner.train_step([self.texts[i] for i in idx], self.w[idx].tolist())
        return float(loss), int(self.lengths[idx].sum())


class PackedPlan:
    """The planned visits laid end to end, ``[EOS] d1 [EOS] d2 [EOS] ...``, cut into blocks of ``block``
    targets (``block + 1`` tokens, consecutive blocks sharing one token): every stream token after the first
    is the target of exactly one block, and each target carries the weight of the document it belongs to (its
    closing EOS included). Blocks are assembled when asked for, so the stream is never held in memory.

    ``max_tokens``: ``ceil(max_tokens / block)`` blocks, the order planned until the stream fills them (the
    last visit is cut where the last block ends). Else ``epochs`` passes, the last block filled by visiting
    the order again from its start, so no block is short and none is padded.
    """

    packed = True

    def __init__(self, ids: Sequence[Sequence[int]], w: np.ndarray, probs: np.ndarray | None,
                 max_tokens: int | None, epochs: int, bs: int, seed: int, *, eos_id: int, block: int) -> None:
        if block < 1:
            raise ValueError(f"packed blocks need >= 1 target, got a context of {block}")
        self.ids = [np.asarray(x, dtype=np.int64) for x in ids]
        self.w, self.eos_id, self.block, self.bs = w, int(eos_id), int(block), int(bs)
        lengths = np.array([len(x) + 1 for x in self.ids], dtype=np.int64)
        if max_tokens is not None:
            self.n_blocks = max(0, -(-int(max_tokens) // self.block))
            order = plan_order(lengths, probabilities=probs, max_tokens=self.n_blocks * self.block,
                               epochs=epochs, seed=seed)
        else:
            order = plan_order(lengths, probabilities=probs, max_tokens=None, epochs=epochs, seed=seed)
            self.n_blocks = -(-int(lengths[order].sum()) // self.block)
            base, total = order, int(lengths[order].sum())
            while total < self.n_blocks * self.block:  # fill the last block from the order's start
                cum = total + np.cumsum(lengths[base])
                take = int(np.searchsorted(cum, self.n_blocks * self.block)) + 1
                order, total = np.concatenate([order, base[:take]]), int(cum[min(take, len(cum)) - 1])
        self.order = order
        # stream position of each visit's first token; position 0 is the opening EOS
        self.starts = np.concatenate([[1], 1 + np.cumsum(lengths[order])]).astype(np.int64)
        tag = f"packed:{self.block}:{self.eos_id}:"
        self.fingerprint = _fingerprint(order, w, bs, len(self.ids), tag=tag)

    @property
    def steps(self) -> int:
        return -(-self.n_blocks // self.bs)

    def blocks(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Token rows ``(last - first, block + 1)`` of blocks ``first..last-1`` and their target weights
        ``(last - first, block)``."""
        if not 0 <= first < last <= self.n_blocks:
            raise IndexError(f"blocks {first}..{last} outside 0..{self.n_blocks}")
        a, z = first * self.block, last * self.block + 1  # stream positions [a, z)
        j_lo = max(0, int(np.searchsorted(self.starts, max(a, 1), side="right")) - 1)
        j_hi = int(np.searchsorted(self.starts, z - 1, side="right")) - 1
        toks: list[np.ndarray] = [np.array([self.eos_id])] if a == 0 else []
        owner: list[np.ndarray] = [np.array([-1])] if a == 0 else []
        for j in range(j_lo, j_hi + 1):
            doc = self.ids[self.order[j]]
            toks += [doc, np.array([self.eos_id])]
            owner.append(np.full(len(doc) + 1, j))
        offset = a - (0 if a == 0 else int(self.starts[j_lo]))
        stream = np.concatenate(toks)[offset : offset + z - a]
        who = np.concatenate(owner)[offset : offset + z - a]
        n = last - first
        rows = np.lib.stride_tricks.sliding_window_view(stream, self.block + 1)[:: self.block][:n]
        tw = self.w[self.order[who[1:]]].reshape(n, self.block)  # who[0] (-1 at a == 0) is never a target
        return np.ascontiguousarray(rows), tw

    def run(self, learner: Learner, b: int) -> tuple[float, int]:
        """Train step ``b``; its loss and the target tokens it trained on."""
        first, last = b * self.bs, min((b + 1) * self.bs, self.n_blocks)
        rows, tw = self.blocks(first, last)
        loss = learner.train_packed_step(rows, tw)  # type: ignore[attr-defined]
        return float(loss), (last - first) * self.block


def _can_pack(learner: Learner) -> bool:
    return all(hasattr(learner, a) for a in ("train_packed_step", "encode", "eos_id", "n_ctx"))


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


def make_plan(learner: Learner, texts: Sequence[str], w: np.ndarray, probs: np.ndarray | None,
              max_tokens: int | None, epochs: int, bs: int, seed: int,
              pack: bool) -> PackedPlan | DocumentPlan:
    """The run's batches: packed blocks when ``pack`` and the learner can train on them, else documents."""
    if pack and _can_pack(learner):
        enc = learner.encode(texts)  # type: ignore[attr-defined]
        return PackedPlan(enc, w, probs, max_tokens, epochs, bs, seed,
                          eos_id=learner.eos_id, block=learner.n_ctx)  # type: ignore[attr-defined]
    if pack:
        log.info("%s cannot train on packed blocks: training one row per document", type(learner).__name__)
    return DocumentPlan(learner, texts, w, probs, max_tokens, epochs, bs, seed)


def _resume(learner: Learner, found: Path, fingerprint: str, planned: int) -> tuple[int, TrainLog]:
    """Restore ``learner`` from checkpoint ``found``; the next step and the log so far."""
    state = read_versioned(found / _STATE_FILE, STATE_VERSION)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{found}: checkpoint belongs to a different run (data, weights, seed, budget, batch size or "
            "packing differ); use a fresh checkpoint_dir"
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
        planned_steps=planned,
        resumed_from_step=next_batch,
        packed=bool(state.get("packed", False)),
    )
    log.info("resuming from %s at step %d/%d", found, next_batch, planned)
    return next_batch, tlog


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
    pack: bool = True,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    callback: Callable[[int, TrainLog], None] | None = None,
    callback_every: int = 0,
) -> TrainLog:
    """Train ``learner`` on ``texts``; resumes from ``checkpoint_dir`` when it holds a checkpoint.

    ``pack`` (default): documents joined into full blocks of the learner's context (``PackedPlan``); off, or
    for a learner without ``train_packed_step``, one padded row per document. ``batch_size`` counts rows
    (blocks or documents). ``callback(steps_done, log)`` runs every ``callback_every`` steps and after the
    last one (before the checkpoint of that step, so after a crash it may run again for the same step: make
    it idempotent).
    """
    w, probs = _checked_inputs(len(texts), weights, probabilities, epochs)
    bs = int(batch_size or getattr(learner, "batch_size", 16))
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1, got {bs}")
    plan = make_plan(learner, texts, w, probs, max_tokens, epochs, bs, seed, pack)
    n_steps = plan.steps

    tlog = TrainLog(planned_steps=n_steps, packed=plan.packed)
    next_batch = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    found = _find_checkpoint(ckpt_dir) if ckpt_dir is not None else None
    if found is not None:
        next_batch, tlog = _resume(learner, found, plan.fingerprint, n_steps)
    else:
        set_schedule = getattr(learner, "set_schedule", None)
        if set_schedule is not None:
            set_schedule(int(getattr(learner, "step", 0)) + n_steps)

    def checkpoint(done: int) -> None:
        if ckpt_dir is None:
            return
        _save_checkpoint(learner, ckpt_dir, {
            "format_version": STATE_VERSION, "fingerprint": plan.fingerprint, "next_batch": done,
            "losses": tlog.losses, "tokens": tlog.tokens, "tokens_seen": tlog.tokens_seen,
            "seconds": tlog.seconds, "seed": seed, "planned_steps": n_steps, "packed": plan.packed,
        })

    from rich.progress import Progress

    from dynacure.progress import bar_columns

    columns = bar_columns("train", "loss {task.fields[loss]}", "{task.fields[tps]} tok/s")
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("train", total=n_steps, completed=next_batch, loss="-", tps="-")
        for b in range(next_batch, n_steps):
            t0 = time.perf_counter()
            loss, tokens = plan.run(learner, b)
            tlog.seconds += time.perf_counter() - t0
            tlog.losses.append(loss)
            tlog.tokens.append(tokens)
            tlog.tokens_seen += tokens
            bar.update(task, advance=1, loss=f"{loss:.3f}", tps=f"{tlog.tokens_per_second:,.0f}")
            last = b + 1 == n_steps
            if callback is not None and callback_every and ((b + 1) % callback_every == 0 or last):
                callback(b + 1, tlog)
            if checkpoint_every and (b + 1) % checkpoint_every == 0 and b + 1 < n_steps:
                checkpoint(b + 1)
    if n_steps > next_batch or found is None:
        checkpoint(n_steps)
    log.info("trained %d steps (%s), %d tokens in %.1fs (%.0f tokens/s)", tlog.steps,
             "packed" if plan.packed else "one row per document", tlog.tokens_seen, tlog.seconds,
             tlog.tokens_per_second)
    return tlog
