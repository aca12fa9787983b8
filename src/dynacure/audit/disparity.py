"""Removal disparity: how much more often curation removes documents that mention a group.

For each group g: removal rate r_g = dropped_g / n_g, overall rate r = dropped / n, disparity ratio r_g / r
with a bootstrap interval (documents resampled within the group and within the corpus). A ratio above 1
means the strategy over-removes the group; the report names the worst-affected groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A group needs this many member documents for a removal rate worth an interval.
MIN_GROUP_DOCS = 5


@dataclass(frozen=True)
class GroupDisparity:
    group: str
    n_docs: int
    removal_rate: float
    overall_rate: float
    ratio: float
    ratio_low: float
    ratio_high: float


def removal_disparity(
    removed: np.ndarray,
    membership: dict[str, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    min_docs: int = MIN_GROUP_DOCS,
) -> pd.DataFrame:
    """One row per group with at least ``min_docs`` members, sorted worst (highest ratio) first."""
    removed = np.asarray(removed, dtype=bool)
    n = len(removed)
    if n == 0:
        raise ValueError("audit: no documents to audit")
    rng = np.random.default_rng(seed)
    overall = removed.mean()
    boot_overall = removed[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    rows = []
    for group, mask in membership.items():
        mask = np.asarray(mask, dtype=bool)
        if len(mask) != n:
            raise ValueError(f"audit: group {group!r} mask has {len(mask)} rows for {n} documents")
        members = removed[mask]
        k = len(members)
        if k < min_docs:
            continue
        rate = members.mean()
        boot_rate = members[rng.integers(0, k, size=(n_boot, k))].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rate / overall if overall > 0 else np.nan
            boots = boot_rate / boot_overall
        low, high = np.nanquantile(boots, [0.025, 0.975]) if np.isfinite(boots).any() else (np.nan, np.nan)
        rows.append(
            GroupDisparity(group, k, float(rate), float(overall), float(ratio), float(low), float(high))
        )
    df = pd.DataFrame([r.__dict__ for r in rows])
    return df.sort_values("ratio", ascending=False, ignore_index=True) if len(df) else df
