"""The selector interface shared by every strategy, so all are compared at the same token budget.

Input: a table with one row per candidate document (``id``, ``source``, ``n_tokens``, ``text`` and the
attribute columns ``<signal>__<column>``); gold labels in ``meta`` are never passed in. Output: a
``Selection`` with, per document, a selection probability, a training weight, a keep decision and a
reason; the decision manifest written by ``curate`` is made from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.learners.base import Learner

if TYPE_CHECKING:
    from dynacure.selectors.streaming import ShardScores


@dataclass
class Selection:
    ids: Any  # str array (NumPy or Arrow-backed, see ``common.table_ids``), same order as the input table
    probability: np.ndarray  # float in [0, 1]: the strategy's selection probability per document
    weight: np.ndarray  # float >= 0: loss weight when kept (1.0 for plain filters)
    keep: np.ndarray  # bool: the realised decision at the budget
    reason: np.ndarray  # str: why kept or dropped (e.g. "kept", "toxicity>0.5", "blocklist", "below_budget")

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("probability", "weight", "keep", "reason"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Selection.{name} has {len(getattr(self, name))} rows for {n} ids")

    def manifest(self) -> pd.DataFrame:
        # Categorical decision/reason: one small code per document instead of a string each.
        decision = pd.Categorical.from_codes(np.where(self.keep, 0, 1).astype(np.int8), ["keep", "drop"])
        return pd.DataFrame({"id": self.ids, "decision": decision, "probability": self.probability,
                             "weight": self.weight, "reason": pd.Categorical(self.reason)})


@dataclass
class SelectionContext:
    """What a selector may use besides the candidate table."""

    budget: float  # share of the pool's tokens to select, in (0, 1]
    seed: int = 0
    learner: Learner | None = None  # the current model, for model-aware strategies (CoLoR, ICA, RL)
    target_texts: list[str] | None = None  # a small clean/target set (DSIR, CoLoR-Filter, ICA holdout)


class Selector(ABC):
    name: ClassVar[str]
    needs_text: ClassVar[bool] = False
    needs_learner: ClassVar[bool] = False
    # True: the strategy is a per-document score and a budget rule (``shard_scores``), so
    # ``selectors.streaming`` can select over stored attributes shard by shard in bounded memory.
    streaming: ClassVar[bool] = False

    @abstractmethod
    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        """Decide for every row of ``table`` at ``ctx.budget``."""

    def text_features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-document columns computed from text, one shard at a time, so that ``curate`` need not hold
        every text of a corpus: a selector whose only use of text is such a feature sets ``needs_text =
        False`` and reads the columns ``feature_column(name)`` when they are in the table."""
        return {}

    def shard_scores(self, table: pd.DataFrame, ctx: SelectionContext) -> ShardScores:
        """This strategy's per-document part for the rows of one shard (``streaming`` strategies): the score
        the budget rule ranks or samples by, which rows may be kept, and the manifest's reasons and weights;
        ``select`` on the whole table decides exactly as ``selectors.streaming`` does from these parts."""
        raise NotImplementedError(f"strategy {self.name!r} does not stream")

    @classmethod
    def feature_column(cls, feature: str) -> str:
        return f"{cls.name}__{feature}"

    def params(self) -> dict[str, Any]:
        return {}
