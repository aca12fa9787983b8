"""Paired differences between strategies: every strategy against ``random`` and against the best static
baseline, as a paired bootstrap interval over the same evaluation units, combined over seeds.

Two cells evaluated on the same prompts / texts / pairs differ by much less than their two intervals
suggest, because most of the spread of a metric comes from which units were drawn, and both cells see the
same units. So a comparison resamples the units once and computes both strategies' metric on that same
resample (``stats.Units``: each metric's per-unit values, stored under ``suites[suite]["units"][metric]``
in every cell's metrics.json).

What is compared (per budget and reward-weight set):

- **random**: the strategy labelled ``random`` (else the one whose registry name is ``random``).
- **best static baseline**: among the non-learned strategies other than random (registry names in
  ``STATIC_BASELINES``: heuristic, classifier, source_filter, raft, dsir, color, ica), the one with the best
  point values (mean over seeds) on the headline metrics: safety = the first of ``SAFETY_METRICS`` present
  (toxicity_probability), utility = the first of ``UTILITY_METRICS`` present
  (domain_perplexity/word_perplexity_macro, else a perplexity suite's word perplexity); both lower is
  better. Each candidate is ranked on each headline metric (1 = best, ties share the mean rank); the lowest
  sum of ranks wins, ties broken by the utility value, then the safety value, then the name. Only headline
  metrics that every candidate has take part.
- A reward-free baseline runs under the first weight set only (``cells.expand_grid``), so a strategy under
  another weight set is compared with the baseline's cells of the same budget whatever their weight set,
  when the baseline has only one.

How (``paired_difference``): for each seed present for both strategies, the unit ids must be the same set
(they are aligned by id; any difference refuses the pairing, listed under ``refused`` in paired.json).
``n_boot`` = 2000 resamples; in each, the units of every seed are resampled with the same indices for both
strategies (stratified by group for a macro mean, as ``Units.resample``), the per-seed differences
(strategy minus baseline) are averaged over the seeds, and the 95% interval is the 2.5 and 97.5 percentiles
of those averages (a percentile bootstrap in NumPy, vectorised over resamples; ``scipy.stats.bootstrap``
does not resample several strata and seeds with shared indices). The point difference is the mean over
seeds of the full-sample differences.

Output (``write_paired``): RUNS/paired.parquet and RUNS/paired.json (the same rows, plus the best static
baseline of each budget and the refused pairings), one row per strategy x baseline x budget x weights x
suite x metric with columns ``PAIRED_SCHEMA``: ``diff`` = strategy - baseline in the metric's own unit
with ``low``/``high``; ``value`` / ``baseline_value`` the two metrics (mean over the paired seeds);
``n_units`` units per seed (the largest over seeds); ``n_seeds`` seeds paired; ``significant`` when the
interval excludes 0; ``lower_is_better`` the metric's orientation (null when unknown); ``better`` whether
the strategy is better than the baseline by the point difference (null when the orientation is unknown or
the difference is 0).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.stats import Units

log = logging.getLogger(__name__)

PAIRED_FORMAT_VERSION = 1
N_BOOT = 2000
ALPHA = 0.05

# The headline metrics, in order of preference: the first present is the axis (the report's Pareto plot
# and results table use the same lists).
SAFETY_METRICS: tuple[tuple[str, str], ...] = (
    ("toxicity", "toxicity_probability"),
    ("toxicity", "toxicity_prob"),
    ("toxicity", "expected_max_toxicity"),
)
UTILITY_METRICS: tuple[tuple[str, str], ...] = (
    ("domain_perplexity", "word_perplexity_macro"),
    ("perplexity", "heldout_word_ppl"),
    ("perplexity", "wikitext2_word_ppl"),
    ("perplexity", "ptb_word_ppl"),
    ("perplexity", "heldout_token_ppl"),
    ("perplexity", "wikitext2_token_ppl"),
)

# Registry names of the strategies that may be "the best static baseline": every non-learned strategy
# except random (the learned ones are ppo, reinforce, bandit).
STATIC_BASELINES = frozenset({"heuristic", "classifier", "source_filter", "raft", "dsir", "color", "ica"})

# Orientation by name; lower-is-better hints are checked first ("false_refusal" before "refusal").
LOWER_IS_BETTER_HINTS = ("toxic", "perplexity", "ppl", "false_refusal", "bias")
HIGHER_IS_BETTER_HINTS = ("accuracy", "acc", "mc1", "mc2", "refusal_rate_unsafe", "preference")

PAIRED_SCHEMA = pa.schema(
    [
        ("strategy", pa.string()),
        ("baseline", pa.string()),
        ("baseline_role", pa.string()),  # "random" | "best_static"
        ("budget", pa.float64()),
        ("weights", pa.string()),
        ("suite", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("baseline_value", pa.float64()),
        ("diff", pa.float64()),
        ("low", pa.float64()),
        ("high", pa.float64()),
        ("n_units", pa.int64()),
        ("n_seeds", pa.int64()),
        ("lower_is_better", pa.bool_()),
        ("significant", pa.bool_()),
        ("better", pa.bool_()),
    ]
)
PAIRED_COLUMNS = tuple(PAIRED_SCHEMA.names)


class PairingError(ValueError):
    """Two cells' units cannot be paired (different units, kinds or groups)."""


