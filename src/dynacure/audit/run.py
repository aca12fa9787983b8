"""Audit one or more decision manifests against the corpus they were made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynacure.audit.disparity import removal_disparity
from dynacure.audit.groups import group_membership


def find_manifests(paths: list[Path]) -> dict[str, Path]:
    """Map a label (strategy/cell name) to each manifest: a manifest file, a curate output folder, or an
    experiment folder whose cells hold manifests."""
    found: dict[str, Path] = {}
    for p in paths:
        if p.is_file():
            found[p.parent.name if p.name == "manifest.parquet" else p.stem] = p
        elif (p / "manifest.parquet").exists():
            found[p.name] = p / "manifest.parquet"
        elif p.is_dir():
            for m in sorted(p.rglob("manifest.parquet")):
                found[m.parent.name] = m
        else:
            raise FileNotFoundError(f"{p}: no such manifest, curate output or experiment folder")
    if not found:
        raise FileNotFoundError(f"no manifest.parquet under {', '.join(map(str, paths))}")
    return found


def corpus_of(manifest: Path) -> Path | None:
    """The input corpus of a manifest: the one `curate` recorded in run.json next to it, or, for a cell of
    an experiment (``RUNS/cells/<cell>/manifest.parquet``), the experiment's corpus ``RUNS/corpus``."""
    info = manifest.parent / "run.json"
    if info.exists():
        cfg = json.loads(info.read_text()).get("config", {})
        for key in ("corpus", "corpus_path", "input"):
            if isinstance(cfg.get(key), str) and cfg[key]:
                return Path(cfg[key])
    if manifest.parent.parent.name == "cells" and (manifest.parents[2] / "corpus").is_dir():
        return manifest.parents[2] / "corpus"
    return None


def audit_manifest(
    manifest: pd.DataFrame, texts: pd.Series, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``texts``: indexed by document id. Quarantined documents are excluded (they were never candidates)."""
    m = manifest[manifest["decision"] != "quarantined"]
    missing = set(m["id"]) - set(texts.index)
    if missing:
        raise ValueError(
            f"audit: {len(missing)} manifest ids are not in the corpus (e.g. {sorted(missing)[:3]})"
        )
    docs = texts.loc[m["id"]].tolist()
    removed = m["decision"].to_numpy() != "keep"
    table = removal_disparity(removed, group_membership(docs), n_boot=n_boot, seed=seed)
    worst = table[table["ratio_low"] > 1.0]["group"].tolist() if len(table) else []
    return {
        "n_docs": int(len(m)),
        "overall_removal_rate": float(removed.mean()),
        "groups": table.to_dict(orient="records"),
        "over_removed": worst,
    }


def summarize(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for label, res in results.items():
        for g in res["groups"]:
            rows.append({"strategy": label, **g})
    return pd.DataFrame(rows)


def ratios_matrix(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    df = summarize(results)
    if df.empty:
        return df
    return df.pivot_table(index="group", columns="strategy", values="ratio", aggfunc="first").fillna(np.nan)
