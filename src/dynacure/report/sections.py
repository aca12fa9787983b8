"""Report sections beyond the results table: who wins (the Pareto front and the significant paired
differences per budget, in sentences made from the data), the paired-difference tables, the curation bias
audit (removal disparity per identity group and dialect, without and with the disparity cap) and the
adaptivity experiment (`dynacure adapt`).

Every section returns ``Markup`` (or an empty one): values are passed as plain strings and escaped by the
templates / ``Markup.format``; only the fixed markup written here is trusted.

The audit is computed here from what the experiment already wrote (each cell's manifest with its decisions
and selection probabilities, the texts in RUNS/table.parquet), so every report carries it. The disparity
cap is the mitigation of ``dynacure.audit.mitigation``, applied to each cell's own decisions at the same
token budget with the strategy's probabilities as priority; the section shows what the cap changes and
what it costs in toxic documents kept.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from dynacure.report.data import SAFETY_METRICS, UTILITY_METRICS, RunData, aggregate, pick_metric

log = logging.getLogger(__name__)

DEFAULT_CAP = 1.25
ADAPT_DIRS = ("adapt", "adaptivity")  # where `dynacure adapt --out RUNS/adapt` leaves its files
TOXIC_LEVELS = ("toxic", "high", "high (>=0.5)")


def _f(x: Any) -> str:
    from dynacure.report.markup import fmt

    return fmt(x)


def _table(header: list[Any], rows: list[list[Any]], text_cols: int = 1,
           table_id: str | None = None) -> Markup:
    from dynacure.report.markup import _table as table

    return table(header, rows, text_cols, table_id=table_id)


def _join(parts: list[Any], sep: str = "\n") -> Markup:
    from dynacure.report.markup import join

    return join(parts, sep)


# ---- who wins ----------------------------------------------------------------------------------------------

# How a domain of the domain_perplexity suite reads in a sentence ("... on clean-tweet perplexity ...").
DOMAIN_LABELS = {
    "tweets": "clean-tweet",
    "comments": "clean-comment",
    "davidson": "Davidson clean-tweet",
    "dialogue": "dialogue",
    "wikitext2": "WikiText-2",
    "ptb": "PTB",
    "macro": "macro-mean domain",
}
ROLE_TEXT = {"random": "", "best_static": " (the best static baseline)"}


def metric_label(suite: str, metric: str) -> str:
    """A metric's name in a sentence."""
    if metric.startswith("word_perplexity_"):
        dom = metric[len("word_perplexity_") :]
        return f"{DOMAIN_LABELS.get(dom, dom.replace('_', ' '))} perplexity (per word)"
    from dynacure.report.plots import short_name

    return short_name(metric)


def _signed(x: float) -> str:
    return ("+" if x > 0 else "") + _f(x)


def _headline(data: RunData) -> list[tuple[str, str]]:
    return [k for k in (pick_metric(data.results, SAFETY_METRICS), pick_metric(data.results, UTILITY_METRICS))
            if k]


Point = tuple[str, str]  # (strategy label, weight-set name) at one budget


def _interval_order(lo_a: float, hi_a: float, lo_b: float, hi_b: float) -> int:
    """-1 / +1 when a's interval lies wholly below / above b's, else 0 (the fallback without Units)."""
    if hi_a < lo_b:
        return -1
    if lo_a > hi_b:
        return 1
    return 0


