"""Active queries of an expensive scorer by the closed loop: the value of a costly judge at a fraction of
its calls (issue 16, item 3; the active-learning loop of ../shared/seeds/001_*).

The corpus carries only *cheap* scores (e.g. the hashed n-gram toxicity model, thousands of documents a
second). An *expensive* scorer (the fine-tuned MiniLM, tens of documents a second) is too costly for every
document, so the loop calls it on the documents whose decision it is most likely to change, in rounds:

1. every document has a score in reward units: the learned policy's keep probability mapped onto the cheap
   composite reward by an isotonic fit (so the policy's ranking is kept and a toxicity correction can be
   added on the reward's scale), plus ``w_s * (cheap toxicity - estimated expensive toxicity)``;
2. the token budget puts a threshold on that score; the first round queries a uniform sample of the documents
   above it (what the budget keeps, where a miss of the cheap scorer costs), so the surrogate starts from an
   unbiased view; in later rounds a document's value of information is the probability that its expensive
   toxicity lies on the other side of the threshold, under a normal error of the current estimate (its
   spread from a second tree model of the surrogate's out-of-fold errors);
3. the documents of highest value are scored by the expensive model (each call counted, with its FLOPs);
4. a surrogate (gradient-boosted trees on the policy's own features: standardised cheap scores, length,
   source) is refitted on every expensive score so far and re-estimates the expensive toxicity of the
   documents not queried; a queried document keeps its exact score.

The final decision ranks by the corrected score. With no queries the ranking is the policy's own, so the
ablation ``query_share = 0`` is the loop without the expensive scorer (what the issue calls feedback-off).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynacure.selectors.budget import top_to_budget

log = logging.getLogger(__name__)

# spread of the expensive score around the cheap one before any expensive score is known (a toxicity is in
# [0, 1]; 0.25 lets every document within about half a reward unit of the threshold be worth a query)
PRIOR_SD = 0.25
MIN_FIT = 24  # expensive scores needed before the surrogate replaces the prior


@dataclass
class CountingScorer:
    """An expensive toxicity scorer with every call counted: documents, seconds and forward FLOPs."""

    score_fn: Callable[[list[str]], np.ndarray]
    flops_fn: Callable[[list[str]], float] | None = None
    calls: int = 0
    seconds: float = 0.0
    flops: float = 0.0

    @classmethod
    def for_signal(cls, name: str, kwargs: dict[str, Any] | None = None) -> CountingScorer:
        """The registered signal ``name``: its toxicity is the max over its columns, as in the reward."""
        from dynacure.signals.base import get_signal

        signal = get_signal(name, **(kwargs or {}))

        def score(texts: list[str]) -> np.ndarray:
            cols = signal.score(texts)
            return np.clip(np.max(np.vstack([np.asarray(v, float) for v in cols.values()]), axis=0), 0, 1)

        return cls(score, getattr(signal, "forward_flops", None))

    def __call__(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.asarray(self.score_fn(list(texts)), dtype=np.float64)
        self.seconds += time.perf_counter() - t0
        self.calls += len(texts)
        self.flops += float(self.flops_fn(list(texts))) if self.flops_fn is not None else float("nan")
        return out

    def stats(self) -> dict[str, float]:
        return {"calls": float(self.calls), "seconds": self.seconds, "flops": self.flops}


@dataclass
class QueryResult:
    score: np.ndarray  # the corrected score per document (reward units)
    queried: np.ndarray  # bool per document: scored by the expensive model
    expensive: np.ndarray  # its expensive toxicity (NaN where not queried)
    estimate: np.ndarray  # the final estimate of the expensive toxicity of every document
    rounds: list[dict[str, float]] = field(default_factory=list)


def policy_reward_scale(probability: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """The policy's ranking on the reward's scale: an increasing isotonic fit of the reward on the policy's
    probability, plus a vanishing term increasing in the probability, so the order is exactly the policy's
    (a flat stretch of the fit must not hand the ranking back to the cheap reward)."""
    from sklearn.isotonic import IsotonicRegression

    p = np.asarray(probability, dtype=np.float64)
    r = np.asarray(reward, dtype=np.float64)
    if len(p) < 2 or np.ptp(p) == 0:
        return r.copy()
    fit = IsotonicRegression(out_of_bounds="clip").fit(p, r).predict(p)
    from scipy.stats import rankdata

    return fit + 1e-6 * rankdata(p) / len(p)


def _threshold(score: np.ndarray, n_tokens: np.ndarray, budget: float) -> float:
    keep = top_to_budget(score, n_tokens, budget).keep
    if keep.all() or not keep.any():
        return float(np.min(score) if keep.all() else np.max(score))
    return 0.5 * (float(score[keep].min()) + float(score[~keep].max()))


def _fit_surrogate(features: np.ndarray, y: np.ndarray, seed: int) -> tuple[Any, np.ndarray]:
    """Gradient-boosted trees on the queried documents; returns the model and the out-of-fold absolute
    errors (what the spread of an unqueried document's estimate is taken from)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    def model() -> Any:
        return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.08, min_samples_leaf=8,
                                             l2_regularization=1.0, random_state=seed)

    folds = KFold(n_splits=4, shuffle=True, random_state=seed)
    oof = cross_val_predict(model(), features, y, cv=folds)
    return model().fit(features, y), np.abs(y - np.clip(oof, 0.0, 1.0))


