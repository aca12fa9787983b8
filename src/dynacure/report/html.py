"""The static, self-contained HTML report of an experiment: figures embedded as base64 PNG, tables with
intervals, and enough words around them that someone who did not run the experiment can read it."""

from __future__ import annotations

import html
import json
import logging
import math
import time
from importlib import resources
from pathlib import Path
from string import Template

import pandas as pd

from dynacure import __version__
from dynacure.io.atomic import write_text_atomic
from dynacure.report.data import SAFETY_METRICS, UTILITY_METRICS, RunData, aggregate, load_run, pick_metric
from dynacure.report.plots import Figure, all_figures

log = logging.getLogger(__name__)

# Metrics where a higher value is better; every other metric in the tables is "lower is better" or neutral.
HIGHER_IS_BETTER_HINTS = ("accuracy", "acc", "mc1", "mc2", "refusal_rate_unsafe", "preference")
LOWER_IS_BETTER_HINTS = ("toxicity", "perplexity", "ppl", "false_refusal", "bias")


def fmt(x: float | int | None) -> str:
    """Three significant digits; thousands separators for large counts; scientific for FLOPs."""
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1e7 or ax < 1e-3:
        return f"{x:.2e}"
    if ax >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _est(value: float, low: float, high: float) -> str:
    if not math.isfinite(low) or not math.isfinite(high):
        return f"{fmt(value)}"
    return f'{fmt(value)} <span class="ci">[{fmt(low)}, {fmt(high)}]</span>'


def direction(metric: str) -> str:
    m = metric.lower()
    if any(h in m for h in LOWER_IS_BETTER_HINTS):
        return "lower is better"
    if any(h in m for h in HIGHER_IS_BETTER_HINTS):
        return "higher is better"
    return ""


