"""The report's figures (matplotlib, rendered off-screen to PNG and embedded as base64).

Each function returns a :class:`Figure` with the image and a caption that says what is shown and which
direction is better, or ``None`` when the runs hold nothing to plot for it; its ``*_figure`` twin returns
the matplotlib figure itself (the tests inspect what is drawn).

Readability rules every figure keeps: each strategy has its own colour and, where points can overlap, its
own marker shape (edged, slightly transparent, coinciding ones nested larger-underneath); every legend entry
is an artist that is really drawn (no proxy entries, no Pareto line of one point); point labels are placed
where they overlap no other label or marker; a value of 0 is a visible thin bar marked "0", a missing value
is marked "n/a".
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered into the HTML page

import matplotlib.collections  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backend_bases import RendererBase  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from dynacure.report.data import (  # noqa: E402
    SAFETY_METRICS,
    UTILITY_METRICS,
    RunData,
    aggregate,
    keep_shares,
    pareto_mask,
    pick_metric,
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
MARKER_AREA = 64.0  # points^2 of a Pareto point on its own; overlapping points are drawn larger underneath
NEST_DISTANCE = 0.4  # markers closer than this share of a diameter are drawn nested ...
NEST_STEP = 0.5  # ... each one this share of a diameter wider than the one drawn over it
POINT_LABEL = "point-label"  # gid of the Pareto plot's point labels (the tests find them by it)
VALUE_LABEL = "bar-value"  # gid of the numbers printed over bars
MISSING_LABEL = "missing-value"  # gid of the "n/a" marks where a strategy has no value
ZERO_BAR_SHARE = 0.015  # a value of 0 is drawn as a bar this share of the axis high (clear of the spine)

# What a metric measures, in words, for axis labels and the report's column legend.
METRIC_TEXT = {
    "toxicity_probability": "toxicity probability: share of prompts with at least one toxic continuation",
    "toxicity_prob": "toxicity probability: share of prompts with at least one toxic continuation",
    "expected_max_toxicity": "expected maximum toxicity over a prompt's continuations",
    "heldout_word_ppl": "perplexity per word on held-out clean text",
    "heldout_token_ppl": "perplexity per token on held-out clean text",
    "wikitext2_word_ppl": "perplexity per word on WikiText-2",
    "wikitext2_token_ppl": "perplexity per token on WikiText-2",
    "ptb_word_ppl": "perplexity per word on Penn Treebank",
}
SHORT_TEXT = {
    "toxicity_probability": "toxicity probability",
    "toxicity_prob": "toxicity probability",
    "expected_max_toxicity": "expected max. toxicity",
    "heldout_word_ppl": "held-out perplexity (per word)",
    "heldout_token_ppl": "held-out perplexity (per token)",
    "wikitext2_word_ppl": "WikiText-2 perplexity (per word)",
    "wikitext2_token_ppl": "WikiText-2 perplexity (per token)",
    "ptb_word_ppl": "PTB perplexity (per word)",
}


def short_name(metric: str) -> str:
    return SHORT_TEXT.get(metric, metric.replace("_", " "))


def _thousands(ax: plt.Axes) -> None:
    """Tick labels such as 40k instead of 40000, so long token axes do not run into each other."""
    ax.xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k" if abs(v) >= 1000 else f"{v:g}")
    )


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    png_base64: str


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _as_figure(built: tuple[plt.Figure, str] | None, key: str, title: str) -> Figure | None:
    """A built matplotlib figure and its caption as the report's embedded PNG (None: nothing to draw)."""
    if built is None:
        return None
    fig, caption = built
    return Figure(key, title, caption, _png(fig))


def strategy_colors(strategies: list[str]) -> dict[str, tuple[float, ...]]:
    cmap = plt.get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(strategies)}


def _seeds_note(df: pd.DataFrame) -> str:
    k = int(df["seeds"].max()) if len(df) else 0
    if k <= 1:
        return "one seed; bars are 95% bootstrap intervals over prompts/texts"
    return (
        f"mean over {k} seeds; bars are 95% intervals combining the bootstrap interval of each seed "
        "with the spread between seeds"
    )


def strategy_markers(strategies: list[str]) -> dict[str, str]:
    """A marker shape per strategy (with its colour), so points that overlap still tell apart."""
    return {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(strategies)}