def pairwise_order(data: RunData, budget: float, keys: list[tuple[str, str]], points: list[Point],
                   n_boot: int = 2000, cells: list[Any] | None = None
                   ) -> tuple[dict[tuple[Point, Point, tuple[str, str]], int], bool]:
    """For every ordered pair of points and headline metric: -1 when the first is lower (better) with a
    paired 95% interval of the difference that excludes 0, +1 when higher, 0 when the interval holds 0 (a
    tie). Units of the seeds both ran pair the comparison; without Units, two intervals that do not
    overlap decide it (a coarser test), and the second value returned is True."""
    from dynacure.experiments.paired import PairingError, load_cells, paired_difference
    from dynacure.stats import Units

    by_point: dict[Point, dict[int, Any]] = {}
    for c in cells if cells is not None else load_cells(data.root):
        if math.isclose(c.budget, budget):
            by_point.setdefault((c.strategy, c.weights), {})[c.seed] = c
    parsed: dict[tuple[str, tuple[str, str]], Units] = {}

    def units(c: Any, key: tuple[str, str]) -> Units:
        if (c.cell_id, key) not in parsed:
            parsed[(c.cell_id, key)] = Units.from_dict(c.units[key])
        return parsed[(c.cell_id, key)]

    res = data.results[np.isclose(data.results["budget"].astype(float), budget)]
    by = ("strategy", "weights")
    aggs = {k: aggregate(res, *k, by=by).set_index(list(by)) for k in keys}
    out: dict[tuple[Point, Point, tuple[str, str]], int] = {}
    coarse = False
    for i, p in enumerate(points):
        for q in points[i + 1:]:
            for key in keys:
                mine, theirs = by_point.get(p, {}), by_point.get(q, {})
                seeds = [s for s in sorted(set(mine) & set(theirs))
                         if key in mine[s].units and key in theirs[s].units]
                sign = None
                if seeds:
                    try:
                        d = paired_difference([(units(mine[s], key), units(theirs[s], key)) for s in seeds],
                                              n_boot=n_boot)
                        sign = -1 if d.high < 0 else (1 if d.low > 0 else 0)
                    except PairingError:
                        sign = None
                if sign is None:
                    coarse = True
                    a, b = aggs[key].loc[p], aggs[key].loc[q]
                    sign = _interval_order(a["low"], a["high"], b["low"], b["high"])
                out[(p, q, key)] = sign
                out[(q, p, key)] = -sign
    return out, coarse


def _pareto_sentence(data: RunData, budget: float, multi_w: bool, cells: list[Any] | None = None) -> str:
    """Which strategies at ``budget`` no other strategy beats on the headline metrics (lower is better),
    where "beats" needs a paired difference whose 95% interval excludes 0; points that differ on neither
    metric are named as ties, never as winner and loser."""
    keys = _headline(data)
    res = data.results[np.isclose(data.results["budget"].astype(float), budget)]
    if not keys or res.empty:
        return ""
    aggs = [aggregate(res, *k, by=("strategy", "weights")).set_index(["strategy", "weights"]) for k in keys]
    points = sorted(set(aggs[0].index).intersection(*(a.index for a in aggs[1:])))
    if not points:
        return ""

    def name(p: Point) -> str:
        return f"{p[0]} (weights {p[1]})" if multi_w else str(p[0])

    n_boot = int((data.paired_notes or {}).get("n_boot") or 2000)
    order, coarse = pairwise_order(data, budget, keys, points, n_boot=n_boot, cells=cells)
    rule = ("a point beats another only where the paired 95% interval excludes 0" + (
        "; without per-unit values, only where the two 95% intervals do not overlap" if coarse else ""))
    vals = [np.array([a.loc[p, "value"] for p in points], dtype=float) for a in aggs]
    labels = [metric_label(*k) for k in keys]
    if len(keys) == 1:
        best = [p for p in points if not any(order[(q, p, keys[0])] < 0 for q in points if q != p)]
        shown = ", ".join(f"{name(p)} ({_f(vals[0][points.index(p)])})" for p in best)
        tie = f" (a tie: {rule})" if len(best) > 1 else ""
        return f"Only {labels[0]} was measured (lower is better); lowest: {shown}{tie}."

    def beats(p: Point, q: Point) -> bool:
        if p == q:
            return False
        signs = [order[(p, q, k)] for k in keys]
        return all(s <= 0 for s in signs) and any(s < 0 for s in signs)

    front = [p for p in points if not any(beats(q, p) for q in points if q != p)]
    front.sort(key=lambda p: (vals[0][points.index(p)], vals[1][points.index(p)]))
    listed = "; ".join(f"{name(p)} ({_f(vals[0][points.index(p)])}, {_f(vals[1][points.index(p)])})"
                       for p in front)
    off = [p for p in points if p not in front]
    if off:
        by = "; ".join(f"{name(q)} (by {', '.join(name(p) for p in points if beats(p, q))})" for q in off)
        tail = (f" The other {len(off)} {'is' if len(off) == 1 else 'are'} dominated: another point is "
                f"better on one metric and not worse on the other: {by}.")
    else:
        tail = " No strategy is dominated by another."
    ties = [f"{name(p)} = {name(q)}" for i, p in enumerate(front) for q in front[i + 1:]
            if all(order[(p, q, k)] == 0 for k in keys)]
    if ties:
        tail += (" Tied on both metrics (neither beats the other, so neither is the winner): "
                 f"{', '.join(ties)}.")
    return (f"On the Pareto front of {labels[0]} and {labels[1]} (both lower is better; mean over seeds; "
            f"{rule}): {listed}.{tail}")


def _flag(x: Any) -> bool | None:
    """A nullable boolean of the paired table (None, NaN or pandas NA read as unknown)."""
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return None
    return bool(x)