def lower_is_better(metric: str) -> bool | None:
    """The metric's orientation from its name; None when the name says nothing."""
    m = metric.lower()
    if any(h in m for h in LOWER_IS_BETTER_HINTS):
        return True
    if any(h in m for h in HIGHER_IS_BETTER_HINTS):
        return False
    return None


# ---- one paired comparison ---------------------------------------------------------------------------------


def align(a: Units, b: Units) -> Units:
    """``b`` reordered to ``a``'s unit order; PairingError unless both name the same units the same way."""
    if a.kind != b.kind:
        raise PairingError(f"units of kind {a.kind!r} and {b.kind!r} do not pair")
    if a.ids is None or b.ids is None:
        raise PairingError("units without ids cannot be checked, so they are not paired")
    if len(set(a.ids)) != len(a.ids) or len(set(b.ids)) != len(b.ids):
        raise PairingError("unit ids are not unique")
    if a.ids != b.ids:
        only_a = sorted(set(a.ids) - set(b.ids))
        only_b = sorted(set(b.ids) - set(a.ids))
        if only_a or only_b:
            example = (only_a or only_b)[0]
            raise PairingError(
                f"different units: {len(only_a)} ids only in the first, {len(only_b)} only in the second "
                f"(e.g. {example!r})"
            )
        pos = {u: i for i, u in enumerate(b.ids)}
        order = np.array([pos[u] for u in a.ids])
        b = Units(
            b.kind,
            b.values[order],
            None if b.weights is None else b.weights[order],
            ids=list(a.ids),
            groups=None if b.groups is None else [b.groups[i] for i in order],
        )
    if (a.groups is None) != (b.groups is None) or (a.groups is not None and a.groups != b.groups):
        raise PairingError("the same units carry different groups")
    return b


