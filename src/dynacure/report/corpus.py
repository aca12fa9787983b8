"""The report page of a curated corpus (a ``dynacure curate`` output folder): what was curated, the
composition by source (documents and tokens kept), the drops by reason, and the distribution of each
stored score among kept and dropped documents.

Everything comes from the folder: ``summary.json`` (counts by source and by reason), ``manifest.parquet``
(one decision per record) and the attribute tables the strategy read (``OUT/attributes``, or the
``--attributes`` folder its run record names). The figures are counts of this one corpus, exact rather
than estimated, so they carry no interval."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from dynacure import __version__
from dynacure.report.markup import _figure_html, _table, fmt, join, render

log = logging.getLogger(__name__)

MAX_SCORE_COLUMNS = 8  # score columns drawn (the first ones by name); every one is in the table
BINS = 20


def _share(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _overview(summary: dict[str, Any], run: dict[str, Any], folder: Path) -> Markup:
    cfg = run.get("config", {})
    kept_tok, pool_tok = summary.get("tokens_kept", 0), summary.get("tokens_pool", 0)
    items = [
        ("folder", str(folder)),
        ("input corpus", str(cfg.get("corpus", "n/a"))),
        ("strategy", str(summary.get("strategy", cfg.get("strategy", "n/a")))),
        ("parameters", json.dumps(summary.get("params") or {}, sort_keys=True)),
        ("reward weights", json.dumps(summary.get("weights")) if summary.get("weights") else "n/a"),
        ("budget (share of pool tokens)", f"{fmt(summary.get('budget'))}; kept {fmt(kept_tok)} of "
                                          f"{fmt(pool_tok)} tokens ({_share(kept_tok, pool_tok)})"),
        ("records read", fmt(summary.get("records_read"))),
        ("kept / dropped / quarantined", f"{fmt(summary.get('kept'))} / {fmt(summary.get('dropped'))} / "
                                         f"{fmt(summary.get('quarantined'))}"),
        ("disparity cap", fmt(summary.get("disparity_cap")) if summary.get("disparity_cap") else "none"),
        ("PII redacted", "yes" if summary.get("redact_pii") else "no"),
        ("seed", str(summary.get("seed", "n/a"))),
    ]
    dl = join((Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in items), "")
    return Markup('<dl class="meta">{}</dl>').format(dl)


def composition_table(summary: dict[str, Any]) -> Markup:
    """Per source: documents read, kept, the kept share, tokens kept and their share of the kept tokens."""
    by_source = summary.get("by_source") or {}
    if not by_source:
        return Markup('<p class="note">The summary has no per-source counts (the records carry no '
                      "source).</p>")
    total_tok = float(sum(v.get("tokens_kept", 0) for v in by_source.values()))
    rows = []
    for src, v in sorted(by_source.items(), key=lambda kv: -kv[1].get("tokens_kept", 0)):
        docs, kept, tok = v.get("documents", 0), v.get("kept", 0), v.get("tokens_kept", 0)
        rows.append([str(src), fmt(docs), fmt(kept), _share(kept, docs), fmt(tok), _share(tok, total_tok)])
    header = ["source", "documents", "kept", "kept share", "tokens kept", "share of kept tokens"]
    return _table(header, rows, text_cols=1, table_id="composition")


def composition_figure(summary: dict[str, Any]) -> Any:
    """Per source: the documents read and kept (bars), so what the strategy took from each reads at once."""
    import matplotlib.pyplot as plt

    from dynacure.report.plots import Figure, _png

    by_source = summary.get("by_source") or {}
    if not by_source:
        return None
    items = sorted(by_source.items(), key=lambda kv: kv[1].get("documents", 0))
    names = [str(k) for k, _ in items]
    docs = np.array([v.get("documents", 0) for _, v in items], dtype=float)
    kept = np.array([v.get("kept", 0) for _, v in items], dtype=float)
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(names) + 1.2))
    y = np.arange(len(names))
    ax.barh(y, docs, color="#ced4da", label="documents read")
    ax.barh(y, kept, color="#2b8a3e", label="kept")
    for i in range(len(names)):
        share = f"{100 * kept[i] / docs[i]:.0f}% kept" if docs[i] else "n/a"
        ax.text(docs[i], y[i], f"  {share}", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xlabel("documents")
    ax.set_xlim(0, max(docs.max(), 1.0) * 1.25)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    caption = ("Documents read (grey) and kept (green) per source, with the kept share; the table above has "
               "the tokens kept and their share of the curated corpus.")
    return Figure("composition", "Composition by source", caption, _png(fig))


def reasons_table(summary: dict[str, Any]) -> Markup:
    """Every decision reason: how many records it kept, dropped or quarantined, and the share of all."""
    total = float(summary.get("records_read") or 0)
    rows = []
    for label, key in (("dropped", "dropped_by_reason"), ("kept", "kept_by_reason"),
                       ("quarantined", "quarantined_by_reason")):
        for reason, n in sorted((summary.get(key) or {}).items(), key=lambda kv: -kv[1]):
            rows.append([label, str(reason), fmt(n), _share(n, total)])
    if not rows:
        return Markup('<p class="note">No decision reasons recorded.</p>')
    return _table(["decision", "reason", "records", "share of records read"], rows, text_cols=2,
                  table_id="reasons")


def attributes_dir(folder: Path, run: dict[str, Any]) -> Path | None:
    """Where the scores the strategy read are: OUT/attributes, else the run's --attributes folder."""
    if (folder / "attributes").is_dir():
        return folder / "attributes"
    given = run.get("config", {}).get("attributes")
    rel = run.get("relative_paths", {}).get("attributes")
    for cand in ([Path(given)] if given else []) + ([folder / rel] if rel else []):
        if cand.is_dir():
            return cand
    return None


