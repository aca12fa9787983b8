"""Report sections beyond the results: the curation bias audit (removal disparity per identity group and
dialect, without and with the disparity cap) and the adaptivity experiment (`dynacure adapt`).

The audit is computed here from what the experiment already wrote (each cell's manifest with its decisions
and selection probabilities, the texts in RUNS/table.parquet), so every report carries it. The disparity
cap is the mitigation of ``dynacure.audit.mitigation``, applied to each cell's own decisions at the same
token budget with the strategy's probabilities as priority; the section shows what the cap changes and
what it costs in toxic documents kept.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynacure.report.data import RunData

log = logging.getLogger(__name__)

DEFAULT_CAP = 1.25
ADAPT_DIRS = ("adapt", "adaptivity")  # where `dynacure adapt --out RUNS/adapt` leaves its files
TOXIC_LEVELS = ("toxic", "high", "high (>=0.5)")


def _f(x: Any) -> str:
    from dynacure.report.html import fmt

    return fmt(x)


def _table(header: list[str], rows: list[list[str]], text_cols: int = 1) -> str:
    from dynacure.report.html import _table as table

    return table(header, rows, text_cols)


# ---- audit -----------------------------------------------------------------------------------------------


def audit_rows(
    data: RunData, max_ratio: float = DEFAULT_CAP, n_boot: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """One record per cell: removal disparity of its decisions, and of the same decisions after the
    disparity cap (re-admitted documents, worst ratio, groups over-removed, toxic share of what is kept)."""
    from dynacure.audit.disparity import removal_disparity
    from dynacure.audit.groups import group_membership
    from dynacure.audit.mitigation import cap_disparity

    table_path = data.root / "table.parquet"
    if not table_path.exists() or not data.cells:
        return []
    texts = pd.read_parquet(table_path, columns=["id", "text", "n_tokens"]).set_index("id")
    toxic = None
    if data.documents is not None and "toxicity_level" in data.documents.columns:
        toxic = data.documents.set_index("id")["toxicity_level"].astype(str).isin(TOXIC_LEVELS)
    membership_all = group_membership(texts["text"].astype(str).tolist())
    pos = pd.Series(np.arange(len(texts)), index=texts.index)
    rows = []
    for cid, cell in sorted(data.cells.items()):
        path = data.root / "cells" / cid / "manifest.parquet"
        if not path.exists():
            continue
        man = pd.read_parquet(path, columns=["id", "decision", "probability"])
        man = man[man["decision"] != "quarantined"]
        idx = pos.reindex(man["id"]).to_numpy()
        if np.isnan(idx.astype(float)).any():
            log.warning("%s: manifest ids missing from table.parquet; audit skipped", path)
            continue
        idx = idx.astype(np.int64)
        keep = (man["decision"] == "keep").to_numpy()
        membership = {g: m[idx] for g, m in membership_all.items()}
        ntok = texts["n_tokens"].to_numpy(dtype=float)[idx]
        before = removal_disparity(~keep, membership, n_boot=n_boot, seed=seed)
        capped, back = cap_disparity(
            keep, man["probability"].to_numpy(dtype=float), ntok, membership, max_ratio=max_ratio
        )
        after = removal_disparity(~capped, membership, n_boot=n_boot, seed=seed)
        tox = toxic.reindex(man["id"]).fillna(False).to_numpy(dtype=bool) if toxic is not None else None
        rows.append(
            {
                "cell_id": cid,
                "strategy": cell.get("strategy", cid),
                "budget": float(cell.get("budget", math.nan)),
                "seed": cell.get("seed"),
                "removal_rate": float((~keep).mean()),
                "before": before,
                "after": after,
                "readmitted": int(back.sum()),
                "dropped_for_budget": int((keep & ~capped).sum()),
                "toxic_kept_before": float(tox[keep].mean()) if tox is not None and keep.any() else math.nan,
                "toxic_kept_after": float(tox[capped].mean())
                if tox is not None and capped.any()
                else math.nan,
            }
        )
    return rows


def _worst(df: pd.DataFrame) -> tuple[str, str, list[str]]:
    if df is None or df.empty or not np.isfinite(df["ratio"]).any():
        return "n/a", "n/a", []
    top = df.iloc[0]
    over = df[df["ratio_low"] > 1.0]["group"].tolist()
    ci = f'{_f(top["ratio"])} <span class="ci">[{_f(top["ratio_low"])}, {_f(top["ratio_high"])}]</span>'
    return html.escape(str(top["group"])), ci, over


def audit_section(data: RunData, max_ratio: float = DEFAULT_CAP) -> str:
    """HTML: per cell, the worst-affected group and the groups over-removed (95% interval above 1),
    without and with the disparity cap, and what the cap costs in toxic documents kept."""
    try:
        rows = audit_rows(data, max_ratio)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("audit section skipped: %s", exc)
        return ""
    if not rows:
        return ""
    out = []
    for r in sorted(rows, key=lambda r: (r["budget"], str(r["strategy"]), str(r["seed"]))):
        g0, c0, over0 = _worst(r["before"])
        g1, c1, over1 = _worst(r["after"])
        out.append(
            [
                html.escape(str(r["strategy"])),
                _f(r["budget"]),
                html.escape(str(r["seed"])),
                _f(r["removal_rate"]),
                g0,
                c0,
                html.escape(", ".join(over0)) or "none",
                g1,
                c1,
                html.escape(", ".join(over1)) or "none",
                f"{r['readmitted']} / {r['dropped_for_budget']}",
                f"{_f(r['toxic_kept_before'])} &rarr; {_f(r['toxic_kept_after'])}",
            ]
        )
    header = [
        "strategy",
        "budget",
        "seed",
        "removal rate",
        "worst group",
        "ratio [95% CI]",
        "over-removed",
        f"worst group, cap {max_ratio:g}",
        "ratio [95% CI]",
        "over-removed",
        "re-admitted / dropped",
        "toxic share of kept: no cap &rarr; cap",
    ]
    note = (
        '<p class="note">Removal disparity: the share of documents mentioning a group (or written with '
        "African-American English markers) that a strategy removed, divided by its overall removal "
        "rate; above 1 the group is over-removed, and a group is listed as over-removed when its 95% "
        "bootstrap interval is above 1. The disparity cap "
        f"(<code>dynacure curate --disparity-cap {max_ratio:g}</code>) re-admits the group's documents the "
        "strategy liked best until the ratio is at most the cap, and pays for them with the least "
        "preferred kept documents of no capped group, so the token budget is unchanged. The last "
        "column is its cost: the toxic share of the kept documents without and with the cap.</p>"
    )
    return _table(header, out, text_cols=3) + note


# ---- adaptivity ------------------------------------------------------------------------------------------


def find_adapt(root: Path) -> Path | None:
    """The folder of a `dynacure adapt` run inside RUNS (RUNS/adapt), or RUNS itself when it is one."""
    for cand in (root, *(root / d for d in ADAPT_DIRS)):
        if (cand / "adapt.json").exists():
            return cand
    return None


def adaptivity_section(root: Path) -> str:
    """HTML: the adaptivity plot (when the PNG is there), re-adaptation steps per policy against the
    static filter, and the transfer figures."""
    from dynacure.experiments.adaptivity import PLOT_FILE, read_result

    folder = find_adapt(Path(root))
    if folder is None:
        return ""
    try:
        res = read_result(folder)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        log.warning("adaptivity section skipped: %s", exc)
        return ""
    sw = res["switch"]
    parts = [
        f'<p class="note">Reward A (<code>{html.escape(sw["reward_a"])}</code>) for {sw["at_step"]} '
        "loop steps, "
        f"then reward B (<code>{html.escape(sw['reward_b'])}</code>), switched inside the same run. Metric: "
        f"{html.escape(res['metric'])}. Re-adaptation steps: steps after the switch until the moving average "
        f"({res['config']['window']} steps) has covered {res['config']['frac']:.0%} of the way from its "
        "pre-switch level to its final level; a static filter decided once under A cannot move.</p>"
    ]
    png = folder / PLOT_FILE
    if png.exists():
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f'<figure id="fig-adaptivity"><img alt="Adaptivity after a reward switch" '
            f'src="data:image/png;base64,{b64}"><figcaption><b>Re-adaptation after a reward switch.</b> '
            "Thin lines: per step; thick: moving average; dotted verticals: the measured re-adaptation "
            "point of each policy; dashed black: the static filter. Lower is better under reward B."
            "</figcaption></figure>"
        )
    rows = []
    for algo, run in res["policies"].items():
        m = run["readaptation"]
        rows.append(
            [
                html.escape(algo),
                _f(m["pre"]),
                _f(m["final"]),
                str(m["steps"]) if m["steps"] is not None else "not reached",
                _f(run["seconds_per_step"]),
            ]
        )
    sm = res["static_filter"]["readaptation"]
    rows.append(
        ["static filter (reward A, decided once)", _f(sm["pre"]), _f(sm["final"]), "never", "&ndash;"]
    )
    parts.append(
        _table(["policy", "toxic share before switch", "final", "re-adaptation steps", "s / step"], rows)
    )
    tr = res.get("transfer")
    if tr:
        trows = [
            [
                html.escape(r["learner"]),
                _f(r["learner_params"]),
                html.escape(r["policy"]),
                _f(r["toxic_share_selected"]),
                _f(r["train_loss_last_fifth"]),
                _f(r["heldout_clean_loss"]),
                _f(r["heldout_toxic_loss"]),
            ]
            for r in tr["learners"]
        ]
        parts.append(
            f'<p class="note">Transfer: a {html.escape(tr["algorithm"])} policy learned under reward B '
            "with the "
            f"nano learner, frozen and applied for {tr['steps']} loop steps with a larger learner, against a "
            "policy learned from scratch with the larger learner and random selection at the same budget. "
            "Lower toxic share and clean-text loss are better; a higher loss on toxic text means the model "
            "learned less toxic language.</p>"
        )
        parts.append(
            _table(
                [
                    "learner",
                    "parameters",
                    "policy",
                    "toxic share selected",
                    "train loss (last 20%)",
                    "held-out clean loss",
                    "held-out toxic loss",
                ],
                trows,
                text_cols=3,
            )
        )
    return "\n".join(parts)
