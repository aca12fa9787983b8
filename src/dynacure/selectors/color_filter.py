"""``color``: CoLoR-Filter (Brandfonbrener et al. 2024), conditional loss reduction.

A *prior* model is trained on generic data (``ctx.learner`` when given, else a nano TinyGPT trained on a
random sample of the pool); a *conditional* model is the prior fine-tuned on the small clean target set
(``ctx.target_texts``). Each candidate gets ``score = loss_prior(x) - loss_conditional(x)``, computed once:
a large reduction means the target data makes ``x`` more likely, i.e. ``x`` looks like the target. The
losses are taken over each candidate's first ``score_tokens`` tokens (default: the model's context, one
window per document), as the paper scores fixed-length sequences; a document's score then costs two forward
passes of one window, whatever its length.

Selection is the paper's block rule: candidates are shuffled (seeded) into blocks of ``n_per_block / tau``
documents (``tau`` = budget) and the top of every block is kept. With a token budget the "top n" of a block
is the highest scores filling ``tau`` times the tokens seen so far (greedy fill from ``budget.py``; an unused
remainder carries into the next block), so the total never exceeds the budget.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import budget_tokens, check_budget, greedy_fill, keep_reasons, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts
from dynacure.selectors.models import (
    PRIOR_CHOICES,
    clone_learner,
    model_cost,
    prior_learner,
    train_steps,
    work_done,
)

log = logging.getLogger(__name__)


def block_select(
    scores: np.ndarray, n_tokens: np.ndarray, budget: float, n_per_block: int, seed: int
) -> np.ndarray:
    """Keep mask: top scores of each shuffled block of ``ceil(n_per_block / budget)`` documents."""
    n = len(scores)
    limit = budget_tokens(n_tokens, budget)
    block = max(1, math.ceil(n_per_block / budget))
    order = np.random.default_rng(seed).permutation(n)
    keep = np.zeros(n, dtype=bool)
    seen_tokens = used = 0
    for start in range(0, n, block):
        idx = order[start : start + block]
        seen_tokens += int(n_tokens[idx].sum())
        # Allowance so far = tau * tokens seen (rounded down, capped by the global budget) minus what is used.
        allowed = min(limit, int(math.floor(budget * seen_tokens + 1e-9))) - used
        if allowed <= 0:
            continue
        ranked = idx[np.argsort(-scores[idx], kind="stable")]
        k = greedy_fill(ranked, n_tokens, allowed)
        keep |= k
        used += int(n_tokens[k].sum())
    return keep


@register_selector("color")
class ColorFilterSelector(Selector):
    name: ClassVar[str] = "color"
    kind: ClassVar[SelectorKind] = "model"
    needs_target: ClassVar[bool] = True
    needs_text: ClassVar[bool] = True
    needs_learner: ClassVar[bool] = True
    signals: tuple[str, ...] = ()

    def __init__(
        self,
        preset: str = "nano",
        prior_docs: int = 2000,
        prior_steps: int = 200,
        conditional_steps: int = 60,
        n_per_block: int = 8,
        batch_size: int = 1024,
        score_tokens: int | None = None,
        prior: str = "own",
    ) -> None:
        if prior not in PRIOR_CHOICES:
            raise ValueError(f"prior must be one of {PRIOR_CHOICES}, got {prior!r}")
        self.prior = prior
        if n_per_block < 1:
            raise ValueError(f"n_per_block must be >= 1, got {n_per_block}")
        if score_tokens is not None and score_tokens < 1:
            raise ValueError(f"score_tokens must be >= 1, got {score_tokens}")
        self.preset, self.prior_docs, self.prior_steps = preset, int(prior_docs), int(prior_steps)
        self.conditional_steps, self.n_per_block = int(conditional_steps), int(n_per_block)
        self.batch_size = int(batch_size)
        self.score_tokens = score_tokens
        self.last_scores: np.ndarray | None = None
        self.cost: dict[str, float] | None = None  # model work of the last selection (FLOP accounting)

    def scores(self, texts: list[str], ctx: SelectionContext) -> np.ndarray:
        target = list(ctx.target_texts or [])
        if not target:
            raise ValueError("color needs a clean target set (ctx.target_texts / --target)")
        start = work_done(ctx.learner) if ctx.learner is not None else (0, 0)
        prior = prior_learner(ctx.learner, texts, self.preset, ctx.seed, self.prior_docs, self.prior_steps)
        conditional = clone_learner(prior)
        cloned = work_done(conditional)
        losses = train_steps(conditional, target, self.conditional_steps, ctx.seed + 1)
        if losses:
            log.info(
                "color conditional model: %d steps on %d target docs, loss %.3f -> %.3f",
                self.conditional_steps,
                len(target),
                losses[0],
                float(np.mean(losses[-5:])),
            )
        m = self.score_tokens or int(getattr(prior, "n_ctx", 64))
        out = np.empty(len(texts), dtype=np.float64)
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            out[i : i + len(chunk)] = np.asarray(prior.example_losses(chunk, max_tokens=m)) - np.asarray(
                conditional.example_losses(chunk, max_tokens=m)
            )
        p, c = work_done(prior), work_done(conditional)
        self.cost = model_cost(
            prior, p[0] - start[0] + c[0] - cloned[0], p[1] - start[1] + c[1] - cloned[1]
        )
        return out

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table, ("id", "n_tokens", "text"))
        scores = self.scores(table["text"].astype(str).tolist(), ctx)
        self.last_scores = scores
        keep = block_select(scores, token_counts(table), ctx.budget, self.n_per_block, ctx.seed)
        reason = keep_reasons(keep, "top_of_block")
        return Selection(
            table_ids(table), keep.astype(np.float64), unit_weights(len(table)), keep, reason
        )

    def params(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "prior_docs": self.prior_docs,
            "prior_steps": self.prior_steps,
            "conditional_steps": self.conditional_steps,
            "n_per_block": self.n_per_block,
            "score_tokens": self.score_tokens,
            "prior": self.prior,
        }