def _finding(r: pd.Series, multi_w: bool) -> str:
    who = f"{r['strategy']} (weights {r['weights']})" if multi_w else str(r["strategy"])
    better = _flag(r["better"])
    verb = "differs from" if better is None else ("is better than" if better else "is worse than")
    seeds = int(r["n_seeds"])
    against = f"{r['baseline']}{ROLE_TEXT.get(r['baseline_role'], '')}"
    return (f"At budget {_f(r['budget'])}, {who} {verb} {against} "
            f"on {metric_label(r['suite'], r['metric'])} by {_signed(r['diff'])} "
            f"[{_signed(r['low'])}, {_signed(r['high'])}] ({seeds} seed{'s' if seeds != 1 else ''}, "
            f"{int(r['n_units'])} paired units each).")


def who_wins(data: RunData) -> list[dict[str, Any]]:
    """Per budget: its heading, the Pareto sentence, the significant paired differences on the headline
    metrics (and the per-domain perplexities) as sentences, and those on other metrics."""
    res = data.results
    if res.empty:
        return []
    from dynacure.experiments.paired import load_cells

    paired = data.paired
    multi_w = res["weights"].nunique() > 1
    cells = load_cells(data.root)  # read once: every budget's Pareto sentence pairs from them
    out = []
    for budget in sorted(res["budget"].astype(float).unique()):
        at = paired[np.isclose(paired["budget"].astype(float), budget)] if len(paired) else paired
        best = sorted(set(at.loc[at["baseline_role"] == "best_static", "baseline"])) if len(at) else []
        sig = at[at["significant"].astype(bool)] if len(at) else at
        main, more = [], []
        if len(sig):
            # headline metrics first (safety, then utility), then per-domain perplexities, then the rest
            rank = {k: i for i, k in enumerate(_headline(data))}
            pairs = list(zip(sig["suite"], sig["metric"], strict=True))
            sig = sig.assign(_rank=[rank.get(k, 2 if k[0] == "domain_perplexity" else 3) for k in pairs],
                             _role=(sig["baseline_role"] != "random").astype(int))
            for _, r in sig.sort_values(["_rank", "suite", "metric", "strategy", "_role"]).iterrows():
                (main if r["_rank"] < 3 else more).append(_finding(r, multi_w))
        if not len(at):
            none = ("No paired comparison at this budget: the cells carry no per-unit values for a metric "
                    "both a strategy and its baseline have.")
        else:
            none = "No paired difference on the headline metrics is significant at this budget."
        heading = f"Budget {_f(budget)}"
        if best:
            heading += f" (best static baseline: {', '.join(map(str, best))})"
        out.append({"heading": heading, "pareto": _pareto_sentence(data, budget, multi_w, cells),
                    "findings": main, "more": more, "none_text": none})
    return out


def who_wins_section(data: RunData) -> Markup:
    """HTML of the report's first section (templates/who_wins.html)."""
    from dynacure.report.markup import render

    n_boot = (data.paired_notes or {}).get("n_boot") or 2000
    refused = (data.paired_notes or {}).get("refused") or []
    intro = (
        "Generated from the data. Each sentence is a paired difference, strategy minus baseline in the "
        "metric's own unit, with its 95% interval: both strategies' metric recomputed on the same "
        f"resampled prompts or texts ({n_boot} resamples), averaged over the seeds both ran; a difference "
        "is listed when its interval excludes 0. Baselines: random, and the best static baseline of the "
        "budget (the non-learned strategy other than random with the best rank sum on the two headline "
        "metrics)."
    )
    if refused:
        intro += f" {len(refused)} comparison(s) were refused because the two cells' units differ."
    intro += headline_note(data)
    return render("who_wins.html", intro=intro, budgets=who_wins(data))


def headline_note(data: RunData) -> str:
    """Why a headline metric is not the first of its list: the ones before it are equal for every row."""
    from dynacure.report.data import skipped_headlines

    notes = []
    for cands in (SAFETY_METRICS, UTILITY_METRICS):
        chosen = pick_metric(data.results, cands)
        if chosen is None:
            continue
        for key in skipped_headlines(data.results, cands):
            value = data.results.loc[(data.results["suite"] == key[0]) & (data.results["metric"] == key[1]),
                                     "value"].iloc[0]
            notes.append(f" {metric_label(*key).capitalize()} is {_f(value)} for every strategy, so it "
                         f"ranks nothing; the headline uses {metric_label(*chosen)} instead.")
    return "".join(notes)