def _spread(features: np.ndarray, known: np.ndarray, abs_err: np.ndarray, seed: int) -> np.ndarray:
    """Per-document spread of the estimate: a second tree model of the out-of-fold absolute error on the same
    features (errors differ by source and score range: a cheap scorer blind on one domain shows there)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.08, min_samples_leaf=8,
                                          l2_regularization=1.0, random_state=seed)
    # sqrt(pi/2) * E|e| is the sd of a normal error e
    pred = model.fit(features[known], abs_err).predict(features) * np.sqrt(np.pi / 2)
    return np.clip(pred, 0.02, 0.5)


def active_queries(
    base: np.ndarray,
    cheap_toxicity: np.ndarray,
    features: np.ndarray,
    texts: list[str],
    n_tokens: np.ndarray,
    budget: float,
    w_safety: float,
    scorer: Callable[[list[str]], np.ndarray],
    n_queries: int,
    rounds: int = 4,
    seed: int = 0,
) -> QueryResult:
    """Spend ``n_queries`` expensive calls in ``rounds`` (module docstring); ``base`` is the policy's score
    in reward units (``policy_reward_scale``), ``cheap_toxicity`` the toxicity the reward used."""
    from scipy.stats import norm

    n = len(base)
    base = np.asarray(base, dtype=np.float64)
    cheap = np.asarray(cheap_toxicity, dtype=np.float64)
    nt = np.asarray(n_tokens, dtype=np.int64)
    estimate, spread = cheap.copy(), np.full(n, PRIOR_SD)
    queried = np.zeros(n, dtype=bool)
    expensive = np.full(n, np.nan)
    n_queries = int(min(max(n_queries, 0), n))
    sizes = [len(a) for a in np.array_split(np.arange(n_queries), max(1, rounds))] if n_queries else []
    log_rounds: list[dict[str, float]] = []
    for r, k in enumerate(sizes):
        if k == 0:
            continue
        score = base + w_safety * (cheap - estimate)
        tau = _threshold(score, nt, budget)
        if r == 0:
            # exploration: a uniform sample of the documents the budget keeps, so the surrogate's first fit
            # sees the kept set as it is (where the cheap scorer's misses cost), not only the threshold
            keep = np.flatnonzero(score >= tau)
            rng = np.random.default_rng(seed)
            pick = rng.choice(keep if len(keep) >= k else np.arange(n), size=k, replace=False)
            value = np.full(n, np.nan)
        else:
            z = np.abs(score - tau) / np.maximum(w_safety * spread, 1e-9)
            value = norm.sf(z)
            value[queried] = -1.0
            pick = np.argsort(-value, kind="stable")[:k]
        expensive[pick] = scorer([texts[i] for i in pick])
        queried[pick] = True
        known = np.flatnonzero(queried)
        if len(known) >= MIN_FIT and np.ptp(expensive[known]) > 0:
            model, abs_err = _fit_surrogate(features[known], expensive[known], seed + r)
            estimate = np.clip(model.predict(features), 0.0, 1.0)
            spread = _spread(features, known, abs_err, seed + r)
            oof_mae = float(abs_err.mean())
        else:
            oof_mae = float("nan")
        estimate[known], spread[known] = expensive[known], 0.0
        log_rounds.append({"round": float(r), "queries": float(k), "queried": float(len(known)),
                           "threshold": tau, "mean_value": float(np.mean(value[pick])),
                           "surrogate_oof_mae": oof_mae})
        log.info("feedback round %d: %d expensive calls (%d in all), threshold %.4f, surrogate OOF MAE %.3f",
                 r, k, len(known), tau, oof_mae)
    return QueryResult(base + w_safety * (cheap - estimate), queried, expensive, estimate, log_rounds)
