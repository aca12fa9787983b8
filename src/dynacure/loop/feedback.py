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

``ActiveQueries`` is the same procedure one step at a time (``propose`` / ``tell``), so that a person can
answer between the rounds (``loop/labels.py``, issue 26), with the textbook baselines at the same calls
(uncertainty sampling at the budget threshold, random labelling) and the ceiling (every document). For
binary answers (labels) the surrogate is a classifier, the value of a query is the expected fall in toxic
documents kept, and with ``pessimistic`` the estimate may only raise a document's toxicity.
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
EDGE = 50  # kept documents nearest the threshold: what an admitted document pushes out


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


def _fit_classifier(features: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """Gradient-boosted trees for binary answers (labels): ``predict_proba`` is the estimated toxicity."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, min_samples_leaf=8,
                                          l2_regularization=1.0, random_state=seed).fit(features, y)


def _spread(features: np.ndarray, known: np.ndarray, abs_err: np.ndarray, seed: int) -> np.ndarray:
    """Per-document spread of the estimate: a second tree model of the out-of-fold absolute error on the same
    features (errors differ by source and score range: a cheap scorer blind on one domain shows there)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.08, min_samples_leaf=8,
                                          l2_regularization=1.0, random_state=seed)
    # sqrt(pi/2) * E|e| is the sd of a normal error e
    pred = model.fit(features[known], abs_err).predict(features) * np.sqrt(np.pi / 2)
    return np.clip(pred, 0.02, 0.5)


MODES = ("loop", "uncertainty", "random", "all")


