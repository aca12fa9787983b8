"""The static, self-contained HTML report of an experiment: figures embedded as base64 PNG, tables with
intervals, and enough words around them that someone who did not run the experiment can read it.

The page is rendered with jinja2 templates (report/templates/) with autoescaping on: strategy labels,
config values and document text reach the page, so every value is escaped unless it is a ``Markup``
fragment built here (``Markup.format`` escapes its arguments too). Tables keep to a width that reads at
1400 px without horizontal scrolling: the full results are split into one table per suite, at most
``MAX_METRIC_COLUMNS`` metrics each, with the interval under its value.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from dynacure import __version__
from dynacure.io.atomic import write_text_atomic
from dynacure.report.data import SAFETY_METRICS, UTILITY_METRICS, RunData, aggregate, load_run, pick_metric
from dynacure.report.markup import (
    MAX_METRIC_COLUMNS,
    _est,
    _figure_html,
    _metric_header,
    _table,
    fmt,
    join,
    render,
)
from dynacure.report.plots import all_figures

log = logging.getLogger(__name__)

def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def _metric_table(data: RunData, keys: list[tuple[str, str]], table_id: str | None = None,
                  with_suite: bool = True) -> Markup:
    """Metrics ``keys`` per strategy x budget (x weights), combined over seeds, with 95% intervals."""
    res = data.results
    aggs = {k: aggregate(res, *k).set_index(["strategy", "budget", "weights"]) for k in keys}
    groups = (
        res[["strategy", "budget", "weights"]]
        .drop_duplicates()
        .sort_values(["budget", "strategy", "weights"])
    )
    multi_w = res["weights"].nunique() > 1
    header: list[Any] = ["strategy", "budget"] + (["reward weights"] if multi_w else []) + ["seeds"]
    header += [_metric_header(s, m, with_suite) for s, m in keys]
    rows = []
    for _, g in groups.iterrows():
        idx = (g["strategy"], g["budget"], g["weights"])
        have = [k for k in keys if idx in aggs[k].index]
        if not have:
            continue
        row: list[Any] = [str(g["strategy"]), fmt(g["budget"])]
        if multi_w:
            row.append(str(g["weights"]))
        row.append(str(max(int(aggs[k].loc[idx, "seeds"]) for k in have)))
        for k in keys:
            a = aggs[k]
            row.append(
                _est(a.loc[idx, "value"], a.loc[idx, "low"], a.loc[idx, "high"]) if idx in a.index else "n/a"
            )
        rows.append(row)
    return _table(header, rows, text_cols=3 if multi_w else 2, table_id=table_id, table_class="results")


def results_table(data: RunData) -> Markup:
    """The headline metrics (safety, utility) in one table, then every metric, one table per suite (split
    into tables of at most MAX_METRIC_COLUMNS metrics), combined over seeds with 95% intervals."""
    res = data.results
    if res.empty:
        return Markup("<p>No finished cells.</p>")
    keys = sorted({(s, m) for s, m in zip(res["suite"], res["metric"], strict=True)})
    headline = [k for k in (pick_metric(res, SAFETY_METRICS), pick_metric(res, UTILITY_METRICS)) if k]
    parts: list[Any] = [_metric_table(data, headline or keys[:MAX_METRIC_COLUMNS], table_id="results")]
    for suite in sorted({s for s, _ in keys}):
        mine = [k for k in keys if k[0] == suite]
        chunks = _chunks(mine, MAX_METRIC_COLUMNS)
        for i, chunk in enumerate(chunks):
            part = f" ({i + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            parts.append(Markup("<h3>Suite <code>{}</code>{}</h3>").format(suite, part))
            parts.append(_metric_table(data, chunk, table_id=f"results-{suite}-{i + 1}", with_suite=False))
    from dynacure.report.plots import METRIC_TEXT

    legend = [Markup("<b>{}</b>: {}").format(m, METRIC_TEXT[m]) for _, m in keys if m in METRIC_TEXT]
    if legend:
        parts.append(
            Markup('<p class="note">Columns: {}. Budget: the share of the pool\'s tokens the strategy '
                   "selected; seeds: how many seeds the row combines.</p>").format(join(legend, "; "))
        )
    return join(parts)


EFF_LABELS = [
    ("time_selection_s", "policy learning + selection (s)"),
    ("time_policy_learning_s", "of which policy learning (s)"),
    ("time_policy_apply_s", "of which applying the policy (s)"),
    ("time_training_s", "training (s)"),
    ("time_evaluation_s", "evaluation (s)"),
    ("share_selected_tokens", "share of pool tokens kept"),
    ("share_selected_docs", "share of pool docs kept"),
    ("train_tokens", "training tokens"),
    ("train_flops", "training FLOPs (6·N·T)"),
    ("curation_flops", "curation FLOPs"),
]


def efficiency_table(data: RunData) -> Markup:
    """Times, kept shares and FLOPs per strategy x budget (means over the cells, range over seeds): two
    tables, time and size, so the page needs no horizontal scrolling."""
    res = data.results
    if res.empty:
        return Markup("")
    per_cell = res.drop_duplicates("cell_id")
    rows = []
    for (strat, budget), g in per_cell.groupby(["strategy", "budget"], sort=True):
        row: list[Any] = [str(strat), fmt(budget), str(g["seed"].nunique())]
        for col, _ in EFF_LABELS:
            vals = g[col].astype(float) if col in g else pd.Series(dtype=float)
            if vals.notna().any():
                m = float(vals.mean())
                # the range over seeds in brackets, as an interval is shown elsewhere
                row.append(_est(m, float(vals.min()), float(vals.max())) if len(vals) > 1 else fmt(m))
            else:
                row.append("n/a")
        rows.append(row)
    split = 5  # the five time columns, then shares, tokens and FLOPs
    tables = []
    for lo, hi in ((0, split), (split, len(EFF_LABELS))):
        header = ["strategy", "budget", "cells"] + [lab for _, lab in EFF_LABELS[lo:hi]]
        tables.append(_table(header, [r[:3] + r[3 + lo : 3 + hi] for r in rows], text_cols=1))
    scoring = per_cell["time_scoring_s"].astype(float)
    note = (
        Markup(
            '<p class="note">Scoring the corpus took {} s, once for the whole '
            "experiment (every strategy selects from the same attribute tables). Values are means over the "
            "cells of a row; brackets give the range over seeds. Training FLOPs are estimated as "
            "6 × parameters × training tokens; curation FLOPs count the model work of deciding (a learned "
            "policy's own learner and probes, 6·N·T for training and 2·N·T for forward passes; "
            "CoLoR-Filter's and ICA's prior/conditional models) and read n/a where the strategy only reads "
            "stored scores. Policy learning is n/a for CoLoR and ICA, which fit their models while "
            "scoring.</p>"
        ).format(fmt(float(scoring.iloc[0])))
        if len(scoring) and math.isfinite(float(scoring.iloc[0]))
        else ""
    )
    return join([*tables, note])


def ablation_table(data: RunData) -> Markup:
    """Variants of one strategy (several labels of one registry name, or several reward-weight sets)."""
    res = data.results
    if res.empty:
        return Markup("")
    s_key = pick_metric(res, SAFETY_METRICS)
    u_key = pick_metric(res, UTILITY_METRICS)
    keys = [k for k in (s_key, u_key) if k is not None]
    if not keys:
        return Markup("")
    combos = res[["strategy_name", "strategy", "weights", "params", "reward_weights"]].drop_duplicates()
    variants = combos.groupby("strategy_name").filter(lambda g: len(g) > 1)
    if variants.empty:
        return Markup("")
    aggs = {
        k: aggregate(res, *k, by=("strategy", "weights")).set_index(["strategy", "weights"]) for k in keys
    }
    rows = []
    for _, v in variants.sort_values(["strategy_name", "strategy", "weights"]).iterrows():
        idx = (v["strategy"], v["weights"])
        params = json.loads(v["params"]) if v["params"] else {}
        weights = json.loads(v["reward_weights"]) if v["reward_weights"] else {}
        row: list[Any] = [
            str(v["strategy_name"]),
            str(v["strategy"]),
            str(v["weights"]),
            ", ".join(f"{k}={val:g}" for k, val in weights.items()),
            json.dumps(params, sort_keys=True) if params else "\u2013",
        ]
        for k in keys:
            a = aggs[k]
            row.append(
                _est(a.loc[idx, "value"], a.loc[idx, "low"], a.loc[idx, "high"]) if idx in a.index else "n/a"
            )
        rows.append(row)
    header: list[Any] = ["strategy", "variant", "weight set", "reward weights", "params"]
    header += [_metric_header(s, m, with_suite=False) for s, m in keys]
    return _table(header, rows, text_cols=5)


def _overview(data: RunData) -> Markup:
    cfg = data.experiment.get("config", {})
    corpus = data.experiment.get("corpus", {})
    res = data.results
    items = [
        ("experiment", data.name),
        ("corpus", corpus.get("description", str(cfg.get("corpus", {}).get("kind", "?")))),
        ("documents / tokens in pool", f"{corpus.get('n_docs', 'n/a')} / {corpus.get('n_tokens', 'n/a')}"),
        ("strategies", ", ".join(sorted(map(str, res["strategy"].unique())))),
        ("budgets (share of pool tokens)", ", ".join(fmt(b) for b in sorted(res["budget"].unique()))),
        ("seeds", ", ".join(str(s) for s in sorted(res["seed"].unique()))),
        ("reward weight sets", ", ".join(sorted(map(str, res["weights"].unique())))),
        ("learner", _learner_text(cfg.get("learner", {}))),
        ("evaluation suites", ", ".join(cfg.get("evaluation", {}).get("suites", []))),
        ("signals scored", ", ".join(cfg.get("scoring", {}).get("signals", []))),
        ("cells finished", str(res["cell_id"].nunique())),
    ]
    dl = join((Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in items), "")
    return Markup('<dl class="meta">{}</dl>').format(dl)


def _learner_text(lc: dict) -> str:
    if not lc:
        return "n/a"
    what = f"HF model at {lc['hf_path']}" if lc.get("hf_path") else f"TinyGPT preset '{lc.get('preset')}'"
    return f"{what}, {lc.get('max_tokens')} training tokens per cell, on {lc.get('device', 'cpu')}"


def _skipped(data: RunData) -> Markup:
    items = []
    for cid, cell in sorted(data.cells.items()):
        try:
            m = json.loads((data.root / "cells" / cid / "metrics.json").read_text())
        except OSError:
            continue
        for suite, r in m.get("suites", {}).items():
            if r.get("skipped"):
                items.append(f"{cell.get('strategy', cid)} / {suite}: {r['skipped']}")
    uniq = sorted(set(items))
    if not uniq:
        return Markup("")
    return Markup("<ul>{}</ul>").format(join((Markup("<li>{}</li>").format(i) for i in uniq), ""))


def render_report(data: RunData) -> str:
    figs = all_figures(data)
    by_key = {f.key: f for f in figs}
    from dynacure.report.sections import adaptivity_section, audit_section, paired_section, who_wins_section

    sections: list[dict[str, Any]] = []

    def add(sid: str, title: str, *body: Any) -> None:
        sections.append({"id": sid, "title": title, "body": join(body)})

    add("who-wins", "Who wins", who_wins_section(data))
    add("what-was-run", "What was run", _overview(data))
    if "pareto" in by_key:
        add("safety-vs-utility", "Safety vs utility", _figure_html(by_key["pareto"]))
    results: list[Any] = [
        Markup(
            '<p class="note">Each cell: value with its 95% interval in brackets (bootstrap over prompts or '
            "texts; with several seeds, combined with the spread between seeds). Every strategy's learner "
            "trained on the same number of tokens. The first table holds the headline metrics; below it, "
            "every metric, one table per suite.</p>"
        ),
        results_table(data),
    ]
    if "by_budget" in by_key:
        results.append(_figure_html(by_key["by_budget"]))
    add("results", "Results", *results)
    paired = paired_section(data)
    if paired:
        add("paired", "Paired differences", paired)
    if "curves" in by_key:
        add("curves", "Training and reward curves", _figure_html(by_key["curves"]))
    if "keepdrop" in by_key:
        add("keep-drop", "What each strategy keeps and drops", _figure_html(by_key["keepdrop"]))
    add("efficiency", "Efficiency", efficiency_table(data))
    audit = audit_section(data)
    if audit:
        add("audit", "Curation bias audit", audit)
    adapt = adaptivity_section(data.root)
    if adapt:
        add("adaptivity", "Adaptivity: a reward switch in the middle of a run", adapt)
    abl = ablation_table(data)
    if abl:
        add(
            "ablations",
            "Ablations",
            Markup(
                '<p class="note">Variants of one strategy side by side (different '
                "parameters or reward weights), combined over seeds, with 95% intervals.</p>"
            ),
            abl,
        )
    skipped = _skipped(data)
    if skipped:
        add("skipped", "Suites that did not run", skipped)
    lead = (
        "Which data-selection strategy gives a trained language model fewer toxic continuations without "
        "losing its ability to model clean text? Each strategy selected documents from the same scored pool "
        "at the same token budget; a learner from the same starting point was trained on each selection for "
        "the same number of tokens and then evaluated."
    )
    return str(
        render(
            "report.html",
            title=data.name,
            lead=lead,
            sections=sections,
            version=__version__,
            written_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            runs=str(data.root),
        )
    )


def build_report(runs: str | Path, out: str | Path | None = None) -> Path:
    """Render the report of ``runs`` into ``out`` (default RUNS/report.html), atomically."""
    data = load_run(runs)
    if data.results.empty:
        raise ValueError(f"{runs}: the results table has no rows (no finished cells to report)")
    target = Path(out) if out is not None else Path(runs) / "report.html"
    write_text_atomic(target, render_report(data))
    log.info("report written to %s", target)
    return target


__all__ = ["build_report", "render_report", "results_table", "efficiency_table", "ablation_table"]
