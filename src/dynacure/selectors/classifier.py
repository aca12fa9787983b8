"""B2 ``classifier``: a Safety-Pretraining-style static filter (Maini et al. 2025) from a safety classifier.

The classifier's toxicity probability (max over its categories, calibrated when a calibrator is given) is
mapped to a harmfulness bucket 0-5 (``floor(6*p)``, capped at 5). Buckets ``<= keep_max`` are kept;
buckets ``>= drop_min`` are dropped (reason ``bucket>=<drop_min>``); the buckets in between are
**re-routed** rather than deleted, because the paper found deleting alone to be the weak variant.

Re-routing, as built here (we cannot rephrase text without a generator model): the document stays in the
curated corpus with a loss weight ``reroute_weight`` (< 1) and, unless ``reroute_tag`` is empty, a
harmfulness tag token prepended to its text (the paper's tag tokens), so a model learns the content as
*tagged* harmful rather than as plain text. Its manifest reason is ``reroute``. ``reroute=False`` drops
the middle buckets instead (reason ``bucket=<b>``).

At the budget: kept-bucket documents are sampled first (uniformly, seeded), re-routed ones only fill what
is left; what does not fit gets reason ``budget``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import (
    BUDGET_REASON,
    check_budget,
    keep_reasons,
    sample_to_budget,
    tiered_log_weights,
)
from dynacure.selectors.common import check_table, max_toxicity, table_ids, token_counts, toxicity_columns
from dynacure.selectors.shard_scores import ShardScores

N_BUCKETS = 6
DEFAULT_TAG = "<|harmful|>"


def harm_buckets(prob: np.ndarray) -> np.ndarray:
    """Toxicity probability in [0, 1] -> bucket 0..5."""
    return np.minimum(N_BUCKETS - 1, np.floor(np.asarray(prob) * N_BUCKETS)).astype(np.int64)


DEFAULT_SIGNAL = "toxicity_ngram"


@register_selector("classifier")
class ClassifierSelector(Selector):
    name: ClassVar[str] = "classifier"
    kind: ClassVar[SelectorKind] = "score"
    signals: tuple[str, ...] = ("toxicity_ngram",)
    streaming: ClassVar[bool] = True

    def __init__(
        self,
        keep_max: int = 2,
        drop_min: int = 5,
        reroute: bool = True,
        reroute_weight: float = 0.5,
        reroute_tag: str = DEFAULT_TAG,
        signal: str | None = DEFAULT_SIGNAL,
        toxicity_columns: list[str] | None = None,
        calibrator: object = None,
        n_draws: int = 32,
    ) -> None:
        if not 0 <= keep_max < drop_min <= N_BUCKETS - 1:
            raise ValueError(
                f"classifier buckets need 0 <= keep_max < drop_min <= 5, got keep_max={keep_max} "
                f"drop_min={drop_min}"
            )
        if not 0.0 < reroute_weight <= 1.0:
            raise ValueError(f"reroute_weight must be in (0, 1], got {reroute_weight}")
        self.keep_max, self.drop_min = int(keep_max), int(drop_min)
        self.reroute, self.reroute_weight, self.reroute_tag = (
            bool(reroute),
            float(reroute_weight),
            reroute_tag,
        )
        self.signal = signal
        if signal:
            # the signal named is the one scored: curate scores what a selector declares
            self.signals = (signal,)
        self.columns = toxicity_columns
        self.calibrator = calibrator
        self.n_draws = int(n_draws)

    def _columns(self, table: pd.DataFrame) -> list[str]:
        if self.columns is not None:
            return self.columns
        if self.signal:
            cols = toxicity_columns(table, (self.signal,))
            if cols:
                return cols
            if self.signal != DEFAULT_SIGNAL:
                # a signal the user named must not be replaced by another one without a word
                present = sorted({c.split("__", 1)[0] for c in table.columns if "__" in c})
                raise ValueError(
                    f"classifier: no column of signal {self.signal!r} in the attributes (signals present: "
                    f"{present or 'none'}); score it first (`dynacure score CORPUS --signals {self.signal}`) "
                    "and pass the folder with --attributes"
                )
        return toxicity_columns(table)

    def _tiers(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bucket, keep tier, middle buckets, re-routed) per document."""
        bucket = harm_buckets(max_toxicity(table, self._columns(table), self.calibrator))
        keep_tier = bucket <= self.keep_max
        mid = (bucket > self.keep_max) & (bucket < self.drop_min)
        return bucket, keep_tier, mid, mid if self.reroute else np.zeros(len(table), dtype=bool)

    def _dropped_reasons(self, bucket: np.ndarray, mid: np.ndarray) -> np.ndarray:
        reason = np.empty(len(bucket), dtype=object)
        reason.fill(BUDGET_REASON)
        reason[bucket >= self.drop_min] = f"bucket>={self.drop_min}"
        if not self.reroute and len(bucket):
            labels = np.array([f"bucket={b}" for b in range(int(bucket.max()) + 1)], dtype=object)
            reason[mid] = labels[bucket[mid]]  # shared label objects, not a string per document
        return reason

    def shard_scores(self, table: pd.DataFrame, ctx: SelectionContext) -> ShardScores:
        bucket, keep_tier, mid, reroute = self._tiers(table)
        tag = self.reroute_tag + " " if self.reroute_tag else ""
        return ShardScores(tiered_log_weights(np.where(keep_tier, 0, 1)), "sample", self.n_draws,
                           eligible=keep_tier | reroute, kept_reason=np.where(reroute, "reroute", "kept"),
                           dropped_reason=self._dropped_reasons(bucket, mid),
                           weight=np.where(reroute, self.reroute_weight, 1.0),
                           prefix=np.where(reroute, tag, "").astype(object))

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table)
        bucket, keep_tier, mid, reroute = self._tiers(table)
        eligible = keep_tier | reroute
        res = sample_to_budget(
            tiered_log_weights(np.where(keep_tier, 0, 1)),
            token_counts(table),
            ctx.budget,
            ctx.seed,
            eligible=eligible,
            n_draws=self.n_draws,
        )
        reason = self._dropped_reasons(bucket, mid)
        reason[keep_tier & res.keep] = "kept"
        reason[reroute & res.keep] = "reroute"
        weight = np.where(reroute, self.reroute_weight, 1.0)
        prefix = keep_reasons(reroute & res.keep & bool(self.reroute_tag), self.reroute_tag + " ", "")
        return Selection(table_ids(table), res.probability, weight, res.keep, reason, prefix=prefix)

    def params(self) -> dict[str, Any]:
        return {
            "keep_max": self.keep_max,
            "drop_min": self.drop_min,
            "reroute": self.reroute,
            "reroute_weight": self.reroute_weight,
            "reroute_tag": self.reroute_tag,
            "signal": self.signal,
        }
