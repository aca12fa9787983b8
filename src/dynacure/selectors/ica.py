"""``ica``: In-Context Approximation data scoring and reweighting (seed 004).

``score(x) = loss(x) - loss(x | H_k)``: how much the current model's loss on ``x`` drops when the ``k``
holdout examples nearest to ``x`` are placed in the context before it. Both losses are taken over the
first ``score_tokens`` tokens of ``x`` (default: half the model's context), so that the holdout context
fills the other half of the same window: scoring more of a long ``x`` would push the context out of the
window and compare two unconditioned losses. A large drop means the holdout set
"explains" ``x``; under a local linearisation this approximates the holdout-loss gain of a gradient step on
``x``. No reference model and no extra fine-tuning: one model, two forward passes per example.

Neighbours: cosine similarity of the ``embedding`` signal's vectors when the candidate table has that
column (the holdout is embedded with the same signal), else of hashed tf-idf vectors fitted on the holdout
and the candidates. The nearest neighbour is placed last, next to ``x``.

Weights (the paper's reweighting): within each training batch, scores are min-max normalised to [0, 1] and
divided by the batch mean, so every batch's weights average 1.

Two uses:
- ``ICASelector`` (static): scores every candidate once, keeps the top scores to the token budget and
  exports weights for the kept documents (computed within consecutive batches of ``batch_size`` kept
  documents, in table order; dropped documents get weight 0).
- ``ICAReweighter``: inside a training loop; a document's score is recomputed with the current model when
  it is used and its cached score is at least ``refresh_every`` steps old. It times scoring and training
  separately and reports the overhead (scoring seconds / training seconds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

from dynacure.learners.base import Learner
from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import check_budget, keep_reasons, top_to_budget
from dynacure.selectors.common import check_table, table_ids, token_counts
from dynacure.selectors.models import PRIOR_CHOICES, model_cost, prior_learner, work_done

log = logging.getLogger(__name__)

EMBEDDING_COLUMN = "embedding__vector"


def batch_weights(scores: np.ndarray) -> np.ndarray:
    """Min-max normalise ``scores`` to [0, 1], then divide by their mean (mean 1; all-equal -> all 1)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    lo, hi = float(s.min()), float(s.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-12:
        return np.ones_like(s)
    z = (s - lo) / (hi - lo)
    return z / z.mean()


def weights_in_batches(scores: np.ndarray, batch_size: int) -> np.ndarray:
    """``batch_weights`` over consecutive chunks of ``batch_size`` (the last chunk may be smaller)."""
    out = np.empty(len(scores), dtype=np.float64)
    for i in range(0, len(scores), max(1, batch_size)):
        out[i : i + batch_size] = batch_weights(scores[i : i + batch_size])
    return out


def _unit_rows(mat: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, 1e-12)


class NeighbourIndex:
    """The ``k`` nearest holdout examples of each candidate (cosine similarity; nearest last)."""

    def __init__(
        self,
        holdout_texts: Sequence[str],
        k: int = 3,
        holdout_vectors: np.ndarray | None = None,
        tfidf_features: int = 2**18,
    ) -> None:
        if not holdout_texts:
            raise ValueError("ICA needs a non-empty holdout set (ctx.target_texts / --target)")
        self.holdout = list(holdout_texts)
        self.k = max(1, min(int(k), len(self.holdout)))
        self.vectors = (
            None if holdout_vectors is None else _unit_rows(np.asarray(holdout_vectors, np.float64))
        )
        if self.vectors is not None and len(self.vectors) != len(self.holdout):
            raise ValueError(f"{len(self.vectors)} holdout vectors for {len(self.holdout)} holdout texts")
        from sklearn.feature_extraction.text import HashingVectorizer  # lazy: slow to import

        self._hasher = HashingVectorizer(
            n_features=tfidf_features, alternate_sign=False, norm=None, token_pattern=r"(?u)\b\w+\b"
        )
        self._tfidf: Any = None
        self._holdout_tfidf: sparse.csr_matrix | None = None

    def fit_tfidf(self, candidate_texts: Sequence[str]) -> NeighbourIndex:
        """Fit idf on holdout + candidates (the fallback when there are no embeddings)."""
        from sklearn.feature_extraction.text import TfidfTransformer

        counts = self._hasher.transform(self.holdout + list(candidate_texts))
        self._tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        self._holdout_tfidf = self._tfidf.transform(counts[: len(self.holdout)]).tocsr()
        return self

    def _top(self, sim: np.ndarray) -> np.ndarray:
        k = self.k
        part = (
            np.argpartition(-sim, k - 1, axis=1)[:, :k]
            if sim.shape[1] > k
            else np.tile(np.arange(sim.shape[1]), (len(sim), 1))
        )
        # Order the k by ascending similarity so the nearest neighbour sits right before x.
        rows = np.arange(len(sim))[:, None]
        order = np.argsort(sim[rows, part], axis=1, kind="stable")
        return part[rows, order]

    def query(
        self, texts: Sequence[str] | None = None, vectors: np.ndarray | None = None, chunk: int = 2048
    ) -> np.ndarray:
        """Indices ``(n, k)`` into the holdout, nearest last."""
        if vectors is not None:
            if self.vectors is None:
                raise ValueError("candidate vectors given but the holdout has none")
            v = _unit_rows(np.asarray(vectors, dtype=np.float64))
            return (
                np.vstack([self._top(v[i : i + chunk] @ self.vectors.T) for i in range(0, len(v), chunk)])
                if len(v)
                else np.zeros((0, self.k), dtype=np.int64)
            )
        if texts is None:
            raise ValueError("query needs texts or vectors")
        texts = list(texts)
        if self._tfidf is None:
            self.fit_tfidf(texts)
        assert self._tfidf is not None and self._holdout_tfidf is not None
        out = []
        for i in range(0, len(texts), chunk):
            x = self._tfidf.transform(self._hasher.transform(texts[i : i + chunk]))
            out.append(self._top(np.asarray((x @ self._holdout_tfidf.T).todense())))
        return np.vstack(out) if out else np.zeros((0, self.k), dtype=np.int64)

    def contexts(self, neighbours: np.ndarray, separator: str = "\n\n") -> list[str]:
        return [separator.join(self.holdout[j] for j in row) for row in neighbours]


def default_score_tokens(learner: Learner) -> int:
    """Half the learner's context: the scored part of ``x``; the holdout context gets the other half."""
    return max(1, int(getattr(learner, "n_ctx", 128)) // 2)


def ica_scores(
    learner: Learner,
    texts: Sequence[str],
    contexts: Sequence[str],
    batch_size: int = 1024,
    score_tokens: int | None = None,
) -> np.ndarray:
    """``loss(x) - loss(x | context)`` for each text (mean NLL over its first ``score_tokens`` tokens)."""
    texts, contexts = list(texts), list(contexts)
    m = score_tokens or default_score_tokens(learner)
    out = np.empty(len(texts), dtype=np.float64)
    for i in range(0, len(texts), batch_size):
        t, c = texts[i : i + batch_size], contexts[i : i + batch_size]
        out[i : i + len(t)] = np.asarray(learner.example_losses(t, max_tokens=m)) - np.asarray(
            learner.example_losses(t, c, max_tokens=m)
        )
    return out


def holdout_embeddings(texts: Sequence[str]) -> np.ndarray | None:
    """The holdout embedded with the ``embedding`` signal (the one that made the candidates' vectors)."""
    try:
        from dynacure.signals.base import get_signal

        return np.asarray(np.vstack(get_signal("embedding").score(list(texts))["vector"]), dtype=np.float64)
    except (KeyError, ImportError, OSError, RuntimeError, ValueError) as exc:
        log.warning(
            "embedding signal unavailable for the ICA holdout (%s); using hashed tf-idf neighbours", exc
        )
        return None


def table_vectors(table: pd.DataFrame, column: str = EMBEDDING_COLUMN) -> np.ndarray | None:
    if column not in table.columns:
        return None
    col = table[column]
    if col.isna().any():
        raise ValueError(f"column {column!r} has {int(col.isna().sum())} missing embeddings")
    return np.asarray(np.vstack(col.to_numpy()), dtype=np.float64)


@register_selector("ica")
class ICASelector(Selector):
    name: ClassVar[str] = "ica"
    kind: ClassVar[SelectorKind] = "model"
    needs_target: ClassVar[bool] = True
    optional_signals: ClassVar[tuple[str, ...]] = ("embedding",)  # neighbours by embedding when scored
    needs_text: ClassVar[bool] = True
    needs_learner: ClassVar[bool] = True
    signals: tuple[str, ...] = ()

    def __init__(
        self,
        k: int = 3,
        batch_size: int = 64,
        preset: str = "nano",
        prior_docs: int = 2000,
        prior_steps: int = 200,
        use_embeddings: bool = True,
        score_tokens: int | None = None,
        prior: str = "own",
    ) -> None:
        if prior not in PRIOR_CHOICES:
            raise ValueError(f"prior must be one of {PRIOR_CHOICES}, got {prior!r}")
        self.prior = prior
        if score_tokens is not None and score_tokens < 1:
            raise ValueError(f"score_tokens must be >= 1, got {score_tokens}")
        self.score_tokens = score_tokens
        self.cost: dict[str, float] | None = None  # model work of the last selection (FLOP accounting)
        self.k, self.batch_size = int(k), int(batch_size)
        self.preset, self.prior_docs, self.prior_steps = preset, int(prior_docs), int(prior_steps)
        self.use_embeddings = bool(use_embeddings)
        self.last_scores: np.ndarray | None = None
        self.neighbour_source = ""

    def scores(self, table: pd.DataFrame, ctx: SelectionContext) -> np.ndarray:
        holdout = list(ctx.target_texts or [])
        if not holdout:
            raise ValueError("ica needs a holdout set (ctx.target_texts / --target)")
        texts = table["text"].astype(str).tolist()
        start = work_done(ctx.learner) if ctx.learner is not None else (0, 0)
        learner = prior_learner(ctx.learner, texts, self.preset, ctx.seed, self.prior_docs, self.prior_steps)
        vectors = table_vectors(table) if self.use_embeddings else None
        hvec = holdout_embeddings(holdout) if vectors is not None else None
        if vectors is not None and hvec is not None and hvec.shape[1] == vectors.shape[1]:
            index = NeighbourIndex(holdout, self.k, hvec)
            neighbours = index.query(vectors=vectors)
            self.neighbour_source = "embedding"
        else:
            index = NeighbourIndex(holdout, self.k).fit_tfidf(texts)
            neighbours = index.query(texts=texts)
            self.neighbour_source = "tfidf"
        # batch_size is the reweighting batch; scoring goes in larger chunks (the learner packs windows).
        out = ica_scores(learner, texts, index.contexts(neighbours), score_tokens=self.score_tokens)
        done = work_done(learner)
        self.cost = model_cost(learner, done[0] - start[0], done[1] - start[1])
        return out

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_budget(ctx.budget)
        check_table(table, ("id", "n_tokens", "text"))
        scores = self.scores(table, ctx)
        self.last_scores = scores
        res = top_to_budget(scores, token_counts(table), ctx.budget)
        weight = np.zeros(len(table), dtype=np.float64)
        kept = np.flatnonzero(res.keep)
        weight[kept] = weights_in_batches(scores[kept], self.batch_size)
        reason = keep_reasons(res.keep, "top_ica")
        return Selection(table_ids(table), res.probability, weight, res.keep, reason)

    def params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "batch_size": self.batch_size,
            "preset": self.preset,
            "prior_docs": self.prior_docs,
            "prior_steps": self.prior_steps,
            "neighbours": self.neighbour_source or None,
            "score_tokens": self.score_tokens,
            "prior": self.prior,
        }


class ICAReweighter:
    """ICA weights inside a training loop, with scores refreshed as the model changes.

    ``candidates`` are the training texts addressed by index; ``step(indices)`` computes the batch's weights
    (re-scoring the documents whose cached score is ``refresh_every`` or more steps old, or never scored)
    and trains one weighted step. ``overhead`` = scoring seconds / training seconds.
    """

    def __init__(
        self,
        learner: Learner,
        candidates: Sequence[str],
        holdout_texts: Sequence[str],
        k: int = 3,
        refresh_every: int = 100,
        candidate_vectors: np.ndarray | None = None,
        holdout_vectors: np.ndarray | None = None,
        score_tokens: int | None = None,
    ) -> None:
        self.score_tokens = score_tokens
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        self.learner = learner
        self.candidates = list(candidates)
        self.refresh_every = int(refresh_every)
        t0 = time.perf_counter()
        if candidate_vectors is not None and holdout_vectors is not None:
            self.index = NeighbourIndex(holdout_texts, k, holdout_vectors)
            self._neighbours = self.index.query(vectors=candidate_vectors)
        else:
            self.index = NeighbourIndex(holdout_texts, k).fit_tfidf(self.candidates)
            self._neighbours = self.index.query(texts=self.candidates)
        self.setup_seconds = time.perf_counter() - t0
        self._score = np.full(len(self.candidates), np.nan)
        self._stamp = np.full(len(self.candidates), -(10**12), dtype=np.int64)
        self.steps = 0
        self.n_scored = 0
        self.scoring_seconds = 0.0
        self.training_seconds = 0.0

    def weights(self, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        t0 = time.perf_counter()
        stale = idx[(self.steps - self._stamp[idx]) >= self.refresh_every]
        stale = np.unique(stale)
        if len(stale):
            texts = [self.candidates[i] for i in stale]
            self._score[stale] = ica_scores(
                self.learner,
                texts,
                self.index.contexts(self._neighbours[stale]),
                batch_size=max(1, len(stale)),
                score_tokens=self.score_tokens,
            )
            self._stamp[stale] = self.steps
            self.n_scored += len(stale)
        w = batch_weights(self._score[idx])
        self.scoring_seconds += time.perf_counter() - t0
        return w

    def step(self, indices: Sequence[int]) -> float:
        """One weighted training step on ``candidates[indices]``; returns the learner's batch loss."""
        w = self.weights(indices)
        t0 = time.perf_counter()
        loss = self.learner.train_step([self.candidates[i] for i in indices], w)
        self.training_seconds += time.perf_counter() - t0
        self.steps += 1
        return float(loss)

    @property
    def overhead(self) -> float:
        return self.scoring_seconds / self.training_seconds if self.training_seconds > 0 else float("nan")

    def report(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "refresh_every": self.refresh_every,
            "documents_scored": self.n_scored,
            "scoring_seconds": round(self.scoring_seconds, 4),
            "training_seconds": round(self.training_seconds, 4),
            "neighbour_setup_seconds": round(self.setup_seconds, 4),
            "overhead": self.overhead,
        }