class ActiveQueries:
    """The rounds of ``active_queries`` one step at a time, so that a person can answer between them
    (``loop/labels.py``): ``propose(k)`` names the next documents to query, ``tell(rows, values)`` records
    their expensive scores (or a person's labels) and refits the surrogate, ``result()`` is the decision.

    ``mode`` picks the query rule, the same number of calls for each (issue 26's baselines):

    - ``"loop"``: the first proposal a uniform sample of what the budget keeps (exploration), later ones
      the documents of highest value of information at the budget threshold; a tree surrogate on
      ``features`` spreads the answers to the documents not queried;
    - ``"uncertainty"``: the documents whose score lies closest to the budget threshold (textbook
      uncertainty sampling), no surrogate: a queried document gets its answer, the rest keep the cheap one;
    - ``"random"``: a uniform sample, no surrogate;
    - ``"all"``: every document that can be queried (the ceiling: one call each).

    ``labelable`` (bool per document, default all) is what can be queried: in the simulation the labelled
    sources. The surrogate's estimate replaces the cheap toxicity only there (it never saw the others).
    With ``binary`` answers (0/1 labels) the value of information is exact: the probability, under the
    surrogate's estimate, that the label moves the document across the threshold (a kept document whose
    score with label 1 falls below it, a dropped one whose score with label 0 rises above it); otherwise
    a normal error of the estimate with the spread of a second tree model (``_spread``).
    """

    def __init__(self, base: np.ndarray, cheap_toxicity: np.ndarray, features: np.ndarray,
                 n_tokens: np.ndarray, budget: float, w_safety: float, *, mode: str = "loop",
                 labelable: np.ndarray | None = None, binary: bool = False, pessimistic: bool = False,
                 seed: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.base = np.asarray(base, dtype=np.float64)
        self.cheap = np.asarray(cheap_toxicity, dtype=np.float64)
        self.features = np.asarray(features)
        self.n_tokens = np.asarray(n_tokens, dtype=np.int64)
        n = len(self.base)
        self.budget, self.w_safety, self.mode, self.binary, self.seed = budget, w_safety, mode, binary, seed
        self.pessimistic = pessimistic
        self.labelable = np.ones(n, dtype=bool) if labelable is None else np.asarray(labelable, dtype=bool)
        self.estimate, self.spread = self.cheap.copy(), np.full(n, PRIOR_SD)
        self.queried = np.zeros(n, dtype=bool)
        self.expensive = np.full(n, np.nan)
        self.n_proposals = 0
        self.rounds: list[dict[str, float]] = []

    def score(self) -> np.ndarray:
        """The corrected score: the base with the estimated expensive toxicity in place of the cheap one."""
        return self.base + self.w_safety * (self.cheap - self.estimate)

    def threshold(self) -> float:
        return _threshold(self.score(), self.n_tokens, self.budget)

    def candidates(self) -> np.ndarray:
        return np.flatnonzero(self.labelable & ~self.queried)

    def propose(self, k: int | None) -> tuple[np.ndarray, list[str]]:
        """The next ``k`` documents to query (rows, in the order of their value) and why each one;
        ``k`` None (or mode ``all``): every candidate."""
        cand = self.candidates()
        k = len(cand) if k is None or self.mode == "all" else int(min(max(k, 0), len(cand)))
        score, tau = self.score(), self.threshold()
        r = self.n_proposals
        self.n_proposals += 1
        if k == 0:
            return np.zeros(0, dtype=np.int64), []
        if self.mode == "all":
            return cand, ["ceiling: every labelable document"] * len(cand)
        if self.mode == "random" or (self.mode == "loop" and r == 0):
            # the loop's exploration: a uniform sample of the documents the budget keeps, so the surrogate's
            # first fit sees the kept set as it is (where a miss of the cheap scorer costs)
            pool = cand[score[cand] >= tau] if self.mode == "loop" else cand
            rng = np.random.default_rng(self.seed if r == 0 else [self.seed, r])
            if len(pool) >= k:
                pick = np.sort(rng.choice(pool, size=k, replace=False))
            else:  # all that the budget keeps, the rest a uniform sample of the other candidates
                rest = np.setdiff1d(cand, pool)
                pick = np.sort(np.concatenate([pool, rng.choice(rest, size=k - len(pool), replace=False)]))
            why = ("exploration: uniform sample of the documents the budget keeps" if self.mode == "loop"
                   else "random labelling: uniform sample")
            return pick, [f"{why} (score {score[i]:.4f}, threshold {tau:.4f})" for i in pick]
        if self.mode == "uncertainty":
            dist = np.abs(score[cand] - tau)
            pick = cand[np.argsort(dist, kind="stable")[:k]]
            return pick, [f"uncertainty: |score - threshold| = {abs(score[i] - tau):.4f}" for i in pick]
        value = self._value(score, tau)[cand]
        pick = cand[np.argsort(-value, kind="stable")[:k]]
        vals = dict(zip(cand.tolist(), value.tolist(), strict=True))
        return pick, [f"value of information {vals[i]:.3f}: estimated toxicity {self.estimate[i]:.3f} "
                      f"(cheap {self.cheap[i]:.3f}), score {score[i]:.4f} at threshold {tau:.4f}"
                      for i in pick]

    def _value(self, score: np.ndarray, tau: float) -> np.ndarray:
        """Probability that the document's answer moves it across the budget threshold."""
        w = self.w_safety
        if self.binary:
            # the expected fall in toxic documents kept: a kept document labelled toxic leaves (probability
            # p); a dropped one labelled clean comes in and pushes out the documents at the threshold, whose
            # expected toxicity is that of the lowest-scored kept ones
            p = np.clip(self.estimate, 0.0, 1.0)
            kept = score >= tau
            if_toxic = self.base + w * (self.cheap - 1.0)
            if_clean = self.base + w * self.cheap
            kept_rows = np.flatnonzero(kept)
            edge = kept_rows[np.argsort(score[kept_rows], kind="stable")[:EDGE]]
            marginal = float(p[edge].mean()) if len(edge) else 0.0
            return np.where(kept, p * (if_toxic < tau), (1.0 - p) * (if_clean >= tau) * marginal)
        from scipy.stats import norm

        z = np.abs(score - tau) / np.maximum(w * self.spread, 1e-9)
        return norm.sf(z)

    def tell(self, rows: np.ndarray, values: np.ndarray, note: float = float("nan")) -> None:
        """Record the expensive scores (labels) of ``rows`` and refit the surrogate (mode ``loop``)."""
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if len(rows) == 0:
            return
        tau = self.threshold()
        self.expensive[rows] = values
        self.queried[rows] = True
        known = np.flatnonzero(self.queried)
        oof_mae = float("nan")
        fit_seed = self.seed + len(self.rounds)
        if self.mode == "loop" and len(known) >= MIN_FIT and np.ptp(self.expensive[known]) > 0:
            if self.binary:  # labels: a classifier's probability is the estimate; the value needs no spread
                est = _fit_classifier(self.features[known], self.expensive[known] >= 0.5, fit_seed
                                      ).predict_proba(self.features)[:, 1]
            else:
                model, abs_err = _fit_surrogate(self.features[known], self.expensive[known], fit_seed)
                est = np.clip(model.predict(self.features), 0.0, 1.0)
                self.spread = _spread(self.features, known, abs_err, fit_seed)
                oof_mae = float(abs_err.mean())
            if self.pessimistic:
                # the estimate may only raise a document's toxicity: a document is admitted on an answer,
                # never on a guess (a guess that lowers it lets through the toxic ones it misjudges)
                est = np.maximum(est, self.cheap)
            # only where answers can come from: elsewhere the surrogate would extrapolate to a domain it
            # never saw an answer of
            self.estimate = np.where(self.labelable, est, self.cheap)
        self.estimate[known], self.spread[known] = self.expensive[known], 0.0
        self.rounds.append({"round": float(len(self.rounds)), "queries": float(len(rows)),
                            "queried": float(len(known)), "threshold": tau, "mean_value": note,
                            "surrogate_oof_mae": oof_mae})
        log.info("%s round %d: %d expensive calls (%d in all), threshold %.4f, surrogate OOF MAE %.3f",
                 self.mode, len(self.rounds) - 1, len(rows), len(known), tau, oof_mae)

    def result(self) -> QueryResult:
        return QueryResult(self.score(), self.queried.copy(), self.expensive.copy(), self.estimate.copy(),
                           list(self.rounds))


def round_sizes(n_queries: int, rounds: int) -> list[int]:
    """``n_queries`` calls split into ``rounds`` rounds as evenly as possible (the first ones larger)."""
    if n_queries <= 0:
        return []
    return [len(a) for a in np.array_split(np.arange(n_queries), max(1, rounds))]


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
    aq = ActiveQueries(base, cheap_toxicity, features, n_tokens, budget, w_safety, seed=seed)
    n_queries = int(min(max(n_queries, 0), len(aq.base)))
    for k in round_sizes(n_queries, rounds):
        if k == 0:
            continue
        score, tau = aq.score(), aq.threshold()
        pick, _ = aq.propose(k)
        value = aq._value(score, tau)[pick] if aq.n_proposals > 1 else np.full(len(pick), np.nan)
        aq.tell(pick, scorer([texts[i] for i in pick]), float(np.mean(value)))
    return aq.result()