def _overlap(a: Bbox, b: Bbox) -> float:
    """Area two display boxes share (0 when they only touch)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return float(w * h) if w > 0 and h > 0 else 0.0


def text_box(text: matplotlib.text.Text, renderer: RendererBase) -> Bbox:
    """The display box of a text's glyphs only (an annotation's own extent also covers its leader line)."""
    if isinstance(text, matplotlib.text.Annotation):
        text.update_positions(renderer)
    return matplotlib.text.Text.get_window_extent(text, renderer)


_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))


def place_labels(ax: plt.Axes, points: list[tuple[float, float]], texts: list[str], radii_pt: list[float],
                 obstacles_pt: list[tuple[float, float, float]] | None = None,
                 fontsize: float = 8.0) -> list[matplotlib.text.Annotation]:
    """Label each point where its text overlaps no other label and no marker, and stays inside the axes.

    Greedy, in display coordinates with the renderer's own text extents: offsets around the point at growing
    distances (8 directions each); the first free one wins, else the one with the least overlap. A label
    pushed away from its point gets a thin leader line. ``radii_pt`` are the points' marker radii and
    ``obstacles_pt`` further markers (x, y, radius) the labels must not cover. The axes limits must be final.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    marks = [(x, y, r) for (x, y), r in zip(points, radii_pt, strict=True)] + list(obstacles_pt or [])
    centres = ax.transData.transform(np.asarray([(x, y) for x, y, _ in marks], dtype=float).reshape(-1, 2))
    marker_boxes = [Bbox.from_extents(cx - r * px, cy - r * px, cx + r * px, cy + r * px)
                    for (cx, cy), (_, _, r) in zip(centres, marks, strict=True)]
    placed: list[Bbox] = []
    out = []
    gap = 3.0 * px
    for (x, y), text, radius in zip(points, texts, radii_pt, strict=True):
        ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 0), fontsize=fontsize,
                          gid=POINT_LABEL, zorder=6)
        best: tuple[float, tuple[float, float], str, str, int] | None = None
        for ring in range(10):
            dist = radius + 2.0 + 6.0 * ring
            for dx, dy in _DIRECTIONS:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                ann.xyann = (dx * dist, dy * dist)
                ann.set_horizontalalignment(ha)
                ann.set_verticalalignment(va)
                box = text_box(ann, renderer).padded(gap)  # a gap, so two labels never read as one
                area = box.width * box.height
                cost = 10.0 * (area - _overlap(box, frame))  # outside the axes is worst
                cost += sum(_overlap(box, b) for b in placed) + sum(_overlap(box, m) for m in marker_boxes)
                if best is None or cost < best[0]:
                    best = (cost, (dx * dist, dy * dist), ha, va, ring)
                if cost == 0.0:
                    break
            if best is not None and best[0] == 0.0:
                break
        assert best is not None
        _, offset, ha, va, ring = best
        ann.remove()
        # far from its point, a leader line says which point the label names
        arrow = ({"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 1, "shrinkB": radius}
                 if ring > 0 else None)
        ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, fontsize=fontsize,
                          gid=POINT_LABEL, zorder=6, ha=ha, va=va, arrowprops=arrow)
        placed.append(text_box(ann, renderer).padded(gap))
        out.append(ann)
    return out


