"""B0 ``random``: uniform random documents to the token budget (seeded), the floor to beat."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import check_budget, keep_reasons, sample_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts
from dynacure.selectors.shard_scores import ShardScores


@register_selector("random")
class RandomSelector(Selector):
    name: ClassVar[str] = "random"
    kind: ClassVar[SelectorKind] = "rule"
    signals: tuple[str, ...] = ()
    streaming: ClassVar[bool] = True

    def __init__(self, n_draws: int = 32) -> None:
        self.n_draws = int(n_draws)

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table)
        n = len(table)
        res = sample_to_budget(None, token_counts(table), ctx.budget, ctx.seed, n_draws=self.n_draws)
        reason = keep_reasons(res.keep, "sampled")
        return Selection(table_ids(table), res.probability, unit_weights(n), res.keep, reason)

    def shard_scores(self, table: pd.DataFrame, ctx: SelectionContext) -> ShardScores:
        return ShardScores(None, "sample", self.n_draws, kept_reason="sampled")

    def params(self) -> dict[str, Any]:
        return {"n_draws": self.n_draws}
