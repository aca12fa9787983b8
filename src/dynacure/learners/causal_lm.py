"""Machinery shared by the small GPT and the Hugging Face adapter: how texts become training rows, how the
per-example weighted loss is formed, and how texts and continuations are scored with sliding windows.

Training, packed (``train_packed_step``, the path ``learners.training.train`` takes by default): the planned
documents are laid end to end as ``[EOS] d1 [EOS] d2 [EOS] ...`` and cut into rows of ``n_ctx + 1`` tokens
(``n_ctx`` inputs, ``n_ctx`` targets, consecutive rows overlapping by one token so every stream token after
the first is a target exactly once). No padding. Each target token carries the weight of the document it
belongs to (a document's closing EOS included), and the batch loss is ``sum_t w_t * nll_t / n_targets``: a
weight of 0 removes the document's tokens from the loss exactly, a weight of 2 counts them twice, and weights
are not renormalised. Attention crosses document boundaries inside a row (the nanoGPT / Hugging Face
``group_texts`` practice): the EOS before a document tells the model a new one starts, no attention mask is
built (so the fast causal kernels run), and a document that follows another in a row is conditioned on it.
Positions run 0..n_ctx-1 along the row, not per document.

Training rows, per document (``train_step``: the loop's environment, selectors' priors, ``pack=False``): one
row per example. A row is ``[BOS] + tokens + [EOS]``; a row longer than ``n_ctx + 1`` tokens is cut to a
window of that length at a random offset (drawn from the learner's seeded generator, so repeated visits of a
long document see different parts). Rows are right-padded to the longest row of the batch and padding is
never scored. Because each row is one example, the loss of example ``i`` is its mean token NLL ``l_i`` and
the batch loss is ``sum_i w_i * l_i / n``: a weight of 0 removes the example from the gradient exactly, and
weights scale the loss (they are not renormalised, so a batch with all weights 0.5 trains at half strength).

Warm-up: ``set_schedule`` never lets the linear warm-up take more than a tenth of the planned steps (a run
too short for its configured warm-up would otherwise never reach its peak learning rate); when it cuts the
warm-up it logs a warning naming both values.

Scoring: text ``t`` after context ``c`` is scored as ``[BOS] + c + t``; only the tokens of ``t`` count.
When that does not fit the context length, the scored tokens are split in chunks and each chunk is
scored with as many preceding tokens as fit (left truncation, a sliding window), so long texts are
scored in full.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dynacure.learners.base import Learner
from dynacure.learners.presets import OptimConfig

log = logging.getLogger(__name__)

IGNORE = -100
# Scoring batches are cut so that logits stay around this many token positions (memory ~ tokens x vocab).
_SCORE_TOKENS_PER_BATCH = 8192


def pick_device(device: str | None) -> str:
    """``device`` as given, else ``cuda`` when available, else ``cpu``."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights has shape {w.shape}, expected ({n},): one weight per text")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    return w