def paired_section(data: RunData) -> Markup:
    """Every paired difference: the headline metrics in one table, then one table per suite (at most
    MAX_METRIC_COLUMNS metrics each) under a disclosure. Significant cells are bold and coloured by
    direction."""
    from dynacure.report.markup import MAX_METRIC_COLUMNS, _est, _metric_header

    paired = data.paired
    if paired is None or paired.empty:
        return Markup("")
    multi_w = paired["weights"].nunique() > 1
    index = ["budget", *(["weights"] if multi_w else []), "strategy", "baseline_role", "baseline"]
    keys = sorted(set(zip(paired["suite"], paired["metric"], strict=True)))

    def table(cols: list[tuple[str, str]], table_id: str, with_suite: bool) -> Markup:
        sub = paired[[(s, m) in set(cols) for s, m in zip(paired["suite"], paired["metric"], strict=True)]]
        cells = {(*(r[c] for c in index), r["suite"], r["metric"]): r for _, r in sub.iterrows()}
        rows = []
        for key in sorted({tuple(r[c] for c in index) for _, r in sub.iterrows()},
                          key=lambda k: (float(k[0]), *map(str, k[1:-2]), k[-2] != "random", str(k[-1]))):
            row: list[Any] = [_f(key[0]), *map(str, key[1:-2]),
                              f"{key[-1]}{ROLE_TEXT.get(key[-2], '')}"]
            for s, m in cols:
                r = cells.get((*key, s, m))
                if r is None:
                    row.append("n/a")
                    continue
                cls = ""
                if bool(r["significant"]):
                    good = _flag(r["better"])
                    cls = "sig" + ("" if good is None else (" better" if good else " worse"))
                est = _est(r["diff"], r["low"], r["high"])
                row.append({"v": Markup("{}{}").format("+" if r["diff"] > 0 else "", est), "cls": cls})
            rows.append(row)
        header: list[Any] = ["budget", *(["weights"] if multi_w else []), "strategy", "against"]
        header += [_metric_header(s, m, with_suite) for s, m in cols]
        return _table(header, rows, text_cols=len(header) - len(cols), table_id=table_id)

    head = [k for k in _headline(data) if k in keys]
    parts: list[Any] = [Markup(
        '<p class="note">Strategy minus baseline in the metric\'s own unit, with the 95% paired bootstrap '
        "interval (same prompts or texts for both, combined over the seeds both ran). Bold: the interval "
        "excludes 0 (green: the strategy is better, red: worse). The full table is RUNS/paired.parquet."
        "</p>")]
    if head:
        parts.append(table(head, "paired", with_suite=True))
    per_suite: list[Any] = []
    for suite in sorted({s for s, _ in keys}):
        mine = [k for k in keys if k[0] == suite]
        for i in range(0, len(mine), MAX_METRIC_COLUMNS):
            per_suite.append(Markup("<h3>Suite <code>{}</code></h3>").format(suite))
            tid = f"paired-{suite}-{i // MAX_METRIC_COLUMNS + 1}"
            per_suite.append(table(mine[i : i + MAX_METRIC_COLUMNS], tid, with_suite=False))
    parts.append(Markup("<details><summary>Every metric with per-unit values, by suite</summary>{}</details>")
                 .format(_join(per_suite)))
    return _join(parts)


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


def _worst(df: pd.DataFrame) -> tuple[str, Markup | str, list[str]]:
    from dynacure.report.markup import _est

    if df is None or df.empty or not np.isfinite(df["ratio"]).any():
        return "n/a", "n/a", []
    top = df.iloc[0]
    over = [str(g) for g in df[df["ratio_low"] > 1.0]["group"].tolist()]
    return str(top["group"]), _est(top["ratio"], top["ratio_low"], top["ratio_high"]), over


