"""The report's figures (matplotlib, rendered off-screen to PNG and embedded as base64).

Each function returns a :class:`Figure` with the image and a caption that says what is shown and which
direction is better, or ``None`` when the runs hold nothing to plot for it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered into the HTML page

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dynacure.report.data import (  # noqa: E402
    SAFETY_METRICS,
    UTILITY_METRICS,
    RunData,
    aggregate,
    keep_shares,
    pareto_mask,
    pick_metric,
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

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


def pareto(data: RunData) -> Figure | None:
    """Safety (toxicity probability) vs utility (perplexity): a point per strategy x budget x weights."""
    s_key = pick_metric(data.results, SAFETY_METRICS)
    u_key = pick_metric(data.results, UTILITY_METRICS)
    if s_key is None or u_key is None:
        return None
    by = ("strategy", "budget", "weights")
    s = aggregate(data.results, *s_key, by=by)
    u = aggregate(data.results, *u_key, by=by)
    m = s.merge(u, on=list(by), suffixes=("_s", "_u"))
    if m.empty:
        return None
    strategies = sorted(data.results["strategy"].unique())
    colors = strategy_colors(strategies)
    budgets = sorted(m["budget"].unique())
    multi_w = len(data.results["weights"].unique()) > 1
    m["label"] = [f"{r['strategy']} ({r['weights']})" if multi_w else str(r["strategy"])
                  for _, r in m.iterrows()]
    # Strategies with identical results share a point: one joint label instead of overprinted text.
    spot = m[["value_u", "value_s"]].round(9).astype(str).agg("|".join, axis=1)
    joint = m.groupby(spot)["label"].agg(" = ".join)
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    labelled: set[str] = set()
    for i, r in m.iterrows():
        marker = MARKERS[budgets.index(r["budget"]) % len(MARKERS)]
        xerr = [[max(r["value_u"] - r["low_u"], 0)], [max(r["high_u"] - r["value_u"], 0)]]
        yerr = [[max(r["value_s"] - r["low_s"], 0)], [max(r["high_s"] - r["value_s"], 0)]]
        ax.errorbar(
            r["value_u"],
            r["value_s"],
            xerr=xerr,
            yerr=yerr,
            fmt=marker,
            color=colors[r["strategy"]],
            ecolor=colors[r["strategy"]],
            elinewidth=1,
            capsize=3,
            markersize=8,
            alpha=0.9,
        )
        if spot[i] in labelled:
            continue
        labelled.add(spot[i])
        ax.annotate(
            joint[spot[i]], (r["value_u"], r["value_s"]), textcoords="offset points", xytext=(6, 5),
            fontsize=8,
        )
    front = m[pareto_mask(m["value_u"].to_numpy(), m["value_s"].to_numpy())].sort_values("value_u")
    if len(front) >= 1:
        ax.step(
            front["value_u"], front["value_s"], where="post", ls="--", color="0.3", lw=1, label="Pareto front"
        )
    handles = [plt.Line2D([], [], color=colors[s], marker="o", ls="", label=s) for s in strategies]
    if len(budgets) > 1:
        handles += [
            plt.Line2D([], [], color="0.4", marker=MARKERS[i % len(MARKERS)], ls="", label=f"budget {b:g}")
            for i, b in enumerate(budgets)
        ]
    handles.append(plt.Line2D([], [], color="0.3", ls="--", label="Pareto front"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xlabel(f"{short_name(u_key[1])}  (lower is better)")
    ax.set_ylabel(f"{short_name(s_key[1])}  (lower is better)")
    ax.set_title("Safety vs utility: lower-left is better")
    ax.grid(alpha=0.3)
    same = [v for v in joint if " = " in v]
    caption = (
        f"Each point is the model trained on one strategy's selection at one token budget. Vertical: "
        f"{METRIC_TEXT.get(s_key[1], s_key[1])} ({s_key[1]}), judged by a toxicity model that no "
        f"selector or reward uses. Horizontal: {METRIC_TEXT.get(u_key[1], u_key[1])} ({u_key[1]}); "
        f"{_seeds_note(s)}. Lower-left is better on both axes. The dashed line links the points no "
        "other point beats on both axes (the Pareto front)."
        + (f" Strategies joined by '=' got identical results and share a point: {'; '.join(same)}."
           if same else "")
    )
    return Figure("pareto", "Safety vs utility (Pareto front)", caption, _png(fig))


def _metric_panel(ax: plt.Axes, data: RunData, key: tuple[str, str], colors: dict) -> pd.DataFrame:
    agg = aggregate(data.results, *key, by=("strategy", "budget"))
    budgets = sorted(agg["budget"].unique())
    strategies = sorted(agg["strategy"].unique())
    if len(budgets) == 1:
        x = np.arange(len(strategies))
        for i, st in enumerate(strategies):
            r = agg[agg["strategy"] == st].iloc[0]
            ax.bar(i, r["value"], color=colors[st], alpha=0.85)
            ax.errorbar(
                i,
                r["value"],
                yerr=[[max(r["value"] - r["low"], 0)], [max(r["high"] - r["value"], 0)]],
                color="black",
                capsize=4,
            )
        ax.set_xticks(x, strategies, rotation=30, ha="right")
        ax.set_xlabel(f"strategy (budget {budgets[0]:g})")
    else:
        for st in strategies:
            g = agg[agg["strategy"] == st].sort_values("budget")
            ax.errorbar(
                g["budget"],
                g["value"],
                yerr=[(g["value"] - g["low"]).clip(lower=0), (g["high"] - g["value"]).clip(lower=0)],
                marker="o",
                capsize=3,
                color=colors[st],
                label=st,
            )
        ax.set_xlabel("budget (share of the pool's tokens selected)")
        ax.legend(fontsize=8)
    ax.set_ylabel(short_name(key[1]))
    ax.grid(alpha=0.3, axis="y")
    return agg


def metrics_by_budget(data: RunData) -> Figure | None:
    """Toxicity and perplexity per strategy (bars at one budget, lines over several)."""
    keys = [
        k
        for k in (pick_metric(data.results, SAFETY_METRICS), pick_metric(data.results, UTILITY_METRICS))
        if k is not None
    ]
    if not keys:
        return None
    colors = strategy_colors(sorted(data.results["strategy"].unique()))
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    agg = None
    for ax, key in zip(axes[0], keys, strict=True):
        agg = _metric_panel(ax, data, key, colors)
        ax.set_title(f"{short_name(key[1])}: lower is better")
    names = "; ".join(f"{k[1]} = {METRIC_TEXT.get(k[1], k[1])}" for k in keys)
    caption = (
        f"The model trained on each strategy's selection, at an equal number of training tokens ({names}); "
        f"{_seeds_note(agg) if agg is not None else ''}. Lower is better for both: fewer toxic "
        "continuations, and better prediction of clean held-out text. Bars whose intervals overlap are "
        "not clearly different."
    )
    return Figure("by_budget", "Toxicity and perplexity per strategy and budget", caption, _png(fig))


def _series(log: dict, *names: str) -> tuple[np.ndarray, np.ndarray] | None:
    for n in names:
        if n in log and len(log[n]):
            y = np.asarray(log[n], dtype=float)
            x = np.asarray(log.get("tokens") or log.get("step") or range(len(y)), dtype=float)
            if len(x) != len(y):
                x = np.arange(len(y), dtype=float)
            return x, y
    return None


def training_curves(data: RunData) -> Figure | None:
    """Learner loss during training (every cell) and, when present, the RL policies' reward curves."""
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
            x, y, color=colors.get(strat, "0.5"), alpha=0.8, lw=1.2, label=None if strat in seen else strat
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
            ax2.plot(x, y, color=colors.get(strat, "0.5"), lw=1.5, label=None if strat in seen else strat)
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
    return Figure("curves", "Training and reward curves", caption, _png(fig))


