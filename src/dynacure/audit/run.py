"""Audit one or more decision manifests against the corpus they were made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynacure.audit.disparity import MIN_GROUP_DOCS, removal_disparity
from dynacure.audit.groups import group_membership
from dynacure.runinfo import RUN_FILE, find_run_info, stored_path


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
    an experiment (``RUNS/cells/<cell>/manifest.parquet``), the experiment's corpus ``RUNS/corpus``.

    A recorded path is resolved relative to the curate folder first, then as stored (absolute), so the
    folder can be audited from any working folder and moved (``runinfo.stored_path``); when it is found
    nowhere the error names the paths tried and ``--corpus``."""
    # curate's record may be run.curate.json when another command's run.json was there first
    record = find_run_info(manifest.parent, "curate")
    if record is None and (manifest.parent / RUN_FILE).exists():
        record = json.loads((manifest.parent / RUN_FILE).read_text())
    if record is not None:
        cfg = record.get("config", {})
        for key in ("corpus", "corpus_path", "input"):
            if isinstance(cfg.get(key), str) and cfg[key]:
                return stored_path(record, key, manifest.parent, "--corpus")
    if manifest.parent.parent.name == "cells" and (manifest.parents[2] / "corpus").is_dir():
        return manifest.parents[2] / "corpus"
    return None


def text_field_of(manifest: Path) -> str | None:
    """The ``--text-field`` curate was run with (None: the default, each file's own text field), so the
    audit reads the corpus's texts as curate read them."""
    record = find_run_info(manifest.parent, "curate")
    field = (record or {}).get("request", {}).get("text_field")
    return field if isinstance(field, str) and field else None


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
    membership = group_membership(docs)
    table = removal_disparity(removed, membership, n_boot=n_boot, seed=seed)
    worst = table[table["ratio_low"] > 1.0]["group"].tolist() if len(table) else []
    return {
        "n_docs": int(len(m)),
        "overall_removal_rate": float(removed.mean()),
        "groups": table.to_dict(orient="records"),
        "over_removed": worst,
        # documents mentioning each group, also below MIN_GROUP_DOCS: why a group has no row
        "group_mentions": {g: int(mask.sum()) for g, mask in membership.items()},
    }


def no_groups_message(results: dict[str, dict[str, Any]]) -> str | None:
    """Why no manifest has a disparity row (no group mentioned by ``MIN_GROUP_DOCS`` documents), or None
    when at least one has."""
    if any(res["groups"] for res in results.values()):
        return None
    mentions: dict[str, int] = {}
    for res in results.values():
        for g, n in res.get("group_mentions", {}).items():
            mentions[g] = max(mentions.get(g, 0), n)
    n_docs = max((res["n_docs"] for res in results.values()), default=0)
    seen = sorted(((n, g) for g, n in mentions.items() if n), reverse=True)
    most = ", ".join(f"{g} {n}" for n, g in seen[:5]) if seen else "none at all"
    return (f"no identity group or dialect is mentioned by at least {MIN_GROUP_DOCS} of the {n_docs:,} "
            f"documents (most mentioned: {most}), so there is no removal disparity to measure")


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
