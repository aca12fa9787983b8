"""The selector interface shared by every strategy, so all are compared at the same token budget.

Input: a table with one row per candidate document (``id``, ``source``, ``n_tokens``, ``text`` and the
attribute columns ``<signal>__<column>``); gold labels in ``meta`` are never passed in. Output: a
``Selection`` with, per document, a selection probability, a training weight, a keep decision and a
reason; the decision manifest written by ``curate`` is made from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

from dynacure.learners.base import Learner

if TYPE_CHECKING:
    from dynacure.selectors.shard_scores import ShardScores


@dataclass
class Selection:
    ids: Any  # str array (NumPy or Arrow-backed, see ``common.table_ids``), same order as the input table
    probability: np.ndarray  # float in [0, 1]: the strategy's selection probability per document
    weight: np.ndarray  # float >= 0: loss weight when kept (1.0 for plain filters)
    keep: np.ndarray  # bool: the realised decision at the budget
    reason: np.ndarray  # str: why kept or dropped (e.g. "kept", "toxicity>0.5", "blocklist", "below_budget")
    # The text transform of the kept documents: a prefix (the classifier's re-route tag, "" for none) put
    # before each document's text wherever it is written or trained on; None: no document gets one.
    prefix: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("probability", "weight", "keep", "reason", "prefix"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"Selection.{name} has {len(value)} rows for {n} ids")

    @property
    def rerouted(self) -> np.ndarray:
        """Kept documents whose text gets a prefix (a re-route tag)."""
        if self.prefix is None:
            return np.zeros(len(self.ids), dtype=bool)
        return np.asarray(self.keep, dtype=bool) & (np.asarray(self.prefix, dtype=object) != "")

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
    # (done, total) of what a selector learns while selecting (the loop's policy steps), for a progress line
    progress: Callable[[int, int], None] | None = None


SelectorKind = Literal["rule", "score", "model", "loop"]


class Selector(ABC):
    """A selection strategy. Its traits (class attributes) tell the orchestrators (``pipeline``,
    ``experiments``) what it needs and how to account for it, so none of them keeps a list of names.

    - ``kind``: ``"rule"`` a fixed rule (random, heuristic, source filter); ``"score"`` a ranking of stored
      scores (classifier, RAFT, DSIR); ``"model"`` scores with a model it trains while selecting (CoLoR,
      ICA); ``"loop"`` a policy learned in the closed loop (PPO, REINFORCE, bandit). Rules and scores learn
      nothing while selecting (policy-learning time 0, curation FLOPs NaN).
    - ``needs_target``: refuses to run without a target/holdout set (``SelectionContext.target_texts``).
    - ``needs_text``: reads the ``text`` column (else ``curate`` need not hold the corpus's texts).
    - ``needs_learner``: scores with a learner (``SelectionContext.learner`` or one of its own).
    - ``uses_reward``: reads the composite reward, so the experiment's weight axis applies to it.
    - ``signals``: the attribute signals it reads (``curate`` scores them when no stored tables are given);
      ``optional_signals``: ones it uses when stored but does not need (ICA's embedding).
    - ``streaming``: can decide shard by shard without holding the whole table (``pipeline.select``
      dispatches such a strategy to its streaming selection).
    """

    name: ClassVar[str]
    kind: ClassVar[SelectorKind] = "rule"
    needs_target: ClassVar[bool] = False
    needs_text: ClassVar[bool] = False
    needs_learner: ClassVar[bool] = False
    uses_reward: ClassVar[bool] = False
    signals: tuple[str, ...] = ()
    optional_signals: ClassVar[tuple[str, ...]] = ()
    streaming: ClassVar[bool] = False

    # What a selection leaves for the caller's accounting (set by the strategies that have them).
    prior: str = "own"  # model strategies: "own" small model, or "learner": the one handed in is the prior
    cost: dict[str, float] | None = None  # model work of the last selection (``selectors.models.model_cost``)
    config: Any = None  # loop strategies: their ``LoopConfig``
    policy_path: str | None = None  # loop strategies: a saved policy applied without learning
    use_learner: bool = False  # loop strategies: a learner is trained inside the loop
    learner_source: str | None = None  # loop strategies: None / "own" / "experiment"
    learner_factory: Callable[[], Learner] | None = None  # set by a caller for learner_source="experiment"
    history: Sequence[dict[str, Any]] = ()  # loop strategies: per-step training log of the last selection

    @property
    def dropped_columns(self) -> list[str]:
        """Attribute columns the strategy left out of its features (none unless it says so)."""
        return []

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
        ``select`` on the whole table decides exactly as ``pipeline.streaming`` does from these parts."""
        raise NotImplementedError(f"strategy {self.name!r} does not stream")

    @classmethod
    def feature_column(cls, feature: str) -> str:
        return f"{cls.name}__{feature}"

    def params(self) -> dict[str, Any]:
        return {}