class CausalLMLearner(Learner):
    """A ``Learner`` on top of a next-token model; subclasses supply the model, tokenizer and optimiser."""

    n_ctx: int
    bos_id: int
    eos_id: int
    pad_id: int
    optim: OptimConfig
    optimizer: torch.optim.Optimizer
    step: int
    _rng: np.random.Generator
    # Token positions run through the model (for FLOP accounting): by the scoring methods, by train_step.
    positions_forwarded: int = 0
    positions_trained: int = 0

    def check_generation(self, num_samples: int, max_new_tokens: int, top_p: float) -> None:
        """The checks every ``generate`` makes before any work."""
        if num_samples < 1 or max_new_tokens < 1:
            raise ValueError("num_samples and max_new_tokens must be >= 1")
        if max_new_tokens > self.n_ctx - 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} does not fit the context of {self.n_ctx} tokens"
            )
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")

    # ---- what a subclass provides -------------------------------------------------------------------
    @abstractmethod
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens."""

    @abstractmethod
    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(B, T, V)`` for right-padded ``input_ids`` (mask True on real tokens)."""

    def _scored_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, scored: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(n_scored, vocab)`` of the positions where ``scored`` is True; a subclass that can apply
        its output head to those positions only saves the head and softmax work on context positions."""
        return self._logits(input_ids, attention_mask)[scored]

    @abstractmethod
    def _module(self) -> torch.nn.Module:
        """The torch module (for train/eval mode and parameters)."""

    # ---- schedule -----------------------------------------------------------------------------------
    def set_schedule(self, decay_steps: int, warmup_steps: int | None = None) -> None:
        """Set the cosine horizon (absolute step at which the LR reaches its floor) and the warm-up, which
        is cut to a tenth of the horizon when longer (with a warning naming the configured and used value)."""
        self.optim.decay_steps = max(1, int(decay_steps))
        configured = self.optim.warmup_steps if warmup_steps is None else int(warmup_steps)
        used = min(configured, self.optim.decay_steps // 10)
        if used < configured:
            log.warning("warmup_steps %d is longer than a tenth of the %d planned steps: warming up over %d "
                        "steps instead, so the learning rate reaches its peak", configured,
                        self.optim.decay_steps, used)
        self.optim.warmup_steps = used

    @property
    def batch_size(self) -> int:
        return self.optim.batch_size

    # ---- training -----------------------------------------------------------------------------------
    def training_rows(self, texts: Sequence[str]) -> list[list[int]]:
        """Token rows of at most ``n_ctx + 1`` ids, one per text (see the module docstring)."""
        limit = self.n_ctx + 1
        # One draw per example whatever its length, so the generator state never depends on the content.
        draws = self._rng.random(len(texts))
        rows = []
        for ids, u in zip(self.encode(texts), draws, strict=True):
            row = [self.bos_id, *ids, self.eos_id]
            if len(row) > limit:
                start = int(u * (len(row) - limit + 1))
                row = row[start:start + limit]
            rows.append(row)
        return rows

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """How many target tokens one training visit of each text trains on."""
        return np.array([min(len(ids) + 2, self.n_ctx + 1) - 1 for ids in self.encode(texts)], dtype=np.int64)

    def _pad_rows(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``(inputs, targets, mask)`` for rows used as ``row[:-1] -> row[1:]``."""
        width = max(len(r) for r in rows) - 1
        inp = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        tgt = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r) - 1
            inp[i, :n] = torch.tensor(r[:-1])
            tgt[i, :n] = torch.tensor(r[1:])
        mask = tgt != IGNORE
        return inp.to(self.device), tgt.to(self.device), mask.to(self.device)

    def train_step(self, texts: Sequence[str], weights: Sequence[float] | None = None) -> float:
        if len(texts) == 0:
            raise ValueError("train_step needs at least one text")
        w = torch.tensor(check_weights(weights, len(texts)), dtype=torch.float32, device=self.device)
        inp, tgt, mask = self._pad_rows(self.training_rows(texts))

        def loss_of(nll: torch.Tensor) -> torch.Tensor:
            per_example = nll.sum(1) / mask.sum(1).clamp(min=1)
            return (per_example * w).sum() / len(texts)

        return self._optimise(inp, tgt, mask, loss_of)

    def train_packed_step(self, rows: np.ndarray, token_weights: np.ndarray) -> float:
        """One optimiser step on packed rows (see the module docstring).

        ``rows``: token ids ``(B, n_ctx + 1)``, inputs ``rows[:, :-1]`` and targets ``rows[:, 1:]``;
        ``token_weights``: ``(B, n_ctx)``, the weight of each target. Returns the weighted mean token loss
        ``sum(w * nll) / (B * n_ctx)`` before the update.
        """
        ids = np.array(rows, dtype=np.int64)  # copies: torch wants writable memory
        tw = np.array(token_weights, dtype=np.float32)
        if ids.ndim != 2 or ids.shape[0] == 0 or not 2 <= ids.shape[1] <= self.n_ctx + 1:
            raise ValueError(f"packed rows must be (B >= 1, 2..{self.n_ctx + 1}) token ids, got {ids.shape}")
        if tw.shape != (ids.shape[0], ids.shape[1] - 1):
            want = (ids.shape[0], ids.shape[1] - 1)
            raise ValueError(f"token_weights has shape {tw.shape}, expected {want}: one weight per target")
        if not np.all(np.isfinite(tw)) or np.any(tw < 0):
            raise ValueError("token weights must be finite and >= 0")
        t = torch.from_numpy(ids).to(self.device)
        w = torch.from_numpy(tw).to(self.device)
        inp, tgt = t[:, :-1], t[:, 1:]
        mask = torch.ones_like(inp, dtype=torch.bool)
        return self._optimise(inp, tgt, mask, lambda nll: (nll * w).sum() / nll.numel())

    def _optimise(self, inp: torch.Tensor, tgt: torch.Tensor, mask: torch.Tensor,
                  loss_of: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Forward ``inp``, per-token NLL of ``tgt`` ``(B, T)``, ``loss_of(nll)`` and one clipped AdamW step
        at the scheduled learning rate; returns the loss before the update."""
        self.positions_trained += int(mask.sum())
        module = self._module()
        module.train()
        # Dropout draws fixed by (seed, step), not by the process's RNG history: a run resumed from a
        # checkpoint then trains exactly as an uninterrupted one.
        cuda = [torch.device(self.device)] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed((int(getattr(self, "seed", 0)) * 1_000_003 + self.step) % 2**63)
            logits = self._logits(inp, mask)
        nll = F.cross_entropy(logits.float().transpose(1, 2), tgt, ignore_index=IGNORE, reduction="none")
        loss = loss_of(nll)
        lr = self.optim.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), self.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    # ---- scoring ------------------------------------------------------------------------------------
    def _windows(self, ctx: list[int], tgt: list[int]) -> list[tuple[list[int], int]]:
        """(row, n_scored) pairs: score the last ``n_scored`` targets of ``row[:-1] -> row[1:]``."""
        full = [self.bos_id, *ctx, *tgt]
        first, end = 1 + len(ctx), len(full)
        if first >= end:
            return []
        stride = max(1, self.n_ctx // 2)
        out = []
        a = first
        b = min(end, max(a + stride, self.n_ctx + 1))
        while True:
            start = max(0, b - 1 - self.n_ctx)
            out.append((full[start:b], b - a))
            if b >= end:
                return out
            a, b = b, min(end, b + stride)

    @torch.no_grad()
    def _sum_nll(self, contexts: Sequence[list[int]], targets: Sequence[list[int]]) -> tuple[
            np.ndarray, np.ndarray]:
        """Summed NLL of each target after its context, and its token count."""
        items = []  # (text index, row, n_scored)
        for i, (c, t) in enumerate(zip(contexts, targets, strict=True)):
            items.extend((i, row, k) for row, k in self._windows(c, t))
        total = np.zeros(len(targets), dtype=np.float64)
        count = np.zeros(len(targets), dtype=np.int64)
        if not items:
            return total, count
        module = self._module()
        was_training = module.training
        module.eval()
        # Longest first keeps padding small inside each batch.
        items.sort(key=lambda x: -len(x[1]))
        pos = 0
        while pos < len(items):
            width = len(items[pos][1])
            take = max(1, _SCORE_TOKENS_PER_BATCH // width)
            batch = items[pos:pos + take]
            pos += take
            inp, tgt, mask = self._pad_rows([row for _, row, _ in batch])
            for j, (_, row, k) in enumerate(batch):  # unscored (context) targets are ignored
                tgt[j, :len(row) - 1 - k] = IGNORE
            self.positions_forwarded += int(mask.sum())
            scored = tgt != IGNORE
            logits = self._scored_logits(inp, mask, scored)
            nll = F.cross_entropy(logits.float(), tgt[scored], reduction="none")
            row_of = scored.nonzero()[:, 0]
            sums = torch.zeros(len(batch), dtype=torch.float64, device=nll.device).index_add_(
                0, row_of, nll.double()).cpu().numpy()
            for j, (i, _, k) in enumerate(batch):
                total[i] += sums[j]
                count[i] += k
        module.train(was_training)
        return total, count

    def example_losses(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None, max_tokens: int | None = None
    ) -> np.ndarray:
        """Mean token NLL per text (NaN for a text with no tokens)."""
        if contexts is not None and len(contexts) != len(texts):
            raise ValueError(f"{len(contexts)} contexts for {len(texts)} texts")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        tgt = self.encode(texts)
        if max_tokens is not None:
            tgt = [t[:max_tokens] for t in tgt]
        ctx = self.encode(contexts) if contexts is not None else [[] for _ in texts]
        total, count = self._sum_nll(ctx, tgt)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def perplexity(self, texts: Sequence[str]) -> float:
        """Token-weighted perplexity: exp(total NLL / total tokens) over ``texts``."""
        tgt = self.encode(texts)
        total, count = self._sum_nll([[] for _ in texts], tgt)
        if count.sum() == 0:
            raise ValueError("perplexity of texts with no tokens")
        return float(math.exp(total.sum() / count.sum()))

    def split_continuation(self, prefix: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of prefix and continuation such that together they tokenize ``prefix + continuation``.

        Trailing whitespace of the prefix is moved to the continuation (byte-level BPE attaches a space to
        the following word), then the continuation's ids are the tail of the joint encoding when the
        prefix's own encoding is a prefix of it; otherwise both are encoded separately.
        """
        stripped = prefix.rstrip()
        if stripped != prefix and stripped:
            continuation = prefix[len(stripped):] + continuation
            prefix = stripped
        ctx_ids, whole = self.encode([prefix, prefix + continuation])
        if whole[:len(ctx_ids)] == ctx_ids:
            return ctx_ids, whole[len(ctx_ids):]
        return ctx_ids, self.encode([continuation])[0]

    def continuation_logprob(self, prefixes: Sequence[str], continuations: Sequence[str]) -> tuple[
            np.ndarray, np.ndarray]:
        if len(prefixes) != len(continuations):
            raise ValueError(f"{len(prefixes)} prefixes for {len(continuations)} continuations")
        pairs = [self.split_continuation(p, c) for p, c in zip(prefixes, continuations, strict=True)]
        total, count = self._sum_nll([p for p, _ in pairs], [c for _, c in pairs])
        return -total, count

    # ---- persistence helpers ------------------------------------------------------------------------
    @abstractmethod
    def restore(self, path: str | Path) -> None:
        """Load weights, optimiser state, step and generator state saved by ``save`` into this learner."""
