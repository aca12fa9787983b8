"""``ShardScores``: one shard's part of a streaming selection, what a streaming selector's ``shard_scores``
returns (``pipeline.streaming`` selects from these shard by shard in bounded memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from dynacure.selectors.budget import BUDGET_REASON

Rule = Literal["top", "sample"]


@dataclass
class ShardScores:
    """One shard's part of a streaming selection (arrays of the shard's length, or one value for all)."""

    score: np.ndarray | None  # top: the rank score, higher first; sample: log-weight (None: uniform)
    rule: Rule = "top"
    n_draws: int = 32  # sample: draws whose inclusion rate is the manifest's probability
    eligible: np.ndarray | bool = True  # may be kept at all (else its dropped reason is the rule's)
    kept_reason: np.ndarray | str = "kept"
    dropped_reason: np.ndarray | str = BUDGET_REASON
    weight: np.ndarray | float = 1.0
    probability: np.ndarray | None = None  # the manifest's probability, when not the budget rule's
    prefix: np.ndarray | str = ""  # text prefix of a kept document (re-routing tag)

    def frame(self, n_tokens: np.ndarray, digests: np.ndarray) -> pa.Table:
        """The stored form: one row per document, with its tokens and id digest."""
        n = len(n_tokens)

        def full(v: Any, dtype: Any) -> np.ndarray:
            a = np.asarray(v, dtype=dtype)
            out = np.broadcast_to(a, (n,)) if a.ndim == 0 else a
            if out.shape != (n,):
                raise ValueError(f"shard_scores returned {out.shape[0]} values for {n} documents")
            return out

        score = np.zeros(n) if self.score is None else full(self.score, np.float64)
        prob = np.full(n, np.nan) if self.probability is None else full(self.probability, np.float64)
        return pa.table({
            "n_tokens": pa.array(full(n_tokens, np.int64)), "digest": pa.array(full(digests, np.uint64)),
            "score": pa.array(score), "eligible": pa.array(full(self.eligible, bool)),
            "kept_reason": pa.array(full(self.kept_reason, object), pa.string()),
            "dropped_reason": pa.array(full(self.dropped_reason, object), pa.string()),
            "weight": pa.array(full(self.weight, np.float64)), "probability": pa.array(prob),
            "prefix": pa.array(full(self.prefix, object), pa.string()),
        })