def scores_with_decisions(folder: Path, run: dict[str, Any]) -> pd.DataFrame | None:
    """The stored score columns joined with each document's decision (quarantined records left out)."""
    from dynacure.io.attributes import read_attributes

    attrs_dir = attributes_dir(folder, run)
    if attrs_dir is None:
        return None
    try:
        attrs = read_attributes(attrs_dir)
    except (FileNotFoundError, OSError, ValueError) as exc:
        log.warning("%s: scores not read (%s)", attrs_dir, exc)
        return None
    man = pd.read_parquet(folder / "manifest.parquet", columns=["id", "decision"])
    man = man[man["decision"] != "quarantined"]
    return man.merge(attrs, on="id", how="left")


def score_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in ("id", "decision") and pd.api.types.is_numeric_dtype(df[c])
            and df[c].notna().any()]


def score_table(df: pd.DataFrame, cols: list[str]) -> Markup:
    """Per score column: documents scored, then mean / median / 90th percentile among kept and dropped."""
    rows = []
    for c in cols:
        row: list[Any] = [c, fmt(int(df[c].notna().sum()))]
        for decision in ("keep", "drop"):
            v = df.loc[df["decision"] == decision, c].dropna().to_numpy(dtype=float)
            row += ([fmt(v.mean()), fmt(np.median(v)), fmt(np.quantile(v, 0.9))] if len(v)
                    else ["n/a", "n/a", "n/a"])
        rows.append(row)
    header = ["score", "scored", "kept: mean", "kept: median", "kept: 90th pct.",
              "dropped: mean", "dropped: median", "dropped: 90th pct."]
    return _table(header, rows, text_cols=1, table_id="scores")


def score_figure(df: pd.DataFrame, cols: list[str]) -> Any:
    """Histograms of each score among kept and dropped documents, one panel per score."""
    import matplotlib.pyplot as plt

    from dynacure.report.plots import Figure, _png

    shown = cols[:MAX_SCORE_COLUMNS]
    ncol = min(2, len(shown))
    nrow = int(np.ceil(len(shown) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.0 * nrow), squeeze=False)
    for ax, c in zip(axes.flat, shown, strict=False):
        vals = df[c].to_numpy(dtype=float)
        ok = np.isfinite(vals)
        lo, hi = (float(vals[ok].min()), float(vals[ok].max())) if ok.any() else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, BINS + 1)
        for decision, color in (("keep", "#2b8a3e"), ("drop", "#c92a2a")):
            v = vals[ok & (df["decision"] == decision).to_numpy()]
            ax.hist(v, bins=edges, alpha=0.55, color=color, label=f"{decision} ({len(v)})")
        ax.set_title(c, fontsize=9)
        ax.set_ylabel("documents")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.tight_layout()
    more = f" The first {MAX_SCORE_COLUMNS} score columns are drawn; the table has all." \
        if len(cols) > MAX_SCORE_COLUMNS else ""
    caption = ("Distribution of each stored score among the documents the strategy kept (green) and dropped "
               f"(red); the legend counts the documents.{more}")
    return Figure("scores", "Score distributions: kept vs dropped", caption, _png(fig))


def _composition(summary: dict[str, Any]) -> Markup:
    table, fig = composition_table(summary), composition_figure(summary)
    return join([table, _figure_html(fig)]) if fig is not None else table


def render_corpus(folder: str | Path) -> str:
    """The page of the curated corpus in ``folder``."""
    root = Path(folder)
    summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    run_path = root / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.is_file() else {}
    sections = [{"id": "what-was-curated", "title": "What was curated",
                 "body": _overview(summary, run, root)},
                {"id": "composition", "title": "Composition by source", "body": _composition(summary)},
                {"id": "drops", "title": "Drops by reason", "body": reasons_table(summary)}]
    df = scores_with_decisions(root, run)
    cols = score_columns(df) if df is not None else []
    if cols:
        body = join([score_table(df, cols), _figure_html(score_figure(df, cols))])
    else:
        body = Markup('<p class="note">No stored scores found (neither OUT/attributes nor the '
                      "<code>--attributes</code> folder of the run): the strategy read none.</p>")
    sections.append({"id": "scores", "title": "Score distributions", "body": body})
    lead = ("What one curation run kept and why: the strategy's decisions over every record of the input "
            "corpus at its token budget.")
    return str(render("report.html", title=f"curated corpus {root.name}", lead=lead, sections=sections,
                      version=__version__, written_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      runs=str(root), footer="Counts of this one curation run, exact: no interval."))