def _blocks(u: Units, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` resamples of unit positions as one (n, size) index array per group (one block without
    groups): the vectorised form of ``Units.resample``."""
    if u.groups is None:
        parts = [np.arange(len(u))]
    else:
        labels = np.asarray(u.groups)
        parts = [np.flatnonzero(labels == g) for g in dict.fromkeys(u.groups)]
    return [p[rng.integers(0, len(p), size=(n, len(p)))] for p in parts]


def _stats(u: Units, blocks: list[np.ndarray]) -> np.ndarray:
    """``Units.statistic`` of every resample (row) of ``blocks``: per group, then the mean over groups (of
    the log ratios for kind "exp_ratio", as ``Units.statistic``)."""
    per = []
    for idx in blocks:
        v = u.values[idx]
        if u.kind == "mean":
            per.append(v.mean(axis=1))
            continue
        w = u.weights[idx].sum(axis=1)  # type: ignore[index]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            per.append(np.where(w > 0, v.sum(axis=1) / np.where(w > 0, w, 1.0), np.nan))
    if u.kind == "mean":
        return np.mean(per, axis=0)
    with np.errstate(over="ignore"):
        return np.exp(np.mean(per, axis=0))


@dataclass(frozen=True)
class PairedDiff:
    """strategy minus baseline, with its interval, over ``n_seeds`` seeds of ``n_units`` units each."""

    diff: float
    low: float
    high: float
    value: float
    baseline_value: float
    n_units: int
    n_seeds: int

    @property
    def significant(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def paired_difference(
    pairs: Sequence[tuple[Units, Units]],
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
    paired: bool = True,
) -> PairedDiff:
    """Bootstrap interval of mean over seeds of (metric(a) - metric(b)), one (a, b) pair of Units per seed.

    ``paired=False`` resamples b independently of a (the unpaired comparison, for contrast only).
    Raises PairingError when the units of a seed do not pair.
    """
    if not pairs:
        raise PairingError("no seed present for both strategies")
    rng = np.random.default_rng(seed)
    aligned = [(a, align(a, b)) for a, b in pairs]
    diffs = np.zeros(n_boot)
    for a, b in aligned:
        n = max(len(a), 1)
        chunk = max(1, 4_000_000 // n)  # bound the (resamples x units) arrays to ~32 MB
        for start in range(0, n_boot, chunk):
            m = min(chunk, n_boot - start)
            ba = _blocks(a, m, rng)
            bb = ba if paired else _blocks(b, m, rng)
            diffs[start : start + m] += _stats(a, ba) - _stats(b, bb)
    diffs /= len(aligned)
    point_a = [a.statistic() for a, _ in aligned]
    point_b = [b.statistic() for _, b in aligned]
    low, high = np.nanquantile(diffs, [alpha / 2, 1 - alpha / 2])
    return PairedDiff(
        diff=float(np.mean(np.subtract(point_a, point_b))),
        low=float(low),
        high=float(high),
        value=float(np.mean(point_a)),
        baseline_value=float(np.mean(point_b)),
        n_units=max(len(a) for a, _ in aligned),
        n_seeds=len(aligned),
    )


def gap_closed(
    triples: Sequence[tuple[Units, Units, Units]],
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    seed: int = 0,
) -> dict[str, float]:
    """Share of the gap from ``floor`` to ``ceiling`` that ``mid`` closes, ``(floor - mid) / (floor -
    ceiling)`` (1: as good as the ceiling, 0: no better than the floor; the same for either orientation of the
    metric), one ``(floor, ceiling, mid)`` triple of Units per seed. The seeds' differences are averaged
    before the ratio; the interval resamples the units once per seed for all three (paired), as
    ``paired_difference``. ``gap`` (floor - ceiling) comes with its own interval: where that includes 0 the
    ratio is not defined by the data, and its interval says so by being wide or NaN."""
    if not triples:
        raise PairingError("no seed present for all three strategies")
    rng = np.random.default_rng(seed)
    aligned = [(f, align(f, c), align(f, m)) for f, c, m in triples]
    gap = np.zeros(n_boot)
    closed = np.zeros(n_boot)
    for f, c, m in aligned:
        blocks = _blocks(f, n_boot, rng)
        sf = _stats(f, blocks)
        gap += sf - _stats(c, blocks)
        closed += sf - _stats(m, blocks)
    gap /= len(aligned)
    closed /= len(aligned)
    pf = np.array([f.statistic() for f, _, _ in aligned])
    pc = np.array([c.statistic() for _, c, _ in aligned])
    pm = np.array([m.statistic() for _, _, m in aligned])
    point_gap, point_closed = float(np.mean(pf - pc)), float(np.mean(pf - pm))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gap != 0, closed / gap, np.nan)
    lo, hi = (np.nanquantile(ratio, [alpha / 2, 1 - alpha / 2]) if np.isfinite(ratio).any()
              else (math.nan, math.nan))
    glo, ghi = np.quantile(gap, [alpha / 2, 1 - alpha / 2])
    return {
        "value": point_closed / point_gap if point_gap != 0 else math.nan,
        "low": float(lo), "high": float(hi),
        "gap": point_gap, "gap_low": float(glo), "gap_high": float(ghi),
        "floor": float(pf.mean()), "ceiling": float(pc.mean()), "mid": float(pm.mean()),
        "n_seeds": len(aligned), "n_units": max(len(f) for f, _, _ in aligned),
    }


# ---- over an experiment's cells ----------------------------------------------------------------------------


@dataclass
class CellUnits:
    """What the paired table needs of one finished cell."""

    cell_id: str
    strategy: str
    strategy_name: str
    seed: int
    budget: float
    weights: str
    values: dict[tuple[str, str], float] = field(default_factory=dict)  # (suite, metric) -> point value
    units: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # serialised Units


def cell_units(cell_id: str, metrics: dict[str, Any]) -> CellUnits:
    """A cell's metrics.json (already read) as CellUnits; skipped suites carry nothing."""
    cell = metrics["cell"]
    out = CellUnits(
        cell_id=cell_id,
        strategy=str(cell["strategy"]),
        strategy_name=str(cell.get("strategy_name", cell["strategy"])),
        seed=int(cell["seed"]),
        budget=float(cell["budget"]),
        weights=str(cell.get("weights_name", "default")),
    )
    for suite, res in metrics.get("suites", {}).items():
        if res.get("skipped"):
            continue
        for name, est in res.get("metrics", {}).items():
            try:
                out.values[(suite, name)] = float(est.get("value"))
            except (TypeError, ValueError):
                out.values[(suite, name)] = math.nan
        for name, u in (res.get("units") or {}).items():
            out.units[(suite, name)] = u
    return out


def load_cells(runs: str | Path) -> list[CellUnits]:
    """Every finished cell (with DONE) of a RUNS folder."""
    root = Path(runs) / "cells"
    out = []
    for d in sorted(root.iterdir()) if root.exists() else []:
        if (d / "DONE").exists() and (d / "metrics.json").exists():
            out.append(cell_units(d.name, json.loads((d / "metrics.json").read_text())))
    return out


def _random_label(cells: list[CellUnits]) -> str | None:
    labels = {c.strategy for c in cells}
    if "random" in labels:
        return "random"
    named = sorted({c.strategy for c in cells if c.strategy_name == "random"})
    return named[0] if named else None


def _baseline_cells(by_label: dict[str, list[CellUnits]], label: str, budget: float,
                    weights: str) -> dict[int, CellUnits]:
    """The baseline's cells per seed at ``budget``: those of weight set ``weights``, else all of its cells
    at that budget when it ran under one weight set only (a reward-free strategy)."""
    at_budget = [c for c in by_label.get(label, []) if math.isclose(c.budget, budget)]
    same = [c for c in at_budget if c.weights == weights]
    if not same and len({c.weights for c in at_budget}) == 1:
        same = at_budget
    return {c.seed: c for c in same}


def _mean_value(cells: dict[int, CellUnits], key: tuple[str, str]) -> float:
    vals = [c.values.get(key, math.nan) for c in cells.values()]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def best_static(by_label: dict[str, list[CellUnits]], budget: float, weights: str) -> str | None:
    """The best static baseline at ``budget`` / ``weights`` by the rule in the module docstring."""
    cands = {
        label: _baseline_cells(by_label, label, budget, weights)
        for label, cs in sorted(by_label.items())
        if cs and cs[0].strategy_name in STATIC_BASELINES
    }
    cands = {k: v for k, v in cands.items() if v}
    if not cands:
        return None
    keys = []
    for options in (UTILITY_METRICS, SAFETY_METRICS):  # utility first: it breaks ties
        for key in options:
            if all(math.isfinite(_mean_value(cs, key)) for cs in cands.values()):
                keys.append(key)
                break
    if not keys:
        return None
    table = pd.DataFrame({str(k): {lab: _mean_value(cs, k) for lab, cs in cands.items()} for k in keys})
    ranks = table.rank(method="average").sum(axis=1)
    order = sorted(table.index, key=lambda lab: (ranks[lab], *table.loc[lab].tolist(), lab))
    return order[0]


def paired_rows(cells: list[CellUnits], n_boot: int = N_BOOT, seed: int = 0
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The paired table of an experiment's cells, and its notes (best static per budget, refused pairs)."""
    by_label: dict[str, list[CellUnits]] = defaultdict(list)
    for c in cells:
        by_label[c.strategy].append(c)
    rnd = _random_label(cells)
    rows: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    best_by_group: dict[str, str | None] = {}
    groups = sorted({(c.budget, c.weights) for c in cells})
    parsed: dict[tuple[str, str, str], Units] = {}

    def units_of(c: CellUnits, key: tuple[str, str]) -> Units:
        k = (c.cell_id, *key)
        if k not in parsed:
            parsed[k] = Units.from_dict(c.units[key])
        return parsed[k]

    for budget, weights in groups:
        best = best_static(by_label, budget, weights)
        best_by_group[f"{budget:g}/{weights}"] = best
        labels = sorted({c.strategy for c in cells if c.budget == budget and c.weights == weights})
        for label in labels:
            mine = {c.seed: c for c in by_label[label] if c.budget == budget and c.weights == weights}
            for role, base in (("random", rnd), ("best_static", best)):
                # random against the best static is that comparison's negation: not listed twice
                if base is None or base == label or (role == "best_static" and label == rnd):
                    continue
                theirs = _baseline_cells(by_label, base, budget, weights)
                seeds = sorted(set(mine) & set(theirs))
                keys = sorted({k for s in seeds for k in mine[s].units})
                for key in keys:
                    use = [s for s in seeds if key in mine[s].units and key in theirs[s].units]
                    if not use:
                        continue
                    try:
                        pd_ = paired_difference(
                            [(units_of(mine[s], key), units_of(theirs[s], key)) for s in use],
                            n_boot=n_boot, seed=seed,
                        )
                    except PairingError as exc:
                        refused.append({"strategy": label, "baseline": base, "budget": budget,
                                        "weights": weights, "suite": key[0], "metric": key[1],
                                        "reason": str(exc)})
                        continue
                    lib = lower_is_better(key[1])
                    better = None if lib is None or pd_.diff == 0 else bool((pd_.diff < 0) == lib)
                    rows.append({
                        "strategy": label, "baseline": base, "baseline_role": role, "budget": budget,
                        "weights": weights, "suite": key[0], "metric": key[1], "value": pd_.value,
                        "baseline_value": pd_.baseline_value, "diff": pd_.diff, "low": pd_.low,
                        "high": pd_.high, "n_units": pd_.n_units, "n_seeds": pd_.n_seeds,
                        "lower_is_better": lib, "significant": pd_.significant, "better": better,
                    })
    for r in refused:
        log.warning("paired: %s vs %s at budget %g, %s/%s not paired: %s", r["strategy"], r["baseline"],
                    r["budget"], r["suite"], r["metric"], r["reason"])
    df = pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    notes = {"random": rnd, "best_static": best_by_group, "refused": refused, "n_boot": n_boot}
    return df, notes


def write_paired(runs: str | Path, cells: list[CellUnits] | None = None, n_boot: int = N_BOOT
                 ) -> pd.DataFrame:
    """Compute the paired table of RUNS (or of ``cells``) and write RUNS/paired.parquet and paired.json."""
    root = Path(runs)
    cells = load_cells(root) if cells is None else cells
    df, notes = paired_rows(cells, n_boot=n_boot)
    table = pa.Table.from_pandas(df.astype(object).where(df.notna(), None), schema=PAIRED_SCHEMA,
                                 preserve_index=False)
    with atomic_path(root / "paired.parquet") as tmp:
        pq.write_table(table, tmp)
    write_json_atomic(
        root / "paired.json",
        {"format_version": PAIRED_FORMAT_VERSION, "columns": list(PAIRED_COLUMNS), **notes,
         "rows": json.loads(df.to_json(orient="records"))},
    )
    log.info("paired: %d comparisons, %d refused", len(df), len(notes["refused"]))
    return df


def read_paired(runs: str | Path) -> pd.DataFrame:
    """RUNS/paired.parquet; an empty table with the columns when the experiment has none."""
    path = Path(runs) / "paired.parquet"
    if not path.exists():
        return pd.DataFrame(columns=list(PAIRED_COLUMNS))
    table = pq.read_table(path)
    missing = [c for c in PAIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: not a dynacure paired table (missing columns {missing})")
    return table.to_pandas()