def _keep_panel(ax: plt.Axes, shares: pd.DataFrame, column: str, colors: dict) -> None:
    levels = sorted(shares[column].unique())
    strategies = sorted(shares["strategy"].unique())
    width = 0.8 / max(len(strategies), 1)
    for i, st in enumerate(strategies):
        g = shares[shares["strategy"] == st].set_index(column)
        vals = [float(g.loc[lv, "kept_share"]) if lv in g.index else 0.0 for lv in levels]
        ax.bar(
            np.arange(len(levels)) + (i - (len(strategies) - 1) / 2) * width,
            vals,
            width,
            color=colors.get(st, "0.5"),
            label=st,
        )
    ax.set_xticks(np.arange(len(levels)), levels, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of documents kept")
    ax.grid(alpha=0.3, axis="y")


def keep_drop(data: RunData) -> Figure | None:
    """What each strategy keeps and drops, by source and by toxicity level of the documents."""
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
    colors = strategy_colors(sorted(data.results["strategy"].unique()))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.4), squeeze=False)
    for ax, (shares, col, title) in zip(axes[0], panels, strict=True):
        _keep_panel(ax, shares, col, colors)
        ax.set_title(f"Kept {title}")
    axes[0][0].legend(fontsize=8)
    level_note = ""
    if data.documents is not None and "toxicity_level_basis" in data.documents.columns:
        level_note = f" Toxicity level: {data.documents['toxicity_level_basis'].iloc[0]}."
    caption = (
        f"Share of the pool's documents each strategy kept at budget {budget:g} (mean over seeds), "
        "by the source they came from and by their toxicity level." + level_note + " Which way is "
        "better: for toxic documents, lower is better (they should be dropped); for clean sources, "
        "a bar near the random strategy's is better (the selection keeps every kind of clean text in "
        "proportion instead of dropping a whole source). Random selection keeps about the same share of "
        "everything and is the reference."
    )
    return Figure("keepdrop", "What each strategy keeps and drops", caption, _png(fig))


def all_figures(data: RunData) -> list[Figure]:
    figs = []
    for fn in (pareto, metrics_by_budget, training_curves, keep_drop):
        f = fn(data)
        if f is not None:
            figs.append(f)
    return figs
