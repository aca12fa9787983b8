"""Where the loop's kept toxic documents come from, per cell (the diagnosis in README.md).

Replays a ``raft_labels`` cell's proposals and labels from its ``labels/`` folder (the same surrogate fits as
in the run, checked against the cell's manifest), then splits the change against the floor (RAFT on the
cheap scores) into the labelled documents and the unlabelled ones the surrogate's estimate moved across the
budget threshold: those it pushed out and those that came in at the margin in their place.

    python docs/results/feedback/labels_only/diagnose.py runs/labels_only labels_loop 0.5 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from dynacure.loop.labels import LabelledRaftSelector
from dynacure.selectors.base import SelectionContext
from dynacure.selectors.budget import top_to_budget
from dynacure.selectors.common import token_counts


def _cell(runs: Path, label: str, budget: float, seed: int) -> Path:
    found = sorted((runs / "cells").glob(f"{label}__b{budget}__*__s{seed}__*"))
    if len(found) != 1:
        raise SystemExit(f"{runs}/cells: {len(found)} cells of {label} at budget {budget}, seed {seed}")
    return found[0]


def replay(runs: Path, table: pd.DataFrame, label: str, budget: float, seed: int) -> dict[str, object]:
    """The decomposition of one cell (counts of documents, toxic by the gold label)."""
    cfg = json.loads((runs / "experiment.json").read_text())
    cfg = cfg.get("config", cfg)
    params = next(s["params"] for s in cfg["strategies"] if (s.get("label") or s["name"]) == label)
    sel = LabelledRaftSelector(**{k: v for k, v in params.items() if k != "oracle"})
    aq = sel._queries(table, SelectionContext(budget=budget, seed=seed))  # the run's own inputs
    cell = _cell(runs, label, budget, seed)
    lines = (cell / "labels" / "labels.jsonl").read_text().splitlines()
    labels = {r["id"]: r["label"] for r in map(json.loads, lines)}
    row = {d: i for i, d in enumerate(table["id"].astype(str))}
    for prop in sorted((cell / "labels").glob("proposal-*.jsonl")):
        ids = [json.loads(x)["id"] for x in prop.read_text().splitlines() if x.strip()]
        aq.n_proposals += 1
        aq.tell(np.array([row[i] for i in ids]), np.array([labels[i] for i in ids], dtype=float))
    n_tok = token_counts(table)
    floor, kept = top_to_budget(aq.base, n_tok, budget).keep, top_to_budget(aq.score(), n_tok, budget).keep
    man = pd.read_parquet(cell / "manifest.parquet", columns=["id", "decision"]).set_index("id")["decision"]
    if not (man.reindex(table["id"].astype(str)).eq("keep").to_numpy() == kept).all():
        raise SystemExit(f"{cell}: the replay does not give the cell's selection")
    docs = pd.read_parquet(runs / "documents.parquet", columns=["id", "meta_toxic"]).set_index("id")
    tox = docs["meta_toxic"].reindex(table["id"].astype(str)).astype(bool).to_numpy()
    q = aq.queried

    def part(m: np.ndarray) -> dict[str, float]:
        return {"n": int(m.sum()), "toxic": int(tox[m].sum()), "cheap": round(float(aq.cheap[m].mean()), 3),
                "estimate": round(float(aq.estimate[m].mean()), 3)}

    return {"seed": seed, "floor": part(floor), "kept": part(kept),
            "labelled_kept": part(q & kept), "labelled_toxic": int(tox[q].sum()),
            "pushed_out_unlabelled": part(floor & ~kept & ~q), "came_in_unlabelled": part(~floor & kept & ~q)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("label")
    ap.add_argument("budget", type=float)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = ap.parse_args()
    table = pd.read_parquet(a.runs / "table.parquet")
    for seed in a.seeds:
        print(json.dumps(replay(a.runs, table, a.label, a.budget, seed)))


if __name__ == "__main__":
    main()
