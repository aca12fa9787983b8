"""The summary of the ``feedback`` preset (issue 16, item 3): does the closed loop, with the cheap scores of
the whole corpus and a few calls of an expensive scorer, get what RAFT on the expensive scores of *every*
document gets?

Roles, by strategy label (the preset's):

- ``floor``: ``raft_cheap``, RAFT on the cheap scores (no expensive call);
- ``ceiling``: ``raft_expensive``, RAFT on the expensive scores of every document (one call per document);
- ``loop``: ``ppo_feedback``, the loop policy on the cheap scores plus its counted expensive calls
  (loop/feedback.py);
- ``off``: ``ppo_feedback_off``, the same loop with no call (the ablation; it should sit at the floor).

For every headline metric, ``gap_closed`` = (floor - loop) / (floor - ceiling) with a paired bootstrap
interval over the same evaluation units (``paired.gap_closed``), and the gap itself with its interval: a
ratio is only read where the gap is real, i.e. where the ceiling is better than the floor with an interval
that excludes 0 (``defined``; every metric here is lower-is-better). Where it is not, the headline
``gap_closed`` is null and ``gap_closed_reason`` says why: there is no gap for the loop to close. The
data-level figure beside it is the gold-toxic share of the kept documents (``composition.cell_composition``),
per seed, with the same ratio where the ceiling keeps fewer toxic documents than the floor (else null).
``expensive_call_share`` = the loop's calls / the ceiling's (the documents of the corpus); FLOPs are the
expensive model's forward FLOPs, the ceiling's
taken as its per-document FLOPs in the loop's calls times the corpus size (the same model on the same
kind of text).

``write_feedback_summary(RUNS)`` writes RUNS/feedback.json; ``dynacure experiment`` calls it when the
experiment has the four labels.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from dynacure.io.atomic import write_json_atomic

ROLES = {"floor": "raft_cheap", "ceiling": "raft_expensive", "loop": "ppo_feedback",
         "off": "ppo_feedback_off"}
# toxicity_probability first: the comparison's headline safety metric (experiments.paired.SAFETY_METRICS),
# chosen before the run; the non-saturating ones and the utility axis beside it
METRICS = (
    ("toxicity", "toxicity_probability"),
    ("toxicity", "toxic_continuation_share"),
    ("toxicity", "mean_continuation_toxicity"),
    ("domain_perplexity", "word_perplexity_macro"),
    ("perplexity", "wikitext2_word_ppl"),
)
HEADLINE = ("toxicity", "toxicity_probability")
SUMMARY_FILE = "feedback.json"


def has_feedback_roles(labels: set[str]) -> bool:
    return set(ROLES.values()) <= set(labels)


def _expensive_of(runs: Path, cell_id: str) -> dict[str, Any]:
    path = runs / "cells" / cell_id / "train_log.json"
    if not path.exists():
        return {}
    policy = json.loads(path.read_text()).get("policy") or {}
    return policy.get("expensive") or {}


def _kept_toxic_share(runs: Path) -> dict[tuple[str, int], float]:
    from dynacure.experiments.composition import ALL, cell_composition
    from dynacure.experiments.results import read_cell_files, read_results

    data = read_cell_files(runs, read_results(runs))
    out: dict[tuple[str, int], float] = {}
    if data.documents is None:
        return out
    for cid, man in data.manifests.items():
        cell = data.cells.get(cid, {})
        comp = cell_composition(man, data.documents)
        row = comp[comp["source"] == ALL]
        if len(row):
            key = (str(cell.get("strategy")), int(cell.get("seed", -1)))
            out[key] = float(row["kept_toxic_share"].iloc[0])
    return out


def feedback_summary(runs: str | Path) -> dict[str, Any]:
    """The figures of the module docstring from a finished ``feedback`` RUNS folder."""
    from dynacure.experiments.paired import PairingError, gap_closed, load_cells
    from dynacure.stats import Units

    root = Path(runs)
    cells = load_cells(root)
    by: dict[str, dict[int, Any]] = defaultdict(dict)
    for c in cells:
        by[c.strategy][c.seed] = c
    missing = [lab for lab in ROLES.values() if lab not in by]
    if missing:
        raise ValueError(f"{root}: no finished cells of {missing}; the feedback summary needs "
                         f"{list(ROLES.values())}")
    floor, ceiling = by[ROLES["floor"]], by[ROLES["ceiling"]]
    out: dict[str, Any] = {"format_version": 1, "roles": ROLES, "headline_metric": "/".join(HEADLINE),
                           "gap_closed_by_metric": {}, "values": {}}
    for role in ("loop", "off"):
        mine = by[ROLES[role]]
        seeds = sorted(set(floor) & set(ceiling) & set(mine))
        per_metric: dict[str, Any] = {}
        for key in METRICS:
            use = [s for s in seeds if all(key in d[s].units for d in (floor, ceiling, mine))]
            if not use:
                continue
            try:
                g = gap_closed(
                    [tuple(Units.from_dict(d[s].units[key]) for d in (floor, ceiling, mine)) for s in use])
                # lower is better for every metric: the ceiling must beat the floor beyond its interval
                g["defined"] = bool(g["gap_low"] > 0)
                per_metric["/".join(key)] = g
            except PairingError as exc:
                per_metric["/".join(key)] = {"refused": str(exc)}
        out["gap_closed_by_metric"][role] = per_metric
    for label, seeds in sorted(by.items()):
        out["values"][label] = {"/".join(k): _mean([seeds[s].values.get(k, math.nan) for s in seeds])
                                for k in METRICS}
    shares = _kept_toxic_share(root)
    data_level: dict[str, Any] = {lab: {str(s): shares.get((lab, s)) for s in sorted(seeds)}
                                  for lab, seeds in by.items()}
    out["kept_gold_toxic_share"] = data_level
    gaps: list[float | None] = []
    for s in sorted(set(floor) & set(ceiling) & set(by[ROLES["loop"]])):
        f, c, m = (shares.get((ROLES[r], s)) for r in ("floor", "ceiling", "loop"))
        # only where the ceiling keeps fewer toxic documents than the floor: else there is no gap
        gaps.append((f - m) / (f - c) if None not in (f, c, m) and f > c else None)  # type: ignore[operator]
    out["data_gap_closed_per_seed"] = gaps
    # each loop cell's train_log.json read once
    stats = {lab: [_expensive_of(root, seeds[s].cell_id) for s in sorted(seeds)]
             for lab, seeds in by.items() if lab in (ROLES["loop"], ROLES["off"])}
    calls = {lab: [float(e.get("calls", math.nan)) for e in es] for lab, es in stats.items()}
    flops = [float(e.get("flops", math.nan)) for e in stats[ROLES["loop"]]]
    n_docs = [float(e.get("n_documents", math.nan)) for e in stats[ROLES["loop"]]]
    loop_calls, corpus = _mean(calls.get(ROLES["loop"], [])), _mean(n_docs)
    per_call = _mean(flops) / loop_calls if loop_calls else math.nan
    out["expensive_calls"] = {ROLES["floor"]: 0.0, ROLES["ceiling"]: corpus,
                              **{k: _mean(v) for k, v in calls.items()}}
    out["expensive_flops"] = {ROLES["floor"]: 0.0, ROLES["ceiling"]: per_call * corpus,
                              ROLES["loop"]: _mean(flops), ROLES["off"]: 0.0}
    head = out["gap_closed_by_metric"]["loop"].get("/".join(HEADLINE), {})
    if head.get("defined"):
        out["gap_closed"] = head["value"]
        out["gap_closed_interval"] = [head["low"], head["high"]]
    else:
        out["gap_closed"], out["gap_closed_interval"] = None, None
        gap = head.get("gap", math.nan)
        lo, hi = head.get("gap_low", math.nan), head.get("gap_high", math.nan)
        out["gap_closed_reason"] = (
            f"no gap to close on {'/'.join(HEADLINE)}: floor - ceiling = {gap:+.4g} [{lo:+.4g}, {hi:+.4g}]; "
            "the ceiling is not better than the floor beyond its interval"
            if head else "headline metric not measured")
    out["expensive_call_share"] = loop_calls / corpus if corpus else math.nan
    out["targets"] = {"gap_closed": 0.75, "expensive_call_share": 0.05}
    return out


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(sum(vals) / len(vals)) if vals else math.nan


def write_feedback_summary(runs: str | Path) -> dict[str, Any]:
    summary = feedback_summary(runs)
    write_json_atomic(Path(runs) / SUMMARY_FILE, summary)
    return summary