def _clusters(xy: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of points (display coordinates) chained by distances under ``threshold`` (single linkage)."""
    parent = list(range(len(xy)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(xy)):
        for j in range(i + 1, len(xy)):
            if np.hypot(*(xy[i] - xy[j])) < threshold:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(xy)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def pareto_figure(data: RunData) -> tuple[plt.Figure, str] | None:
    """The Pareto plot as a matplotlib figure and its caption (``pareto`` renders it)."""
    s_key = pick_metric(data.results, SAFETY_METRICS)
    u_key = pick_metric(data.results, UTILITY_METRICS)
    if s_key is None or u_key is None:
        return None
    by = ("strategy", "budget", "weights")
    s = aggregate(data.results, *s_key, by=by)
    u = aggregate(data.results, *u_key, by=by)
    m = s.merge(u, on=list(by), suffixes=("_s", "_u"))
    m = m[np.isfinite(m["value_u"].astype(float)) & np.isfinite(m["value_s"].astype(float))]
    if m.empty:
        return None
    m = m.sort_values(["strategy", "budget", "weights"]).reset_index(drop=True)
    strategies = sorted(data.results["strategy"].unique())
    colors = strategy_colors(strategies)
    markers = strategy_markers(strategies)
    multi_b = m["budget"].nunique() > 1
    multi_w = len(data.results["weights"].unique()) > 1
    m["label"] = [str(r["strategy"]) + (f" ({r['weights']})" if multi_w else "")
                  + (f" @{r['budget']:g}" if multi_b else "") for _, r in m.iterrows()]
    # Strategies with identical results share a point: one joint label instead of overprinted text.
    spot = m[["value_u", "value_s"]].round(9).astype(str).agg("|".join, axis=1)
    joint = m.groupby(spot, sort=False)["label"].agg(" = ".join)
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    for _, r in m.iterrows():
        c = colors[r["strategy"]]
        ax.errorbar(
            r["value_u"], r["value_s"],
            xerr=[[max(r["value_u"] - r["low_u"], 0)], [max(r["high_u"] - r["value_u"], 0)]],
            yerr=[[max(r["value_s"] - r["low_s"], 0)], [max(r["high_s"] - r["value_s"], 0)]],
            fmt="none", ecolor=c, elinewidth=1, capsize=3, alpha=0.8, zorder=2,
        )
    if multi_b:  # one strategy's points over budgets, joined so they read as a series
        for st, g in m.groupby("strategy"):
            for _, gw in g.groupby("weights"):
                if len(gw) > 1:
                    gw = gw.sort_values("budget")
                    ax.plot(gw["value_u"], gw["value_s"], color=colors[st], lw=0.8, alpha=0.5, zorder=1)
    front = m[pareto_mask(m["value_u"].to_numpy(), m["value_s"].to_numpy())].sort_values("value_u")
    front = front.drop_duplicates(["value_u", "value_s"])
    if len(front) >= 2:  # one point is no line: no legend entry without a visible front
        ax.step(front["value_u"], front["value_s"], where="post", ls="--", color="0.3", lw=1.2,
                label="Pareto front", zorder=1.5)
    ax.margins(x=0.12, y=0.1)
    ax.autoscale_view()
    # final limits (the label placement below works in display coordinates); a metric that cannot be
    # negative gets no negative axis, even when every point is 0 and autoscaling centres the axis on it
    ax.set_xlim(_nonnegative_limits(ax.get_xlim(), m["low_u"], m["value_u"]))
    ax.set_ylim(_nonnegative_limits(ax.get_ylim(), m["low_s"], m["value_s"]))
    # Markers (nearly) on top of each other are nested: the larger drawn first, so each keeps a visible
    # ring. Markers that only overlap in part show through their edges, shapes and transparency.
    px = fig.dpi / 72.0
    xy = ax.transData.transform(m[["value_u", "value_s"]].to_numpy(dtype=float))
    base_d = float(np.sqrt(MARKER_AREA))  # marker diameter in points
    diam = np.full(len(m), base_d)
    for group in _clusters(xy, threshold=NEST_DISTANCE * base_d * px):
        for rank, i in enumerate(sorted(group, key=lambda i: (m.at[i, "strategy"], m.at[i, "budget"]))):
            diam[i] = base_d * (1.0 + NEST_STEP * (len(group) - 1 - rank))
    zorder = 3.0 - 0.01 * diam / base_d  # every larger marker under every smaller one, nested or not
    seen: set[str] = set()
    for i, r in m.iterrows():
        st = r["strategy"]
        ax.scatter(
            [r["value_u"]], [r["value_s"]], s=[diam[i] ** 2], marker=markers[st], color=colors[st],
            edgecolors="black", linewidths=0.7, alpha=0.85, zorder=zorder[i],
            label=st if st not in seen else "_nolegend_",
        )
        seen.add(st)
    firsts = ~spot.duplicated()
    order = m.index[firsts]
    place_labels(
        ax,
        [(float(m.at[i, "value_u"]), float(m.at[i, "value_s"])) for i in order],
        [joint[spot[i]] for i in order],
        [float(max(diam[spot == spot[i]])) / 2 for i in order],
        obstacles_pt=[(float(m.at[i, "value_u"]), float(m.at[i, "value_s"]), diam[i] / 2)
                      for i in m.index if not firsts[i]],
    )
    handles, labels = ax.get_legend_handles_labels()
    first = sorted(range(len(labels)), key=lambda k: labels[k] == "Pareto front")  # strategies first
    # outside the axes, so the legend never covers a point or a label
    leg = ax.legend([handles[k] for k in first], [labels[k] for k in first], fontsize=8, loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    for h in leg.legend_handles:  # the same marker size for every strategy in the legend
        if isinstance(h, matplotlib.collections.PathCollection):
            h.set_sizes([MARKER_AREA])
    ax.set_xlabel(f"{short_name(u_key[1])}  (lower is better)")
    ax.set_ylabel(f"{short_name(s_key[1])}  (lower is better)")
    ax.set_title("Safety vs utility: lower-left is better")
    ax.grid(alpha=0.3)
    same = [v for v in joint if " = " in v]
    caption = (
        "Each point is the model trained on one strategy's selection at one token budget"
        + (" (the label says which, after '@'; a strategy's points are joined by a thin line)" if multi_b
           else "")
        + f". Vertical: {METRIC_TEXT.get(s_key[1], s_key[1])} ({s_key[1]}), judged by a toxicity model that "
        f"no selector or reward uses. Horizontal: {METRIC_TEXT.get(u_key[1], u_key[1])} ({u_key[1]}); "
        f"{_seeds_note(s)}. Lower-left is better on both axes. Every strategy has its own colour and marker "
        "shape; points that overlap are drawn nested, the larger underneath."
        + _front_text(m, front, s_key[1], u_key[1])
        + (f" Strategies joined by '=' got identical results and share a point: {'; '.join(same)}."
           if same else "")
    )
    return fig, caption


def _nonnegative_limits(lims: tuple[float, float], lows: pd.Series, values: pd.Series) -> tuple[float, float]:
    """Axis limits that start at 0 when no point or interval is negative (a toxicity or a perplexity),
    and that are not degenerate when every point sits at 0."""
    lo, hi = float(lims[0]), float(lims[1])
    data_min = float(np.nanmin(np.concatenate([lows.to_numpy(float), values.to_numpy(float)])))
    if data_min >= 0 and lo < 0:
        lo = 0.0
        if hi <= 0 or not np.isfinite(hi):
            hi = 1.0
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _front_text(m: pd.DataFrame, front: pd.DataFrame, s_name: str, u_name: str) -> str:
    """The caption's sentence about the Pareto front, true of the points drawn (point values)."""
    flat = [short_name(n) for n, col in ((s_name, "value_s"), (u_name, "value_u"))
            if m[col].astype(float).nunique() == 1]
    same = (f" Every point has the same {' and the same '.join(flat)}, so the plot separates the "
            "strategies on the other axis only." if flat else "")
    if len(front) >= 2:
        return (same + " The dashed line links the points no other point beats on both axes by point value "
                "(the Pareto front); which differences are real (paired intervals that exclude 0) is in "
                "'Who wins'.")
    if len(front) == 0:
        return same
    top = front.iloc[0]
    others = m.drop(index=front.index)
    strict = (len(others) > 0 and bool((others["value_s"] > top["value_s"]).all())
              and bool((others["value_u"] > top["value_u"]).all()))
    if strict:
        return (same + f" {top['label']} is lower than every other point on both axes by point value, so the "
                "front is that single point; 'Who wins' says which of the differences are real.")
    return (same + f" By point value no point is better than {top['label']} on one axis without being worse "
            "on the other, so the front is that single point; it is not better than every other point on "
            "both axes, and 'Who wins' says which differences are real (ties are named there).")


def pareto(data: RunData) -> Figure | None:
    """Safety (toxicity probability) vs utility (perplexity): a point per strategy x budget x weights."""
    return _as_figure(pareto_figure(data), "pareto", "Safety vs utility (Pareto front)")


def value_text(v: float) -> str:
    """A value short enough to print over a bar: 0, 0.004, 0.63, 36.3, 638, 6.4k."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v / 1000:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2g}"


def _metric_panel(ax: plt.Axes, data: RunData, key: tuple[str, str], colors: dict,
                  strategies: list[str] | None = None) -> pd.DataFrame:
    """One metric per strategy: bars at one budget, lines over several. Every strategy of the run gets a
    place; one without the metric is marked "n/a", a value of 0 is a thin visible bar marked "0"."""
    agg = aggregate(data.results, *key, by=("strategy", "budget"))
    agg = agg[np.isfinite(agg["value"].astype(float))]
    budgets = sorted(agg["budget"].unique())
    strategies = strategies or sorted(agg["strategy"].unique())
    if len(budgets) <= 1:
        x = np.arange(len(strategies))
        rows = {st: agg[agg["strategy"] == st].iloc[0] for st in strategies if (agg["strategy"] == st).any()}
        tops = {}
        for i, st in enumerate(strategies):
            r = rows.get(st)
            if r is None:
                continue
            ax.bar(i, r["value"], color=colors[st], alpha=0.85)
            tops[i] = float(r["value"])
            if np.isfinite(r["low"]) and np.isfinite(r["high"]):
                ax.errorbar(
                    i,
                    r["value"],
                    yerr=[[max(r["value"] - r["low"], 0)], [max(r["high"] - r["value"], 0)]],
                    color="black",
                    capsize=4,
                )
                tops[i] = max(tops[i], float(r["high"]))
        top = max(tops.values(), default=0.0)
        ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)  # room for the value labels
        span = ax.get_ylim()[1]
        for i, st in enumerate(strategies):
            r = rows.get(st)
            if r is None:  # no value is not a value of 0
                ax.text(i, 0.01 * span, "n/a", ha="center", va="bottom", fontsize=8, color="0.35",
                        gid=MISSING_LABEL)
                continue
            if r["value"] == 0:  # a bar of height 0 is invisible: a thin one, edged, stands for it
                ax.bar(i, ZERO_BAR_SHARE * span, color=colors[st], edgecolor="0.2", linewidth=0.6)
                tops[i] = max(tops[i], ZERO_BAR_SHARE * span)
            ax.text(i, tops[i] + 0.01 * span, value_text(float(r["value"])), ha="center", va="bottom",
                    fontsize=7, gid=VALUE_LABEL)
        ax.set_xticks(x, strategies, rotation=30, ha="right")
        ax.set_xlabel(f"strategy (budget {budgets[0]:g})" if budgets else "strategy")
    else:
        markers = strategy_markers(strategies)
        absent = []
        for st in strategies:
            g = agg[agg["strategy"] == st].sort_values("budget")
            if g.empty:
                absent.append(st)
                continue
            ax.errorbar(
                g["budget"],
                g["value"],
                yerr=[(g["value"] - g["low"]).clip(lower=0), (g["high"] - g["value"]).clip(lower=0)],
                marker=markers[st],
                markeredgecolor="black",
                markeredgewidth=0.5,
                capsize=3,
                color=colors[st],
                alpha=0.85,
                label=st,
            )
        ax.set_xlabel("budget (share of the pool's tokens selected)")
        ax.margins(y=0.08)  # markers at 0 stay whole above the axis
        ax.legend(fontsize=8)
        if absent:
            ax.text(0.01, 0.01, f"n/a: {', '.join(absent)}", transform=ax.transAxes, fontsize=7,
                    color="0.35", gid=MISSING_LABEL)
    ax.set_ylabel(short_name(key[1]))
    ax.grid(alpha=0.3, axis="y")
    return agg


def metrics_by_budget_figure(data: RunData) -> tuple[plt.Figure, str] | None:
    """The per-strategy metric panels as a matplotlib figure and its caption."""
    keys = [
        k
        for k in (pick_metric(data.results, SAFETY_METRICS), pick_metric(data.results, UTILITY_METRICS))
        if k is not None
    ]
    if not keys:
        return None
    strategies = sorted(data.results["strategy"].unique())
    colors = strategy_colors(strategies)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    agg = None
    for ax, key in zip(axes[0], keys, strict=True):
        agg = _metric_panel(ax, data, key, colors, strategies)
        ax.set_title(f"{short_name(key[1])}: lower is better")
    names = "; ".join(f"{k[1]} = {METRIC_TEXT.get(k[1], k[1])}" for k in keys)
    caption = (
        f"The model trained on each strategy's selection, at an equal number of training tokens ({names}); "
        f"{_seeds_note(agg) if agg is not None else ''}. Lower is better for both: fewer toxic "
        "continuations, and better prediction of clean held-out text. Bars whose intervals overlap are "
        "not clearly different. The number over a bar is its value; a value of 0 is drawn as a thin "
        "edged bar, and 'n/a' marks a strategy without that metric."
    )
    return fig, caption


def metrics_by_budget(data: RunData) -> Figure | None:
    """Toxicity and perplexity per strategy (bars at one budget, lines over several)."""
    return _as_figure(metrics_by_budget_figure(data), "by_budget",
                      "Toxicity and perplexity per strategy and budget")


def _series(log: dict, *names: str) -> tuple[np.ndarray, np.ndarray] | None:
    for n in names:
        if n in log and len(log[n]):
            y = np.asarray(log[n], dtype=float)
            x = np.asarray(log.get("tokens") or log.get("step") or range(len(y)), dtype=float)
            if len(x) != len(y):
                x = np.arange(len(y), dtype=float)
            return x, y
    return None


def training_curves_figure(data: RunData) -> tuple[plt.Figure, str] | None:
    """The training and reward curves as a matplotlib figure and its caption."""
    colors = strategy_colors(sorted(data.results["strategy"].unique()))
    learner_logs = {c: lg.get("learner") or {} for c, lg in data.train_logs.items()}
    policy_logs = {c: lg.get("policy") or {} for c, lg in data.train_logs.items() if lg.get("policy")}
    if not any(_series(lg, "loss") for lg in learner_logs.values()):
        return None
    n_panels = 1 + (1 if policy_logs else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(6 * n_panels, 4.2), squeeze=False)
    ax = axes[0][0]
    seen: set[str] = set()
    for cid, lg in sorted(learner_logs.items()):
        ser = _series(lg, "loss")
        strat = data.cells.get(cid, {}).get("strategy", cid)
        if ser is None:
            continue
        x, y = ser
        ax.plot(
            x, y, color=colors.get(strat, "0.5"), alpha=0.8, lw=1.2, label=None if strat in seen else strat,
            marker="o" if len(x) == 1 else None,  # one logged value is no line: a marker shows it
        )
        seen.add(strat)
    ax.set_xlabel("training tokens seen")
    _thousands(ax)
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title("Learner training loss - lower is better")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    caption = (
        "Left: training loss of the learner for every cell against the tokens it has seen (all cells "
        "train on the same number of tokens). Loss on a strategy's own selection is not comparable "
        "across strategies (easier data gives lower loss); the held-out perplexity above is."
    )
    if policy_logs:
        ax2 = axes[0][1]
        seen = set()
        relative = False
        for cid, lg in sorted(policy_logs.items()):
            # the data reward of the kept documents relative to all candidates of the step: 0 is what
            # random selection scores, so the curve reads directly as "better than random by"
            ser = _series(lg, "data_reward")
            relative = relative or ser is not None
            ser = ser or _series(lg, "reward", "mean_reward", "episode_reward")
            strat = data.cells.get(cid, {}).get("strategy", cid)
            if ser is None:
                continue
            x, y = ser
            if len(y) >= 8:  # a moving average makes the trend readable through the step noise
                k = max(4, len(y) // 6)
                y = np.convolve(y, np.ones(k) / k, mode="valid")
                x = x[k - 1 :]
            ax2.plot(x, y, color=colors.get(strat, "0.5"), lw=1.5, label=None if strat in seen else strat,
                     marker="o" if len(x) == 1 else None)
            seen.add(strat)
        if relative:
            ax2.axhline(0.0, color="0.3", ls="--", lw=1, label="random selection")
        ax2.set_xlabel("policy step (one batch of candidates each)")
        ax2.set_ylabel("reward of kept minus all candidates" if relative else "reward (moving average)")
        ax2.set_title("RL policy reward - higher is better")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
        caption += (
            " Right: while a learned policy learns, the mean composite reward (safety, alignment and "
            "utility scores of the data, with the run's reward weights) of the documents it keeps minus "
            "the mean over all candidates it was shown, moving average over steps. Higher is better; "
            "0 (dashed) is what random selection gets, and a curve that rises above it means the policy "
            "learned to keep the documents the reward prefers."
            if relative
            else " Right: reward of the learned selection policies during policy learning (moving average "
            "over steps); higher is better, and a rising curve means the policy learned to pick "
            "documents the reward prefers."
        )
    return fig, caption


def training_curves(data: RunData) -> Figure | None:
    """Learner loss during training (every cell) and, when present, the RL policies' reward curves."""
    return _as_figure(training_curves_figure(data), "curves", "Training and reward curves")


KEEP_ZERO_HEIGHT = 0.016  # a kept share of 0 drawn as a bar this high (of 1.05), edged, marked "0"


def _keep_panel(ax: plt.Axes, shares: pd.DataFrame, column: str, colors: dict,
                strategies: list[str] | None = None) -> dict[str, BarContainer]:
    """Grouped bars of kept share per level and strategy; returns each strategy's bars (for the legend)."""
    levels = sorted(shares[column].unique())
    strategies = strategies or sorted(shares["strategy"].unique())
    width = 0.8 / max(len(strategies), 1)
    bars: dict[str, BarContainer] = {}
    for i, st in enumerate(strategies):
        g = shares[shares["strategy"] == st].set_index(column)
        xs = np.arange(len(levels)) + (i - (len(strategies) - 1) / 2) * width
        vals = np.array([float(g.loc[lv, "kept_share"]) if lv in g.index else np.nan for lv in levels])
        have = np.isfinite(vals)
        for x in xs[~have]:  # no manifest row for this level: not the same as keeping none
            ax.text(x, 0.015, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="0.35",
                    gid=MISSING_LABEL)
        if not have.any():
            continue
        zero = have & (vals == 0)
        bars[st] = ax.bar(
            xs[have],
            np.where(zero, KEEP_ZERO_HEIGHT, vals)[have],
            width,
            color=colors.get(st, "0.5"),
            edgecolor=["0.15" if z else "none" for z in zero[have]],
            linewidth=0.6,
            label=st,
        )
        for x in xs[zero]:
            ax.text(x, KEEP_ZERO_HEIGHT + 0.005, "0", ha="center", va="bottom", fontsize=6, gid=VALUE_LABEL)
    ax.set_xticks(np.arange(len(levels)), levels, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of documents kept")
    ax.grid(alpha=0.3, axis="y")
    return bars


def keep_drop_figure(data: RunData) -> tuple[plt.Figure, str] | None:
    """The kept-share panels as a matplotlib figure and its caption."""
    budgets = sorted(data.results["budget"].unique()) if len(data.results) else []
    if not budgets:
        return None
    budget = min(budgets, key=lambda b: abs(b - 0.5))
    by_source = keep_shares(data, "source", budget)
    by_tox = keep_shares(data, "toxicity_level", budget)
    panels = [(by_source, "source", "by source"), (by_tox, "toxicity_level", "by toxicity level")]
    panels = [p for p in panels if not p[0].empty]
    if not panels:
        return None
    strategies = sorted(data.results["strategy"].unique())
    colors = strategy_colors(strategies)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.4), squeeze=False)
    handles: dict[str, BarContainer] = {}
    for ax, (shares, col, title) in zip(axes[0], panels, strict=True):
        for st, b in _keep_panel(ax, shares, col, colors, strategies).items():
            handles.setdefault(st, b)
        ax.set_title(f"Kept {title}")
    shown = [st for st in strategies if st in handles]
    # beside the last panel: inside, it would cover the bars near a share of 1
    axes[0][-1].legend([handles[st] for st in shown], shown, fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    level_note = ""
    if data.documents is not None and "toxicity_level_basis" in data.documents.columns:
        level_note = f" Toxicity level: {data.documents['toxicity_level_basis'].iloc[0]}."
    caption = (
        f"Share of the pool's documents each strategy kept at budget {budget:g} (mean over seeds), "
        "by the source they came from and by their toxicity level." + level_note + " Which way is "
        "better: for toxic documents, lower is better (they should be dropped); for clean sources, "
        "a bar near the random strategy's is better (the selection keeps every kind of clean text in "
        "proportion instead of dropping a whole source). Random selection keeps about the same share of "
        "everything and is the reference. A thin edged bar marked '0' means none kept; 'n/a' means the "
        "strategy has no decisions for those documents."
    )
    return fig, caption


def keep_drop(data: RunData) -> Figure | None:
    """What each strategy keeps and drops, by source and by toxicity level of the documents."""
    return _as_figure(keep_drop_figure(data), "keepdrop", "What each strategy keeps and drops")


def all_figures(data: RunData) -> list[Figure]:
    figs = []
    for fn in (pareto, metrics_by_budget, training_curves, keep_drop):
        f = fn(data)
        if f is not None:
            figs.append(f)
    return figs
