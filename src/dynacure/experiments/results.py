"""The one results table of an experiment: a row per cell x metric (value, low, high, n) with the cell's
config, seed, versions and efficiency columns, written as RUNS/results.parquet and RUNS/results.json.

Beside it, the paired table (``experiments.paired``): every strategy against random and the best static
baseline as paired bootstrap intervals over the same units, RUNS/paired.parquet and RUNS/paired.json,
written by the same ``collect_results``; the returned table carries its RUNS folder as ``df.attrs["runs"]``
(a string, not the table itself: pandas copies and compares attrs on every operation) so that a caller
such as the CLI's summary reads the paired table with ``paired.read_paired``."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.experiments.paired import cell_units, write_paired
from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned

log = logging.getLogger(__name__)

RESULTS_FORMAT_VERSION = 1

# Efficiency figures every cell records (seconds, shares, FLOPs); NaN where not estimable.
EFFICIENCY_COLUMNS = (
    "time_scoring_s",  # scoring the corpus: done once per experiment, shared by every cell
    "time_selection_s",  # policy learning + selection of this cell
    "time_policy_learning_s",  # of which learning the policy (loop strategies; 0 for rules)
    "time_policy_apply_s",  # of which applying it to the pool at the budget
    "time_training_s",
    "time_evaluation_s",
    "share_selected_tokens",  # share of the pool's whitespace tokens the strategy kept
    "share_selected_docs",
    "n_selected_docs",
    "train_tokens",  # learner tokens actually trained on
    "learner_params",
    "train_flops",  # 6 * params * train_tokens
    "curation_flops",  # model FLOPs spent deciding (policy learning, model-based scoring); NaN if unknown
    "expensive_calls",  # documents a loop's expensive scorer scored (loop/feedback.py); 0: none queried
    "expensive_flops",  # their forward FLOPs
)

SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("cell_id", pa.string()),
        ("strategy", pa.string()),
        ("strategy_name", pa.string()),
        ("seed", pa.int64()),
        ("budget", pa.float64()),
        ("weights", pa.string()),
        ("suite", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("low", pa.float64()),
        ("high", pa.float64()),
        ("n", pa.int64()),
    ]
    + [(c, pa.float64()) for c in EFFICIENCY_COLUMNS]
    + [
        ("params", pa.string()),  # JSON of the strategy's params
        ("reward_weights", pa.string()),  # JSON {safety, alignment, utility}
        ("config", pa.string()),  # JSON of the whole experiment config
        ("versions", pa.string()),  # JSON of package versions
    ]
)


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def cell_rows(cell_dir: Path, experiment: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one finished cell (its metrics.json and run.json)."""
    metrics = read_versioned(cell_dir / "metrics.json", RESULTS_FORMAT_VERSION,
                             hint="rerun the cell (delete its DONE file)")
    run = json.loads((cell_dir / "run.json").read_text())
    cell = metrics["cell"]
    eff = metrics.get("efficiency", {})
    base = {
        "experiment": experiment,
        "cell_id": cell_dir.name,
        "strategy": cell["strategy"],
        "strategy_name": cell["strategy_name"],
        "seed": int(cell["seed"]),
        "budget": float(cell["budget"]),
        "weights": cell["weights_name"],
        **{c: _f(eff.get(c)) for c in EFFICIENCY_COLUMNS},
        "params": json.dumps(cell.get("params", {}), sort_keys=True, default=str),
        "reward_weights": json.dumps(cell.get("weights", {}), sort_keys=True),
        "config": json.dumps(config, sort_keys=True, default=str),
        "versions": json.dumps(run.get("versions", {}), sort_keys=True),
    }
    rows = []
    for suite, res in sorted(metrics.get("suites", {}).items()):
        if res.get("skipped"):
            continue
        for name, est in sorted(res.get("metrics", {}).items()):
            rows.append(
                {
                    **base,
                    "suite": suite,
                    "metric": name,
                    "value": _f(est.get("value")),
                    "low": _f(est.get("low")),
                    "high": _f(est.get("high")),
                    "n": int(est.get("n", 0)),
                }
            )
    return rows


