"""``dsir``: Data Selection with Importance Resampling (Xie et al. 2023).

Each document becomes hashed unigram+bigram counts (``n_buckets`` buckets, 10k by default). Two bag-of-ngrams
models (categorical distributions over buckets, add-``alpha`` smoothed) are fitted: one on the target texts
(``ctx.target_texts``), one on the raw pool itself. A document's log importance weight is its
log-likelihood ratio, ``sum_j count_j(x) * (log p_target[j] - log p_raw[j])``. Documents are then resampled
without replacement with the Gumbel top-k trick (Gumbel noise added to the log-weights, walk the order) to
the token budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import check_budget, keep_reasons, sample_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids, token_counts


def ngram_hasher(n_buckets: int = 10_000) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer  # lazy: sklearn is slow to import

    # MurmurHash3 is stable across processes and runs (unlike Python's salted hash()).
    return HashingVectorizer(
        n_features=n_buckets,
        ngram_range=(1, 2),
        alternate_sign=False,
        norm=None,
        lowercase=True,
        token_pattern=r"(?u)\b\w+\b",
        dtype=np.float64,
    )


class BagOfNgrams:
    """A smoothed categorical distribution over hashed n-gram buckets."""

    def __init__(self, n_buckets: int = 10_000, alpha: float = 1.0) -> None:
        self.hasher = ngram_hasher(n_buckets)
        self.alpha = float(alpha)
        self.log_prob: np.ndarray | None = None

    def features(self, texts: Sequence[str], chunk: int = 4096) -> sparse.csr_matrix:
        parts = [self.hasher.transform(list(texts[i : i + chunk])) for i in range(0, len(texts), chunk)]
        return sparse.vstack(parts).tocsr() if parts else sparse.csr_matrix((0, self.hasher.n_features))

    def fit_counts(self, counts: sparse.spmatrix) -> BagOfNgrams:
        totals = np.asarray(counts.sum(axis=0)).ravel() + self.alpha
        self.log_prob = np.log(totals) - np.log(totals.sum())
        return self


@register_selector("dsir")
class DSIRSelector(Selector):
    name: ClassVar[str] = "dsir"
    kind: ClassVar[SelectorKind] = "score"
    needs_target: ClassVar[bool] = True
    needs_text: ClassVar[bool] = True
    signals: tuple[str, ...] = ()

    def __init__(self, n_buckets: int = 10_000, alpha: float = 1.0, n_draws: int = 32) -> None:
        if n_buckets < 16:
            raise ValueError(f"dsir n_buckets must be >= 16, got {n_buckets}")
        self.n_buckets, self.alpha, self.n_draws = int(n_buckets), float(alpha), int(n_draws)
        self.last_log_weights: np.ndarray | None = None

    def log_importance(self, pool_texts: Sequence[str], target_texts: Sequence[str]) -> np.ndarray:
        if not target_texts:
            raise ValueError(
                "dsir needs target texts (ctx.target_texts / --target): the distribution to match"
            )
        target = BagOfNgrams(self.n_buckets, self.alpha)
        raw = BagOfNgrams(self.n_buckets, self.alpha)
        pool_x = raw.features(pool_texts)
        raw.fit_counts(pool_x)
        target.fit_counts(target.features(target_texts))
        assert target.log_prob is not None and raw.log_prob is not None
        return np.asarray(pool_x @ (target.log_prob - raw.log_prob)).ravel()

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table, ("id", "n_tokens", "text"))
        logw = self.log_importance(table["text"].astype(str).tolist(), list(ctx.target_texts or []))
        self.last_log_weights = logw
        res = sample_to_budget(logw, token_counts(table), ctx.budget, ctx.seed, n_draws=self.n_draws)
        reason = keep_reasons(res.keep, "importance_sample")
        return Selection(
            table_ids(table), res.probability, unit_weights(len(table)), res.keep, reason
        )

    def params(self) -> dict[str, Any]:
        return {"n_buckets": self.n_buckets, "alpha": self.alpha, "n_draws": self.n_draws}
