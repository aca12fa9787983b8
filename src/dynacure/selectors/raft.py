"""B3 ``raft``: RAFT (Dong et al. 2023) applied to input data: rank documents by the composite reward and
keep the top of the ranking to the token budget."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import check_budget, keep_reasons, top_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts
from dynacure.selectors.reward import RewardColumns, RewardWeights, composite_reward
from dynacure.selectors.shard_scores import ShardScores


@register_selector("raft")
class RaftSelector(Selector):
    name: ClassVar[str] = "raft"
    kind: ClassVar[SelectorKind] = "score"
    uses_reward: ClassVar[bool] = True
    signals: tuple[str, ...] = ("toxicity_ngram", "alignment", "quality")
    streaming: ClassVar[bool] = True

    def __init__(
        self,
        weights: RewardWeights | str | dict | None = None,
        columns: RewardColumns | None = None,
        calibrator: object = None,
    ) -> None:
        if isinstance(weights, str):
            weights = RewardWeights.parse(weights)
        elif isinstance(weights, dict):
            weights = RewardWeights(**weights)
        self.weights = weights or RewardWeights()
        self.columns = columns or RewardColumns()
        self.calibrator = calibrator
        self.last_reward: np.ndarray | None = None

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table)
        reward = composite_reward(table, self.weights, self.columns, self.calibrator)
        self.last_reward = reward
        res = top_to_budget(reward, token_counts(table), ctx.budget)
        reason = keep_reasons(res.keep, "top_reward")
        return Selection(
            table_ids(table), res.probability, unit_weights(len(table)), res.keep, reason
        )

    def shard_scores(self, table: pd.DataFrame, ctx: SelectionContext) -> ShardScores:
        reward = composite_reward(table, self.weights, self.columns, self.calibrator)
        return ShardScores(reward, "top", kept_reason="top_reward")

    def params(self) -> dict[str, Any]:
        return {
            "weights": self.weights.model_dump(),
            "columns": self.columns.model_dump(),
            "calibrated": self.calibrator is not None,
        }