def collect_results(runs: str | Path) -> pd.DataFrame:
    """Gather every finished cell (those with DONE) into one table and write results.parquet/json, and the
    paired differences into paired.parquet/json (``df.attrs["runs"]`` names the folder)."""
    root = Path(runs)
    exp_file = root / "experiment.json"
    exp = json.loads(exp_file.read_text()) if exp_file.exists() else {}
    name = exp.get("config", {}).get("name", root.name)
    config = exp.get("config", {})
    rows: list[dict[str, Any]] = []
    skipped: dict[str, Any] = {}
    units = []
    cells_root = root / "cells"
    for d in sorted(cells_root.iterdir()) if cells_root.exists() else []:
        if not (d / "DONE").exists():
            continue
        rows.extend(cell_rows(d, name, config))
        m = json.loads((d / "metrics.json").read_text())
        skipped.update(
            {f"{d.name}/{s}": r["skipped"] for s, r in m.get("suites", {}).items() if r.get("skipped")}
        )
        units.append(cell_units(d.name, m))
    df = pd.DataFrame(rows, columns=SCHEMA.names)
    table = pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)
    with atomic_path(root / "results.parquet") as tmp:
        pq.write_table(table, tmp)
    write_json_atomic(
        root / "results.json",
        {
            "format_version": RESULTS_FORMAT_VERSION,
            "experiment": name,
            "columns": SCHEMA.names,
            "skipped_suites": skipped,
            "rows": json.loads(df.drop(columns=["config"]).to_json(orient="records")),
        },
    )
    log.info("results: %d rows from %d cells", len(df), df["cell_id"].nunique() if len(df) else 0)
    write_paired(root, units)
    from dynacure.experiments.feedback import has_feedback_roles, write_feedback_summary

    if has_feedback_roles({u.strategy for u in units}):
        write_feedback_summary(root)  # the feedback preset's gap closed and expensive-call share
    from dynacure.experiments.labels import has_labels_roles, write_labels_summary

    if has_labels_roles({u.strategy for u in units}):
        write_labels_summary(root)  # the labels preset's gap closed at its share of label calls
    df.attrs["runs"] = str(root)
    return df


def read_results(runs: str | Path) -> pd.DataFrame:
    path = Path(runs) / "results.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results table (run `dynacure experiment` first)")
    table = pq.read_table(path)
    missing = [
        c
        for c in ("cell_id", "strategy", "metric", "value", "low", "high", "n")
        if c not in table.column_names
    ]
    if missing:
        raise ValueError(f"{path}: not a dynacure results table (missing columns {missing})")
    df = table.to_pandas()
    df.attrs["runs"] = str(Path(runs))
    return df


@dataclass
class CellFiles:
    """What the finished cells of a RUNS folder left, per cell id (read by the composition and the report)."""

    documents: pd.DataFrame | None = None  # RUNS/documents.parquet: id, source, n_tokens, gold labels
    manifests: dict[str, pd.DataFrame] = field(default_factory=dict)  # id, decision
    train_logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> cell dict


def read_cell_files(root: Path, results: pd.DataFrame) -> CellFiles:
    """The documents table and, for every cell of ``results``, its manifest, training log and cell dict."""
    docs_path = root / "documents.parquet"
    out = CellFiles(documents=pd.read_parquet(docs_path) if docs_path.exists() else None)
    for cid in sorted(results["cell_id"].unique()) if len(results) else []:
        d = root / "cells" / cid
        if (d / "manifest.parquet").exists():
            out.manifests[cid] = pd.read_parquet(d / "manifest.parquet", columns=["id", "decision"])
        if (d / "train_log.json").exists():
            out.train_logs[cid] = json.loads((d / "train_log.json").read_text())
        if (d / "metrics.json").exists():
            out.cells[cid] = json.loads((d / "metrics.json").read_text()).get("cell", {})
    return out
