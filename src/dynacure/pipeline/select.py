"""Select step: a strategy's decisions over the candidate table at the token budget, checked.

``SelectStep.run`` hands the table to the strategy, optionally applies the disparity cap (re-admitting
documents of over-removed identity groups, ``dynacure.audit.mitigation``), and checks what every caller
relies on: one decision per row in the table's order and no more tokens than the budget. Curate and the
experiment runner select through it. ``stats``: ``kept``, ``kept:<reason>`` and ``dropped:<reason>``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from dynacure.selectors.base import Selection, SelectionContext, Selector
from dynacure.selectors.budget import budget_tokens

log = logging.getLogger(__name__)


class SelectStep:
    """Run ``selector`` at ``ctx`` (budget, seed, learner, target texts) over a candidate table."""

    def __init__(self, selector: Selector, ctx: SelectionContext, disparity_cap: float | None = None) -> None:
        if disparity_cap is not None and not (np.isfinite(disparity_cap) and disparity_cap >= 1.0):
            raise ValueError(f"disparity cap must be a ratio >= 1 (got {disparity_cap})")
        self.selector, self.ctx, self.disparity_cap = selector, ctx, disparity_cap
        self.cap_summary: dict[str, Any] | None = None
        self.limit = self.kept_tokens = 0  # the budget in tokens and the tokens kept, after ``run``
        self.stats: Counter[str] = Counter()

    def run(self, table: pd.DataFrame, membership: dict[str, np.ndarray] | None = None) -> Selection:
        """The checked selection; ``membership`` (identity-group masks per row) is needed for the cap."""
        name = self.selector.name
        # Every strategy today ranks the whole table. A strategy declaring ``streaming`` (selectors/
        # streaming.py) is to be dispatched here to its shard-by-shard selection instead of ``select``.
        selection = self.selector.select(table, self.ctx)
        if self.disparity_cap is not None:
            if membership is None:
                raise ValueError("the disparity cap needs the identity-group membership of every row")
            selection, self.cap_summary = apply_disparity_cap(
                selection, table["n_tokens"].to_numpy(), membership, self.disparity_cap, self.ctx.budget)
        if len(selection.ids) != len(table) or not np.array_equal(np.asarray(selection.ids),
                                                                  table["id"].to_numpy()):
            raise RuntimeError(f"selector {name!r} returned ids in a different order than its input")
        ntok = table["n_tokens"].to_numpy()
        self.limit = budget_tokens(ntok, self.ctx.budget)
        self.kept_tokens = int(ntok[selection.keep].sum())
        if self.kept_tokens > self.limit:
            raise RuntimeError(f"selector {name!r} kept {self.kept_tokens} tokens over the budget of "
                               f"{self.limit}")
        self._count(selection)
        return selection

    def _count(self, selection: Selection) -> None:
        # Reasons as a categorical from here: a small integer code per document, not an object pointer.
        reason = pd.Categorical(np.asarray(selection.reason, dtype=object))
        selection.reason = reason
        keep = np.asarray(selection.keep, dtype=bool)
        n = len(reason.categories)
        kept = np.bincount(reason.codes[keep], minlength=n)
        dropped = np.bincount(reason.codes[~keep], minlength=n)
        self.stats["kept"] += int(keep.sum())
        for c, label in enumerate(reason.categories):
            if kept[c]:
                self.stats[f"kept:{label}"] += int(kept[c])
            if dropped[c]:
                self.stats[f"dropped:{label}"] += int(dropped[c])


CAP_READMITTED = "readmitted:disparity_cap"
CAP_DROPPED = "dropped:disparity_cap"


def _ratios(keep: np.ndarray, membership: dict[str, np.ndarray]) -> dict[str, float]:
    overall = 1.0 - keep.mean() if len(keep) else 0.0
    return {g: float((1.0 - keep[m].mean()) / overall) for g, m in membership.items()
            if m.sum() >= 5 and overall > 0}


def apply_disparity_cap(selection: Selection, n_tokens: np.ndarray, membership: dict[str, np.ndarray],
                        max_ratio: float, budget: float) -> tuple[Selection, dict[str, Any]]:
    """The selection after ``dynacure.audit.mitigation.cap_disparity``, with the manifest reasons updated,
    and a summary (documents re-admitted / dropped, worst removal ratio before and after).

    Priority is the strategy's own selection probability (ties: input order), so the documents brought
    back are those the strategy liked best among the dropped members of an over-removed group."""
    from dynacure.audit.mitigation import cap_disparity

    keep0 = np.asarray(selection.keep, dtype=bool)
    priority = np.asarray(selection.probability, dtype=np.float64)
    keep, back = cap_disparity(keep0, priority, n_tokens, membership, max_ratio=max_ratio)
    limit = budget_tokens(n_tokens, budget)
    over = int(np.asarray(n_tokens)[keep].sum()) - limit
    if over > 0:  # no un-capped document was left to pay for a re-admission: give back the least preferred
        log.warning("disparity cap: %d tokens over the budget after re-admission; undoing some", over)
        for i in np.flatnonzero(back)[np.argsort(priority[back], kind="stable")]:
            if over <= 0:
                break
            keep[i], back[i] = False, False
            over -= int(n_tokens[i])
    dropped = keep0 & ~keep
    reason = np.asarray(selection.reason, dtype=object).copy()
    reason[back] = CAP_READMITTED
    reason[dropped] = CAP_DROPPED
    weight = np.asarray(selection.weight, dtype=np.float64).copy()
    weight[back & (weight <= 0)] = 1.0  # a re-admitted document trains like a plainly kept one
    before, after = _ratios(keep0, membership), _ratios(keep, membership)
    summary = {"max_ratio": float(max_ratio), "readmitted": int(back.sum()), "dropped": int(dropped.sum()),
               "worst_ratio_before": max(before.values(), default=float("nan")),
               "worst_ratio_after": max(after.values(), default=float("nan")),
               "ratios_before": before, "ratios_after": after}
    return Selection(selection.ids, selection.probability, weight, keep, reason, selection.prefix), summary
