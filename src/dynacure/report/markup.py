"""The report's HTML fragments: the jinja2 environment (autoescaping on), number formatting, tables and
metric headers, shared by the page (``report.html``) and its sections (``report.sections``) so neither
imports the other for them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2
from markupsafe import Markup

from dynacure.experiments.paired import lower_is_better

MAX_METRIC_COLUMNS = 5  # per results table: beside the labels this keeps a table under ~1000 px

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dynacure.report", "templates"),
    autoescape=True,  # also for templates whose name does not end in .html
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> Markup:
    """A template of report/templates rendered with ``context`` (escaped unless Markup)."""
    return Markup(_ENV.get_template(template).render(**context))


def join(parts: Iterable[Any], sep: str = "\n") -> Markup:
    """Fragments joined into one; plain strings among them are escaped."""
    return Markup(sep).join(parts)


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


def _est(value: float, low: float, high: float) -> Markup | str:
    """A value with its interval (the interval in a span the stylesheet puts under it in tables)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return fmt(value)
    return Markup('{} <span class="ci">[{}, {}]</span>').format(fmt(value), fmt(low), fmt(high))


def direction(metric: str) -> str:
    """'lower is better' / 'higher is better' / '' (the orientation the paired table uses)."""
    lib = lower_is_better(metric)
    return "" if lib is None else ("lower is better" if lib else "higher is better")


def _table(header: Sequence[Any], rows: Sequence[Sequence[Any]], text_cols: int = 1,
           table_id: str | None = None, table_class: str | None = None) -> Markup:
    """A table from templates/table.html; cells are text (escaped), Markup, or {"v": ..., "cls": ...}."""
    return render("table.html", header=list(header), rows=[list(r) for r in rows], text_cols=text_cols,
                  table_id=table_id, table_class=table_class)


def _metric_header(suite: str, metric: str, with_suite: bool = True) -> Markup:
    """A metric column's header: the name, breakable after each underscore (so a long name does not widen
    its column past the numbers), and under it the suite and which way is better."""
    name = Markup("_<wbr>").join(metric.split("_"))
    note = "; ".join(x for x in ((suite if with_suite else ""), direction(metric)) if x)
    return Markup("{}<br><small>{}</small>").format(name, note) if note else name


def _figure_html(f: Any) -> Markup:
    """An embedded figure (a ``report.plots.Figure``) rendered by templates/figure.html."""
    return render("figure.html", key=f.key, title=f.title, caption=f.caption, png_base64=f.png_base64)
