"""The ``labels`` preset (issue 26): active labelling with the pool's gold labels as the expensive oracle.

``gold_label_oracle(documents.parquet)`` answers a proposal file of ``raft_labels`` (``loop/labels.py``)
with the gold labels (``meta["toxic"]``) of the documents named, appended to the labels file a person would
write: the simulated experiment goes through the person's path, files included. A proposed document
without a gold label is an error (the preset restricts proposals to the labelled sources).

``labels_summary(RUNS)`` (written as RUNS/labels.json by ``dynacure experiment`` when the roles are present)
holds, by strategy label:

- ``floor`` ``raft_cheap`` (RAFT on the cheap scores, 0 calls), ``ceiling`` ``labels_all`` (the gold label
  on every labelled document, calls = the labelled documents), ``loop`` ``labels_loop``, and the baselines
  ``uncertainty`` ``labels_uncertainty`` and ``random`` ``labels_random`` (the same number of calls);
- the primary measure, exact: the kept gold-toxic share of each selection (toxic kept / kept documents
  with a gold label, as ``composition.cell_composition``), per seed;
- ``gap_closed = (floor - x) / (floor - ceiling)`` for the loop and each baseline, per seed and overall with
  a paired bootstrap interval that resamples seeds and, within each, the labelled documents (the same
  draws for every strategy);
- the loop against uncertainty sampling at equal calls: the difference of kept gold-toxic shares with the
  same paired interval;
- ``expensive_call_share`` = calls / the ceiling's calls, per seed;
- secondary, model-level measures (toxic continuation share, judge score, macro domain perplexity) only
  where the cells trained a model, else ``"not run"`` with the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynacure.io.atomic import write_json_atomic

ROLES = {"floor": "raft_cheap", "ceiling": "labels_all", "loop": "labels_loop",
         "uncertainty": "labels_uncertainty", "random": "labels_random"}
COMPARED = ("loop", "uncertainty", "random")
SUMMARY_FILE = "labels.json"
N_BOOT = 2000
TARGETS = {"gap_closed": 0.75, "expensive_call_share": 0.05}
SECONDARY = (("toxicity", "toxic_continuation_share"), ("toxicity", "mean_continuation_toxicity"),
             ("domain_perplexity", "word_perplexity_macro"))


def gold_label_oracle(documents: str | Path, column: str = "meta_toxic") -> Callable[[Path, Path], None]:
    """The oracle of ``raft_labels`` ``oracle="gold"``: answers a proposal file with the gold labels."""
    docs = pd.read_parquet(documents, columns=["id", column])
    gold = dict(zip(docs["id"].astype(str), docs[column], strict=True))

    def answer(proposal: Path, labels: Path) -> None:
        rows = []
        with Path(proposal).open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                doc_id = str(json.loads(line)["id"])
                value = gold.get(doc_id)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    raise ValueError(f"{proposal} line {line_no}: {doc_id!r} has no gold label ({column}); "
                                     "restrict the proposals to labelled sources (label_sources)")
                rows.append(json.dumps({"id": doc_id, "label": int(bool(value))}))
        old = labels.read_text(encoding="utf-8") if labels.exists() else ""
        from dynacure.io.atomic import write_text_atomic

        write_text_atomic(labels, old + "".join(r + "\n" for r in rows))

    return answer


def has_labels_roles(labels: set[str]) -> bool:
    return set(ROLES.values()) <= set(labels)


def _cells(runs: Path) -> pd.DataFrame:
    """One row per finished cell: label, seed, cell id."""
    from dynacure.experiments.paired import load_cells

    rows = [{"cell_id": c.cell_id, "strategy": c.strategy, "seed": c.seed} for c in load_cells(runs)]
    return pd.DataFrame(rows, columns=["cell_id", "strategy", "seed"])


def _keep_matrix(runs: Path, cells: dict[int, str], ids: pd.Index) -> dict[int, np.ndarray]:
    out = {}
    for seed, cid in cells.items():
        man = pd.read_parquet(runs / "cells" / cid / "manifest.parquet", columns=["id", "decision"])
        keep = man.set_index("id")["decision"].reindex(ids).eq("keep").to_numpy()
        out[seed] = keep
    return out


def _share(keep: np.ndarray, toxic: np.ndarray, idx: np.ndarray | None = None) -> float:
    k, t = (keep, toxic) if idx is None else (keep[idx], toxic[idx])
    n = int(k.sum())
    return float((k & t).sum() / n) if n else math.nan


def _calls(runs: Path, cid: str) -> float:
    path = runs / "cells" / cid / "train_log.json"
    if not path.exists():
        return 0.0
    exp = (json.loads(path.read_text()).get("policy") or {}).get("expensive") or {}
    return float(exp.get("calls", 0.0))


def _interval(values: np.ndarray) -> list[float]:
    ok = values[np.isfinite(values)]
    return [float(np.quantile(ok, 0.025)), float(np.quantile(ok, 0.975))] if len(ok) else [math.nan] * 2


def _variants(labels: set[str]) -> dict[str, str]:
    """Role key -> label: the preset's roles, plus ``<role>_<suffix>`` for the compared strategies run at
    another share of calls (``labels_loop_1pct`` ...) when all three of a suffix are present."""
    out = dict(ROLES)
    prefix = ROLES["loop"] + "_"
    for lab in sorted(labels):
        suffix = lab[len(prefix):] if lab.startswith(prefix) else ""
        if suffix and all(f"{ROLES[r]}_{suffix}" in labels for r in COMPARED):
            out.update({f"{r}_{suffix}": f"{ROLES[r]}_{suffix}" for r in COMPARED})
    return out


def _bootstrap(keep: dict[str, dict[int, np.ndarray]], toxic: np.ndarray, seeds: list[int], n_boot: int,
               seed: int) -> dict[str, np.ndarray]:
    """Kept gold-toxic share per role and resample: seeds with replacement, then the labelled documents
    with replacement within each, the same draws for every role (paired)."""
    rng = np.random.default_rng(seed)
    boot = {r: np.zeros(n_boot) for r in keep}
    for b in range(n_boot):
        acc: dict[str, list[float]] = {r: [] for r in keep}
        for s in rng.choice(seeds, size=len(seeds), replace=True):
            idx = rng.integers(0, len(toxic), size=len(toxic))
            for r in keep:
                acc[r].append(_share(keep[r][int(s)], toxic, idx))
        for r in keep:
            boot[r][b] = np.nanmean(acc[r])
    return boot


def _role_block(role: str, label: str, share: dict[str, dict[int, float]], calls: dict[str, dict[int, float]],
                boot: dict[str, np.ndarray], seeds: list[int]) -> dict[str, Any]:
    """gap_closed (point, paired interval, per seed) and the share of the ceiling's calls of one role."""
    mean = {r: float(np.mean([share[r][s] for s in seeds])) for r in ("floor", "ceiling", role)}
    per_seed = {str(s): _ratio(share["floor"][s] - share[role][s], share["floor"][s] - share["ceiling"][s])
                for s in seeds}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_b = (boot["floor"] - boot[role]) / (boot["floor"] - boot["ceiling"])
    call_share = {str(s): calls[role][s] / calls["ceiling"][s] if calls["ceiling"][s] else math.nan
                  for s in seeds}
    return {"label": label, "kept_gold_toxic_share": mean[role],
            "gap_closed": _ratio(mean["floor"] - mean[role], mean["floor"] - mean["ceiling"]),
            "gap_closed_interval": _interval(ratio_b), "gap_closed_per_seed": per_seed,
            "expensive_call_share": float(np.mean(list(call_share.values()))),
            "expensive_call_share_per_seed": call_share}


