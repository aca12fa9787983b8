"""Mitigation of over-removal: a disparity cap applied after any selector, at the same token budget.

Documents of a group whose removal rate exceeds ``max_ratio`` x the overall rate are re-admitted in the
selector's own priority order (most preferred dropped member first), and the token budget is restored by
dropping the least preferred kept documents that belong to no capped group. The selector's ranking is
kept everywhere else, so the cap costs as little of the strategy's intent as possible.
"""

from __future__ import annotations

import numpy as np


def cap_disparity(
    keep: np.ndarray,
    priority: np.ndarray,
    n_tokens: np.ndarray,
    membership: dict[str, np.ndarray],
    max_ratio: float = 1.25,
    max_rounds: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (new_keep, readmitted_mask). ``priority``: higher = the selector prefers the document more."""
    if max_ratio < 1.0:
        raise ValueError(f"max_ratio must be >= 1 (got {max_ratio})")
    keep = np.asarray(keep, dtype=bool).copy()
    priority = np.asarray(priority, dtype=float)
    n_tokens = np.asarray(n_tokens, dtype=float)
    budget_tokens = n_tokens[keep].sum()
    readmitted = np.zeros_like(keep)
    masks = {g: np.asarray(m, dtype=bool) for g, m in membership.items()}
    for _ in range(max_rounds):
        overall = 1.0 - keep.mean()
        capped = [g for g, m in masks.items() if m.any() and (1.0 - keep[m].mean()) > max_ratio * overall]
        if not capped:
            break
        protected = np.zeros_like(keep)
        for g in capped:
            m = masks[g]
            protected |= m
            allowed_removed = int(np.floor(max_ratio * overall * m.sum()))
            dropped = np.flatnonzero(m & ~keep)
            excess = len(dropped) - allowed_removed
            if excess > 0:
                back = dropped[np.argsort(-priority[dropped], kind="stable")[:excess]]
                keep[back] = True
                readmitted[back] = True
        # Restore the token budget from documents outside every capped group, least preferred first.
        over = n_tokens[keep].sum() - budget_tokens
        if over > 0:
            candidates = np.flatnonzero(keep & ~protected)
            for i in candidates[np.argsort(priority[candidates], kind="stable")]:
                if over <= 0:
                    break
                keep[i] = False
                over -= n_tokens[i]
    return keep, readmitted
