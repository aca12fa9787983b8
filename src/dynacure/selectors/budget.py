"""The one place where a strategy's scores become decisions at a token budget.

Every selector calls one of two helpers exactly once, so all strategies are compared at the same budget in
the same unit (whitespace tokens, ``n_tokens``):

- ``top_to_budget``: walk documents from the highest score down and keep each one that still fits.
- ``sample_to_budget``: sample without replacement with probability proportional to a weight (Gumbel top-k:
  add Gumbel noise to the log-weights, then walk that order) and keep each document that still fits.

"Still fits" is sequential greedy fill: a document longer than the tokens left is skipped and the walk goes
on, so the kept tokens never exceed the budget and small documents can use the remainder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUDGET_REASON = "budget"


def check_budget(budget: float) -> float:
    """Refuse a budget fraction outside (0, 1]."""
    b = float(budget)
    if not np.isfinite(b) or b <= 0.0 or b > 1.0:
        raise ValueError(f"budget must be a fraction of the pool's tokens in (0, 1], got {budget!r}")
    return b


def budget_tokens(n_tokens: np.ndarray, budget: float) -> int:
    """Tokens a strategy may keep: ``budget`` times the pool's total ``n_tokens`` (rounded down)."""
    total = int(np.asarray(n_tokens, dtype=np.int64).sum())
    return int(np.floor(check_budget(budget) * total + 1e-9))


def _index_dtype(n: int) -> type[np.signedinteger]:
    # int32 positions halve the working set of ranking a large pool (a million documents: 4 MB per array).
    return np.int32 if n < 2**31 else np.int64


def greedy_fill(order: np.ndarray, n_tokens: np.ndarray, limit: int) -> np.ndarray:
    """Keep mask from walking ``order`` and keeping each document that fits in the tokens left.

    Vectorised: documents longer than what is left can never fit again (the remainder only shrinks), so
    each round filters them out and keeps the longest prefix that fits in one cumulative sum.
    """
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    keep = np.zeros(len(n_tokens), dtype=bool)
    rest = np.asarray(order).astype(_index_dtype(len(n_tokens)), copy=False)
    left = int(limit)
    while len(rest):  # zero-token documents still fit when nothing is left
        rest = rest[n_tokens[rest] <= left]
        if not len(rest):
            break
        csum = np.cumsum(n_tokens[rest])
        cut = int(np.searchsorted(csum, left, side="right"))  # rest[:cut] all fit
        keep[rest[:cut]] = True
        if cut:
            left -= int(csum[cut - 1])
        del csum
        # rest[cut] does not fit any more; walk on after it
        rest = rest[cut + 1 :]
    return keep


def unit_weights(n: int) -> np.ndarray:
    """Loss weight 1 for every document, as a read-only broadcast view (no memory per document)."""
    return np.broadcast_to(np.float64(1.0), (int(n),))


def keep_reasons(keep: np.ndarray, kept: str, dropped: str = BUDGET_REASON) -> np.ndarray:
    """Reason per document as an object array of two shared strings (8 bytes a document; a NumPy unicode
    array turned into objects would make one string object per document)."""
    out = np.empty(len(keep), dtype=object)
    out.fill(dropped)  # fill() stores the one object; np.full may build a string per element
    out[np.asarray(keep, dtype=bool)] = kept
    return out


@dataclass
class BudgetResult:
    keep: np.ndarray  # bool per document
    probability: np.ndarray  # float per document: inclusion probability (1/0 for deterministic rules)
    limit: int  # token budget
    kept_tokens: int


def _eligible_mask(n: int, eligible: np.ndarray | None) -> np.ndarray:
    if eligible is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(eligible, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"eligible mask has shape {mask.shape}, expected ({n},)")
    return mask


def top_to_budget(
    scores: np.ndarray, n_tokens: np.ndarray, budget: float, eligible: np.ndarray | None = None
) -> BudgetResult:
    """Keep the highest-scoring eligible documents until the token budget is used (ties: input order)."""
    scores = np.asarray(scores, dtype=np.float64)
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    limit = budget_tokens(n_tokens, budget)
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).sum())} documents have a NaN score; cannot rank them")
    mask = _eligible_mask(len(scores), eligible)
    idx = np.flatnonzero(mask)
    order = idx[np.argsort(-scores[idx], kind="stable")]
    keep = greedy_fill(order, n_tokens, limit)
    return BudgetResult(keep, keep.astype(np.float64), limit, int(n_tokens[keep].sum()))


def sample_to_budget(
    log_weights: np.ndarray | None,
    n_tokens: np.ndarray,
    budget: float,
    seed: int,
    eligible: np.ndarray | None = None,
    n_draws: int = 32,
) -> BudgetResult:
    """Sample without replacement proportionally to ``exp(log_weights)`` (Gumbel top-k) to the budget.

    The realised decision is draw 0 of a generator seeded with ``seed``; ``probability`` is each document's
    inclusion rate over ``n_draws`` independent draws (draw 0 included), an honest estimate of the
    strategy's selection probability at this budget. ``log_weights=None``: equal weights (uniform sampling).
    """
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    n = len(n_tokens)
    limit = budget_tokens(n_tokens, budget)
    mask = _eligible_mask(n, eligible)
    sub = None
    if log_weights is not None:
        logw = np.asarray(log_weights, dtype=np.float64)
        if logw.shape != (n,):
            raise ValueError(f"log_weights has shape {logw.shape}, expected ({n},)")
        if np.isnan(logw).any():
            raise ValueError(f"{int(np.isnan(logw).sum())} documents have a NaN log-weight; cannot sample")
        mask = mask & np.isfinite(logw)
    idx = np.flatnonzero(mask).astype(_index_dtype(n))
    del mask
    if log_weights is not None and len(idx) and not np.all(logw[idx] == logw[idx[0]]):
        sub = logw[idx]  # else equal weights: the Gumbel noise alone orders the documents
    rng = np.random.default_rng(seed)
    # Inclusion counts in float32 (exact up to 2**24 draws), divided in place into the probabilities.
    counts = np.zeros(n, dtype=np.float32)
    first: np.ndarray | None = None
    for _ in range(max(1, n_draws)):
        keys = rng.gumbel(size=len(idx))  # in place from here: one key array per draw
        if sub is not None:
            keys += sub
        np.negative(keys, out=keys)
        order = idx[np.argsort(keys, kind="stable")]
        del keys
        keep = greedy_fill(order, n_tokens, limit)
        del order
        counts += keep
        if first is None:
            first = keep
    assert first is not None
    probability = counts
    probability /= max(1, n_draws)
    return BudgetResult(first, probability, limit, int(n_tokens[first].sum()))


def tiered_log_weights(tier: np.ndarray) -> np.ndarray:
    """Log-weights that make Gumbel sampling exhaust tier 0 before tier 1 (and so on), uniform within a tier.

    Gumbel noise above ~40 has probability ~e^-40, so a gap of 1e3 per tier is an exact lexicographic order.
    """
    return -1e3 * np.asarray(tier, dtype=np.float64)