def _versus(loop: str, other: str, share: dict[str, dict[int, float]], boot: dict[str, np.ndarray],
            seeds: list[int]) -> dict[str, Any]:
    diff = float(np.mean([share[other][s] - share[loop][s] for s in seeds]))
    return {"difference": diff, "interval": _interval(boot[other] - boot[loop]),
            "what": f"{other}'s kept gold-toxic share minus the {loop}'s (> 0: the loop keeps less toxic "
                    "text), paired over seeds and documents"}


def labels_summary(runs: str | Path, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """The figures of the module docstring from a finished RUNS folder of the ``labels`` preset."""
    root = Path(runs)
    docs = pd.read_parquet(root / "documents.parquet", columns=["id", "meta_toxic"])
    labelled = docs[docs["meta_toxic"].notna()]
    ids = pd.Index(labelled["id"].astype(str))
    toxic = labelled["meta_toxic"].astype(bool).to_numpy()
    cells = _cells(root)
    roles = _variants(set(cells["strategy"].astype(str)))
    by = {role: {int(r.seed): r.cell_id for r in cells[cells["strategy"] == lab].itertuples()}
          for role, lab in roles.items()}
    seeds = sorted(set.intersection(*(set(by[r]) for r in roles)))
    if not seeds:
        raise ValueError(f"{root}: no seed with a finished cell of every role {list(roles.values())}")
    keep = {role: _keep_matrix(root, {s: by[role][s] for s in seeds}, ids) for role in roles}
    share = {role: {s: _share(keep[role][s], toxic) for s in seeds} for role in roles}
    calls = {role: {s: _calls(root, by[role][s]) for s in seeds} for role in roles}
    out: dict[str, Any] = {"format_version": 1, "roles": ROLES, "seeds": seeds,
                           "measure": "kept gold-toxic share: toxic / kept documents with a gold label",
                           "labelled_documents": len(ids), "targets": TARGETS,
                           "kept_gold_toxic_share": {roles[r]: {str(s): share[r][s] for s in seeds}
                                                     for r in roles},
                           "expensive_calls": {roles[r]: {str(s): calls[r][s] for s in seeds} for r in roles}}
    boot = _bootstrap(keep, toxic, seeds, n_boot, seed)
    gap_b = boot["floor"] - boot["ceiling"]
    gap = float(np.mean([share["floor"][s] - share["ceiling"][s] for s in seeds]))
    out["gap"] = {"value": gap, "interval": _interval(gap_b)}
    for role in COMPARED:
        out[role] = _role_block(role, roles[role], share, calls, boot, seeds)
    out["loop_vs_uncertainty"] = _versus("loop", "uncertainty", share, boot, seeds)
    out["loop_vs_random"] = _versus("loop", "random", share, boot, seeds)
    suffixes = sorted({r.split("_", 1)[1] for r in roles if r.startswith("loop_")})
    out["other_call_shares"] = {
        sfx: {**{r: _role_block(f"{r}_{sfx}", roles[f"{r}_{sfx}"], share, calls, boot, seeds)
                 for r in COMPARED},
              "loop_vs_uncertainty": _versus(f"loop_{sfx}", f"uncertainty_{sfx}", share, boot, seeds),
              "loop_vs_random": _versus(f"loop_{sfx}", f"random_{sfx}", share, boot, seeds)}
        for sfx in suffixes}
    loop = out["loop"]
    out["gap_closed"], out["gap_closed_interval"] = loop["gap_closed"], loop["gap_closed_interval"]
    out["expensive_call_share"] = loop["expensive_call_share"]
    out["targets_met"] = {
        "gap_closed_every_seed": all(
            v >= TARGETS["gap_closed"] for v in loop["gap_closed_per_seed"].values()),
        "expensive_call_share_every_seed": all(
            v <= TARGETS["expensive_call_share"] for v in loop["expensive_call_share_per_seed"].values()),
        "loop_beats_uncertainty": bool(out["loop_vs_uncertainty"]["interval"][0] > 0)}
    out["secondary"] = _secondary(root)
    return out


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den and math.isfinite(den) and math.isfinite(num) else math.nan


def _secondary(root: Path) -> dict[str, Any]:
    """The model-level measures, paired, where the cells trained a model (else not run, and why)."""
    from dynacure.experiments.paired import PairingError, gap_closed, load_cells
    from dynacure.stats import Units

    cells = [c for c in load_cells(root) if any(k in c.units for k in SECONDARY)]
    if not cells:
        return {"status": "not run: no base model this session (curation-only cells, learner.train = "
                          "false); the primary measure needs no model"}
    by: dict[str, dict[int, Any]] = {}
    for c in cells:
        by.setdefault(c.strategy, {})[c.seed] = c
    out: dict[str, Any] = {"status": "run"}
    floor, ceiling = by.get(ROLES["floor"], {}), by.get(ROLES["ceiling"], {})
    for role in COMPARED:
        mine = by.get(ROLES[role], {})
        for key in SECONDARY:
            use = [s for s in sorted(set(floor) & set(ceiling) & set(mine))
                   if all(key in d[s].units for d in (floor, ceiling, mine))]
            if not use:
                continue
            try:
                g = gap_closed([tuple(Units.from_dict(d[s].units[key]) for d in (floor, ceiling, mine))
                                for s in use])
            except PairingError as exc:
                g = {"refused": str(exc)}
            out.setdefault(role, {})["/".join(key)] = g
    return out


def write_labels_summary(runs: str | Path) -> dict[str, Any]:
    summary = labels_summary(runs)
    write_json_atomic(Path(runs) / SUMMARY_FILE, summary)
    return summary