def _table(header: list[str], rows: list[list[str]], text_cols: int = 1, table_id: str | None = None) -> str:
    out = [f'<table id="{table_id}">' if table_id else "<table>", "<thead><tr>"]
    out += [f'<th class="{"text" if i < text_cols else ""}">{h}</th>' for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append(
            "<tr>"
            + "".join(f'<td class="{"text" if i < text_cols else ""}">{c}</td>' for i, c in enumerate(r))
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def results_table(data: RunData) -> str:
    """Every metric per strategy x budget x weights, combined over seeds, with 95% intervals."""
    res = data.results
    if res.empty:
        return "<p>No finished cells.</p>"
    keys = sorted({(s, m) for s, m in zip(res["suite"], res["metric"], strict=True)})
    aggs = {k: aggregate(res, *k).set_index(["strategy", "budget", "weights"]) for k in keys}
    groups = (
        res[["strategy", "budget", "weights"]]
        .drop_duplicates()
        .sort_values(["budget", "strategy", "weights"])
    )
    multi_w = res["weights"].nunique() > 1
    header = ["strategy", "budget"] + (["reward weights"] if multi_w else []) + ["seeds"]
    header += [f"{html.escape(m)}<br><small>{html.escape(s)}; {direction(m)}</small>" for s, m in keys]
    rows = []
    for _, g in groups.iterrows():
        idx = (g["strategy"], g["budget"], g["weights"])
        row = [html.escape(str(g["strategy"])), fmt(g["budget"])]
        if multi_w:
            row.append(html.escape(str(g["weights"])))
        seeds = max((int(aggs[k].loc[idx, "seeds"]) for k in keys if idx in aggs[k].index), default=0)
        row.append(str(seeds))
        for k in keys:
            a = aggs[k]
            row.append(
                _est(a.loc[idx, "value"], a.loc[idx, "low"], a.loc[idx, "high"]) if idx in a.index else "n/a"
            )
        rows.append(row)
    from dynacure.report.plots import METRIC_TEXT

    legend = [f"<b>{html.escape(m)}</b>: {html.escape(METRIC_TEXT[m])}" for _, m in keys if m in METRIC_TEXT]
    note = (
        '<p class="note">Columns: ' + "; ".join(legend) + ". Budget: the share of the pool's tokens the "
        "strategy selected; seeds: how many seeds the row combines.</p>"
        if legend
        else ""
    )
    return _table(header, rows, text_cols=3 if multi_w else 2, table_id="results") + note


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


def efficiency_table(data: RunData) -> str:
    res = data.results
    if res.empty:
        return ""
    per_cell = res.drop_duplicates("cell_id")
    rows = []
    for (strat, budget), g in per_cell.groupby(["strategy", "budget"], sort=True):
        row = [html.escape(str(strat)), fmt(budget), str(g["seed"].nunique())]
        for col, _ in EFF_LABELS:
            vals = g[col].astype(float) if col in g else pd.Series(dtype=float)
            if vals.notna().any():
                m = float(vals.mean())
                spread = (
                    f' <span class="ci">[{fmt(vals.min())}, {fmt(vals.max())}]</span>'
                    if len(vals) > 1
                    else ""
                )
                row.append(fmt(m) + spread)
            else:
                row.append("n/a")
        rows.append(row)
    header = ["strategy", "budget", "cells"] + [lab for _, lab in EFF_LABELS]
    scoring = per_cell["time_scoring_s"].astype(float)
    note = (
        f'<p class="note">Scoring the corpus took {fmt(float(scoring.iloc[0]))} s, once for the whole '
        "experiment (every strategy selects from the same attribute tables). Values are means over the "
        "cells of a row; brackets give the range over seeds. Training FLOPs are estimated as "
        "6 × parameters × training tokens; curation FLOPs count the model work of deciding (a learned "
        "policy's own learner and probes, 6·N·T for training and 2·N·T for forward passes; "
        "CoLoR-Filter's and ICA's prior/conditional models) and read n/a where the strategy only reads "
        "stored scores. Policy learning is n/a for CoLoR and ICA, which fit their models while scoring.</p>"
        if len(scoring) and math.isfinite(float(scoring.iloc[0]))
        else ""
    )
    return _table(header, rows, text_cols=1) + note


def ablation_table(data: RunData) -> str:
    """Variants of one strategy (several labels of one registry name, or several reward-weight sets)."""
    res = data.results
    if res.empty:
        return ""
    s_key = pick_metric(res, SAFETY_METRICS)
    u_key = pick_metric(res, UTILITY_METRICS)
    keys = [k for k in (s_key, u_key) if k is not None]
    if not keys:
        return ""
    combos = res[["strategy_name", "strategy", "weights", "params", "reward_weights"]].drop_duplicates()
    variants = combos.groupby("strategy_name").filter(lambda g: len(g) > 1)
    if variants.empty:
        return ""
    aggs = {
        k: aggregate(res, *k, by=("strategy", "weights")).set_index(["strategy", "weights"]) for k in keys
    }
    rows = []
    for _, v in variants.sort_values(["strategy_name", "strategy", "weights"]).iterrows():
        idx = (v["strategy"], v["weights"])
        params = json.loads(v["params"]) if v["params"] else {}
        weights = json.loads(v["reward_weights"]) if v["reward_weights"] else {}
        row = [
            html.escape(v["strategy_name"]),
            html.escape(v["strategy"]),
            html.escape(str(v["weights"])),
            html.escape(", ".join(f"{k}={val:g}" for k, val in weights.items())),
            html.escape(json.dumps(params, sort_keys=True)) if params else "&ndash;",
        ]
        for k in keys:
            a = aggs[k]
            row.append(
                _est(a.loc[idx, "value"], a.loc[idx, "low"], a.loc[idx, "high"]) if idx in a.index else "n/a"
            )
        rows.append(row)
    header = ["strategy", "variant", "weight set", "reward weights", "params"]
    header += [f"{k[1]}<br><small>{direction(k[1])}</small>" for k in keys]
    return _table(header, rows, text_cols=5)


def _overview(data: RunData) -> str:
    cfg = data.experiment.get("config", {})
    corpus = data.experiment.get("corpus", {})
    res = data.results
    items = [
        ("experiment", data.name),
        ("corpus", html.escape(corpus.get("description", str(cfg.get("corpus", {}).get("kind", "?"))))),
        ("documents / tokens in pool", f"{corpus.get('n_docs', 'n/a')} / {corpus.get('n_tokens', 'n/a')}"),
        ("strategies", html.escape(", ".join(sorted(res["strategy"].unique())))),
        ("budgets (share of pool tokens)", ", ".join(fmt(b) for b in sorted(res["budget"].unique()))),
        ("seeds", ", ".join(str(s) for s in sorted(res["seed"].unique()))),
        ("reward weight sets", html.escape(", ".join(sorted(res["weights"].unique())))),
        ("learner", html.escape(_learner_text(cfg.get("learner", {})))),
        ("evaluation suites", html.escape(", ".join(cfg.get("evaluation", {}).get("suites", [])))),
        ("signals scored", html.escape(", ".join(cfg.get("scoring", {}).get("signals", [])))),
        ("cells finished", str(res["cell_id"].nunique())),
    ]
    return '<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _learner_text(lc: dict) -> str:
    if not lc:
        return "n/a"
    what = f"HF model at {lc['hf_path']}" if lc.get("hf_path") else f"TinyGPT preset '{lc.get('preset')}'"
    return f"{what}, {lc.get('max_tokens')} training tokens per cell, on {lc.get('device', 'cpu')}"


def _figure_html(f: Figure) -> str:
    return (
        f'<figure id="fig-{f.key}"><img alt="{html.escape(f.title)}" src="data:image/png;base64,'
        f'{f.png_base64}"><figcaption><b>{html.escape(f.title)}.</b> {html.escape(f.caption)}</figcaption>'
        "</figure>"
    )


def _skipped(data: RunData) -> str:
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
        return ""
    return (
        "<h2>Suites that did not run</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in uniq) + "</ul>"
    )


def render_report(data: RunData) -> str:
    figs = all_figures(data)
    by_key = {f.key: f for f in figs}
    parts = ["<h2>What was run</h2>", _overview(data)]
    if "pareto" in by_key:
        parts += ["<h2>Safety vs utility</h2>", _figure_html(by_key["pareto"])]
    parts += [
        "<h2>Results</h2>",
        '<p class="note">Each cell: value with its 95% interval in brackets (bootstrap over prompts or '
        "texts; with several seeds, combined with the spread between seeds). Every strategy's learner "
        "trained on the same number of tokens.</p>",
        results_table(data),
    ]
    if "by_budget" in by_key:
        parts.append(_figure_html(by_key["by_budget"]))
    if "curves" in by_key:
        parts += ["<h2>Training and reward curves</h2>", _figure_html(by_key["curves"])]
    if "keepdrop" in by_key:
        parts += ["<h2>What each strategy keeps and drops</h2>", _figure_html(by_key["keepdrop"])]
    parts += ["<h2>Efficiency</h2>", efficiency_table(data)]
    from dynacure.report.sections import adaptivity_section, audit_section

    audit = audit_section(data)
    if audit:
        parts += ["<h2>Curation bias audit</h2>", audit]
    adapt = adaptivity_section(data.root)
    if adapt:
        parts += ["<h2>Adaptivity: a reward switch in the middle of a run</h2>", adapt]
    abl = ablation_table(data)
    if abl:
        parts += [
            "<h2>Ablations</h2>",
            '<p class="note">Variants of one strategy side by side (different '
            "parameters or reward weights), combined over seeds, with 95% intervals.</p>",
            abl,
        ]
    parts.append(_skipped(data))
    page = Template((resources.files("dynacure.report") / "templates" / "report.html").read_text("utf-8"))
    lead = (
        "Which data-selection strategy gives a trained language model fewer toxic continuations without "
        "losing its ability to model clean text? Each strategy selected documents from the same scored pool "
        "at the same token budget; a fresh learner was trained on each selection for the same number of "
        "tokens and then evaluated."
    )
    return page.substitute(
        title=html.escape(data.name),
        lead=lead,
        body="\n".join(parts),
        version=__version__,
        written_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        runs=html.escape(str(data.root)),
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
