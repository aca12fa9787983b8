"""Everything a report reads from a RUNS folder, loaded once: the results table, the paired differences,
the experiment record, the per-document table (source, gold labels, toxicity level), each cell's manifest
and training log; plus the aggregation of a metric over seeds with an interval."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynacure.experiments.paired import (
    PAIRED_COLUMNS,
    SAFETY_METRICS,
    UTILITY_METRICS,
    load_cells,
    paired_rows,
    read_paired,
)
from dynacure.experiments.results import read_cell_files, read_results

# Which metric of which suite is "safety" and which is "utility" on the Pareto plot, in the results table
# and in the paired comparisons' choice of the best static baseline: the first present wins (defined once,
# in experiments.paired: domain_perplexity's macro mean leads the utility list).
__all__ = ["SAFETY_METRICS", "UTILITY_METRICS", "RunData", "load_run", "pick_metric", "combine_seeds",
           "aggregate", "pareto_mask", "keep_shares", "is_constant", "skipped_headlines"]


@dataclass
class RunData:
    root: Path
    results: pd.DataFrame
    experiment: dict[str, Any] = field(default_factory=dict)
    documents: pd.DataFrame | None = None  # id, source, n_tokens, toxicity_level, ...
    manifests: dict[str, pd.DataFrame] = field(default_factory=dict)
    train_logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> cell dict
    # strategy vs random / best static baseline (experiments.paired); empty when no metric has Units
    paired: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(PAIRED_COLUMNS)))
    paired_notes: dict[str, Any] = field(default_factory=dict)  # best static per budget, refused pairings

    @property
    def name(self) -> str:
        return str(self.experiment.get("config", {}).get("name", self.root.name))


def load_run(runs: str | Path) -> RunData:
    root = Path(runs)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a RUNS folder")
    results = read_results(root)
    exp_path = root / "experiment.json"
    experiment = json.loads(exp_path.read_text()) if exp_path.exists() else {}
    files = read_cell_files(root, results)
    data = RunData(root=root, results=results, experiment=experiment, documents=files.documents,
                   manifests=files.manifests, train_logs=files.train_logs, cells=files.cells)
    if (root / "paired.parquet").exists():
        data.paired = read_paired(root)
        notes_path = root / "paired.json"
        if notes_path.exists():
            notes = json.loads(notes_path.read_text())
            data.paired_notes = {k: notes.get(k) for k in ("random", "best_static", "refused", "n_boot")}
    else:  # RUNS collected before the paired table existed: compute it here (nothing is written)
        data.paired, data.paired_notes = paired_rows(load_cells(root))
    return data


def is_constant(results: pd.DataFrame, key: tuple[str, str]) -> bool:
    """Every row of metric ``key`` has the same value (e.g. toxicity probability 0 [0, 0] for every
    strategy): such a metric cannot tell strategies apart."""
    sub = results[(results["suite"] == key[0]) & (results["metric"] == key[1])]
    vals = sub["value"].astype(float).to_numpy()
    vals = vals[np.isfinite(vals)]
    return len(vals) > 0 and bool(np.ptp(vals) == 0)


def pick_metric(results: pd.DataFrame, candidates: tuple[tuple[str, str], ...],
                informative: bool = True) -> tuple[str, str] | None:
    """The first of ``candidates`` present in ``results``; with ``informative``, the first present whose
    value is not the same for every row when there is one (a headline equal for all ranks nothing: the
    ci preset's toxicity probability is 0 for every strategy, its expected maximum toxicity is not)."""
    have = set(zip(results["suite"], results["metric"], strict=True)) if len(results) else set()
    present = [c for c in candidates if c in have]
    if not present:
        return None
    if informative:
        for cand in present:
            if not is_constant(results, cand):
                return cand
    return present[0]


def skipped_headlines(results: pd.DataFrame, candidates: tuple[tuple[str, str], ...]
                      ) -> list[tuple[str, str]]:
    """The candidates present before the one ``pick_metric`` chose: each the same for every row."""
    chosen = pick_metric(results, candidates)
    have = set(zip(results["suite"], results["metric"], strict=True)) if len(results) else set()
    out = []
    for cand in candidates:
        if cand == chosen:
            break
        if cand in have:
            out.append(cand)
    return out


def combine_seeds(values: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[float, float, float]:
    """Mean over seeds with a 95% interval from the within-seed interval widths and the between-seed spread.

    One seed: its own (bootstrap) interval. Several: mean +/- 1.96 * sqrt(mean(se_i^2)/k + var_between/k),
    where se_i = (high_i - low_i) / 3.92 (normal approximation of each seed's interval).
    """
    v = np.asarray(values, dtype=float)
    lo = np.asarray(lows, dtype=float)
    hi = np.asarray(highs, dtype=float)
    ok = np.isfinite(v)
    v, lo, hi = v[ok], lo[ok], hi[ok]
    k = len(v)
    if k == 0:
        return math.nan, math.nan, math.nan
    if k == 1:
        return float(v[0]), float(lo[0]), float(hi[0])
    se = np.where(np.isfinite(hi - lo), (hi - lo) / 3.92, 0.0)
    var = float(np.mean(se**2)) / k + float(np.var(v, ddof=1)) / k
    m = float(np.mean(v))
    half = 1.96 * math.sqrt(var)
    # Never past the hull of the seeds' own intervals: with few seeds the normal approximation can leave a
    # metric's range (a toxicity probability of 0, 0, 0.01 gave [-0.005, 0.012]).
    return m, max(m - half, float(lo.min())), min(m + half, float(hi.max()))


def aggregate(results: pd.DataFrame, suite: str, metric: str,
              by: tuple[str, ...] = ("strategy", "budget", "weights")) -> pd.DataFrame:
    """One row per group of ``by`` with value/low/high combined over seeds and the number of seeds."""
    sub = results[(results["suite"] == suite) & (results["metric"] == metric)]
    rows = []
    for key, g in sub.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        value, low, high = combine_seeds(g["value"].to_numpy(), g["low"].to_numpy(), g["high"].to_numpy())
        rows.append({**dict(zip(by, key, strict=True)), "value": value, "low": low, "high": high,
                     "seeds": int(g["seed"].nunique()), "n": int(g["n"].max())})
    return pd.DataFrame(rows, columns=[*by, "value", "low", "high", "seeds", "n"])


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points not dominated when lower x and lower y are both better."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.ones(len(x), dtype=bool)
    for i in range(len(x)):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            keep[i] = False
            continue
        dominated = (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        keep[i] = not dominated.any()
    return keep


def keep_shares(data: RunData, column: str, budget: float | None = None) -> pd.DataFrame:
    """Share of documents kept per strategy and value of ``column`` of the documents table (mean over
    the cells of that strategy at ``budget``), from the manifests joined with the documents table."""
    if data.documents is None or column not in data.documents.columns or not data.manifests:
        return pd.DataFrame(columns=["strategy", column, "kept_share", "docs"])
    docs = data.documents[["id", column]]
    rows = []
    for cid, man in data.manifests.items():
        cell = data.cells.get(cid, {})
        strat = cell.get("strategy")
        if strat is None or (budget is not None and not math.isclose(float(cell.get("budget", -1)), budget)):
            continue
        joined = man.merge(docs, on="id", how="left")
        joined["kept"] = joined["decision"] == "keep"
        for level, g in joined.groupby(column, dropna=False):
            rows.append({"strategy": strat, "cell_id": cid, column: str(level),
                         "kept": float(g["kept"].mean()), "docs": len(g)})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["strategy", column, "kept_share", "docs"])
    out = df.groupby(["strategy", column], sort=True).agg(kept_share=("kept", "mean"), docs=("docs", "max"))
    return out.reset_index()