def audit_section(data: RunData, max_ratio: float = DEFAULT_CAP) -> Markup:
    """HTML: per cell, the worst-affected group and the groups over-removed (95% interval above 1),
    without and with the disparity cap, and what the cap costs in toxic documents kept."""
    try:
        rows = audit_rows(data, max_ratio)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("audit section skipped: %s", exc)
        return Markup("")
    if not rows:
        return Markup("")
    out = []
    for r in sorted(rows, key=lambda r: (r["budget"], str(r["strategy"]), str(r["seed"]))):
        g0, c0, over0 = _worst(r["before"])
        g1, c1, over1 = _worst(r["after"])
        out.append(
            [
                str(r["strategy"]),
                _f(r["budget"]),
                str(r["seed"]),
                _f(r["removal_rate"]),
                g0,
                c0,
                ", ".join(over0) or "none",
                g1,
                c1,
                ", ".join(over1) or "none",
                f"{r['readmitted']} / {r['dropped_for_budget']}",
                f"{_f(r['toxic_kept_before'])} \u2192 {_f(r['toxic_kept_after'])}",
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
        "toxic share of kept: no cap \u2192 cap",
    ]
    note = Markup(
        '<p class="note">Removal disparity: the share of documents mentioning a group (or written with '
        "African-American English markers) that a strategy removed, divided by its overall removal "
        "rate; above 1 the group is over-removed, and a group is listed as over-removed when its 95% "
        "bootstrap interval is above 1. The disparity cap "
        "(<code>dynacure curate --disparity-cap {}</code>) re-admits the group's documents the "
        "strategy liked best until the ratio is at most the cap, and pays for them with the least "
        "preferred kept documents of no capped group, so the token budget is unchanged. The last "
        "column is its cost: the toxic share of the kept documents without and with the cap.</p>"
    ).format(f"{max_ratio:g}")
    return _join([_table(header, out, text_cols=3), note])


# ---- adaptivity ------------------------------------------------------------------------------------------


def find_adapt(root: Path) -> Path | None:
    """The folder of a `dynacure adapt` run inside RUNS (RUNS/adapt), or RUNS itself when it is one."""
    for cand in (root, *(root / d for d in ADAPT_DIRS)):
        if (cand / "adapt.json").exists():
            return cand
    return None


def adaptivity_section(root: Path) -> Markup:
    """HTML: the adaptivity plot (when the PNG is there), re-adaptation steps per policy against the
    static filter, and the transfer figures."""
    from dynacure.experiments.adaptivity import PLOT_FILE, read_result

    folder = find_adapt(Path(root))
    if folder is None:
        return Markup("")
    try:
        res = read_result(folder)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        log.warning("adaptivity section skipped: %s", exc)
        return Markup("")
    sw = res["switch"]
    parts: list[Any] = [
        Markup(
            '<p class="note">Reward A (<code>{}</code>) for {} loop steps, then reward B (<code>{}</code>), '
            "switched inside the same run. Metric: {}. Re-adaptation steps: steps after the switch until the "
            "moving average ({} steps) has covered {} of the way from its pre-switch level to its final "
            "level; a static filter decided once under A cannot move.</p>"
        ).format(sw["reward_a"], sw["at_step"], sw["reward_b"], res["metric"], res["config"]["window"],
                 f"{res['config']['frac']:.0%}")
    ]
    png = folder / PLOT_FILE
    if png.exists():
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            Markup(
                '<figure id="fig-adaptivity"><img alt="Adaptivity after a reward switch" '
                'src="data:image/png;base64,{}"><figcaption><b>Re-adaptation after a reward switch.</b> '
                "Thin lines: per step; thick: moving average; dotted verticals: the measured re-adaptation "
                "point of each policy; dashed black: the static filter. Lower is better under reward B."
                "</figcaption></figure>"
            ).format(b64)
        )
    rows = []
    for algo, run in res["policies"].items():
        m = run["readaptation"]
        rows.append(
            [
                str(algo),
                _f(m["pre"]),
                _f(m["final"]),
                str(m["steps"]) if m["steps"] is not None else "not reached",
                _f(run["seconds_per_step"]),
            ]
        )
    sm = res["static_filter"]["readaptation"]
    rows.append(
        ["static filter (reward A, decided once)", _f(sm["pre"]), _f(sm["final"]), "never", "\u2013"]
    )
    parts.append(
        _table(["policy", "toxic share before switch", "final", "re-adaptation steps", "s / step"], rows)
    )
    tr = res.get("transfer")
    if tr:
        trows = [
            [
                str(r["learner"]),
                _f(r["learner_params"]),
                str(r["policy"]),
                _f(r["toxic_share_selected"]),
                _f(r["train_loss_last_fifth"]),
                _f(r["heldout_clean_loss"]),
                _f(r["heldout_toxic_loss"]),
            ]
            for r in tr["learners"]
        ]
        parts.append(
            Markup(
                '<p class="note">Transfer: a {} policy learned under reward B with the nano learner, frozen '
                "and applied for {} loop steps with a larger learner, against a policy learned from scratch "
                "with the larger learner and random selection at the same budget. Lower toxic share and "
                "clean-text loss are better; a higher loss on toxic text means the model learned less toxic "
                "language.</p>"
            ).format(tr["algorithm"], tr["steps"])
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
    return _join(parts)
