"""B3 ``raft``: RAFT (Dong et al. 2023) applied to input data: rank documents by the composite reward and
keep the top of the ranking to the token budget."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import check_budget, keep_reasons, top_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts, toxicity_columns
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
        columns: RewardColumns | dict | None = None,
        calibrator: object = None,
        toxicity_signals: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        if isinstance(weights, str):
            weights = RewardWeights.parse(weights)
        elif isinstance(weights, dict):
            weights = RewardWeights(**weights)
        self.weights = weights or RewardWeights()
        self.columns = RewardColumns(**columns) if isinstance(columns, dict) else (columns or RewardColumns())
        if toxicity_signals is not None and (
            isinstance(toxicity_signals, str) or not all(isinstance(v, str) for v in toxicity_signals)
        ):
            raise ValueError(f"toxicity_signals must be a list of signal names, got {toxicity_signals!r}")
        if toxicity_signals is not None and self.columns.toxicity is not None:
            raise ValueError("give either columns.toxicity or toxicity_signals, not both")
        # the reward's safety term from these signals' columns only (e.g. the cheap scorer of an experiment
        # whose table also holds an expensive one), found in the table at selection time
        self.toxicity_signals = tuple(toxicity_signals) if toxicity_signals is not None else None
        self.calibrator = calibrator
        self.last_reward: np.ndarray | None = None

    def _columns(self, table: pd.DataFrame) -> RewardColumns:
        if self.toxicity_signals is None:
            return self.columns
        cols = toxicity_columns(table, self.toxicity_signals)
        if not cols:
            raise ValueError(f"raft: no column of the toxicity signals {list(self.toxicity_signals)} in the "
                             "table; score the corpus with them first")
        return self.columns.model_copy(update={"toxicity": cols})

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table)
        reward = composite_reward(table, self.weights, self._columns(table), self.calibrator)
        self.last_reward = reward
        res = top_to_budget(reward, token_counts(table), ctx.budget)
        reason = keep_reasons(res.keep, "top_reward")
        return Selection(
            table_ids(table), res.probability, unit_weights(len(table)), res.keep, reason
        )

    def shard_scores(self, table: pd.DataFrame, ctx: SelectionContext) -> ShardScores:
        reward = composite_reward(table, self.weights, self._columns(table), self.calibrator)
        return ShardScores(reward, "top", kept_reason="top_reward")

    def params(self) -> dict[str, Any]:
        return {
            "weights": self.weights.model_dump(),
            "columns": self.columns.model_dump(),
            "toxicity_signals": list(self.toxicity_signals) if self.toxicity_signals is not None else None,
            "calibrated": self.calibrator is not None,
        }
