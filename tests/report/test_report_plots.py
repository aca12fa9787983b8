"""Report plots that read: every legend entry's artist is really drawn (hiding it changes pixels inside its
axes, its data lie inside the axes limits), no two point labels overlap, identical points share one label
and stay visible, the Pareto front is drawn (and listed) only with two points or more, a value of 0 is a
visible bar marked "0" and a missing value is marked "n/a"."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.artist import Artist
from matplotlib.collections import PathCollection
from matplotlib.container import Container
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from dynacure.experiments.results import SCHEMA
from dynacure.report import plots
from dynacure.report.data import RunData

# strategy -> (toxicity probability, held-out perplexity); None: the metric is missing for that strategy
POINTS = {
    "random": (0.60, 40.0),
    "heuristic": (0.60, 40.0),  # identical to random: one shared point, one joint label
    "dsir": (0.605, 40.1),  # overlaps random/heuristic on screen without being equal
    "classifier": (0.30, 38.0),
    "bandit": (0.0, 39.0),  # toxicity exactly 0; with classifier on the Pareto front
    "raft": (0.05, 45.0),
    "ppo": (0.20, None),  # no perplexity: not on the Pareto plot, "n/a" in the perplexity panel
}
SOURCES = ("wiki", "tweets")
# A pixel counts as showing an artist when hiding it changes a colour channel by more than this (of 255):
# what shows through a marker drawn over it (15% at alpha 0.85) stays below it.
SEEN = 48
N_DOCS = 40


def _row(cid, strat, seed, budget, suite, metric, value):
    row = dict.fromkeys(SCHEMA.names, np.nan)
    row.update(experiment="t", cell_id=cid, strategy=strat, strategy_name=strat, seed=seed, budget=budget,
               weights="w", suite=suite, metric=metric, value=value, low=value * 0.95, high=value * 1.05,
               n=20, params="{}", reward_weights="{}", config="{}", versions="{}")
    return row


def _run(points=POINTS, budgets=(0.5,), seeds=(0,), tmp_path=None):
    ids = [f"d{i:02d}" for i in range(N_DOCS)]
    docs = pd.DataFrame({"id": ids, "source": [SOURCES[i % 2] for i in range(N_DOCS)],
                         "toxicity_level": ["toxic" if i % 4 == 1 else "clean" for i in range(N_DOCS)],
                         "n_tokens": 10})
    rows, cells, manifests, logs = [], {}, {}, {}
    grid = itertools.product(points.items(), budgets, seeds)
    for k, ((strat, (tox, ppl)), budget, seed) in enumerate(grid):
        cid = f"{strat}-{budget}-{seed}"
        scale = 1.0 + 0.1 * budgets.index(budget)
        rows.append(_row(cid, strat, seed, budget, "toxicity", "toxicity_probability", tox * scale))
        if ppl is not None:
            rows.append(_row(cid, strat, seed, budget, "perplexity", "heldout_word_ppl", ppl * scale))
        cells[cid] = {"strategy": strat, "budget": budget, "seed": seed}
        keep = np.arange(N_DOCS) % 2 == 0
        if strat == "raft":  # keeps no toxic document at all: a kept share of exactly 0
            keep = (docs["toxicity_level"] == "clean").to_numpy()
        man = pd.DataFrame({"id": ids, "decision": np.where(keep, "keep", "drop")})
        if strat == "classifier":  # its manifest holds no tweets: no value for that source ("n/a")
            man = man[docs["source"].to_numpy() == "wiki"]
        manifests[cid] = man
        steps = 1 if strat == "random" else 6  # a one-value log is still drawn
        logs[cid] = {"learner": {"loss": list(np.linspace(5.0, 3.0, steps) + 0.15 * k),
                                 "tokens": list(np.linspace(100, 600, steps))}}
        if strat == "bandit":
            logs[cid]["policy"] = {"data_reward": list(np.linspace(-0.1, 0.3, 12))}
    results = pd.DataFrame(rows, columns=SCHEMA.names)
    return RunData(root=tmp_path, results=results, documents=docs, manifests=manifests, train_logs=logs,
                   cells=cells)


def _parts(artist) -> list[Artist]:
    return [a for a in artist.get_children() if isinstance(a, Artist)] if isinstance(artist, Container) \
        else [artist]


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _drawn_pixels(fig, ax, artist, before: np.ndarray | None = None) -> int:
    """Pixels inside ``ax`` that change visibly when ``artist`` is hidden: 0 for an invisible, empty,
    covered or out-of-axes artist. ``before``: the figure already rendered (one render for many artists)."""
    before = _pixels(fig) if before is None else before
    parts = _parts(artist)
    was = [p.get_visible() for p in parts]
    for p in parts:
        p.set_visible(False)
    after = _pixels(fig)
    for p, v in zip(parts, was, strict=True):
        p.set_visible(v)
    box = ax.get_window_extent()
    h = before.shape[0]
    rows = slice(int(h - box.y1) + 1, int(h - box.y0) - 1)  # inside the frame, spines left out
    cols = slice(int(box.x0) + 1, int(box.x1) - 1)
    diff = np.abs(before[rows, cols].astype(int) - after[rows, cols].astype(int)).max(axis=-1)
    return int((diff > SEEN).sum())


def _data_points(artist) -> np.ndarray:
    pts = []
    for p in _parts(artist):
        if isinstance(p, Line2D):
            pts.extend(np.asarray(p.get_xydata(), dtype=float))
        elif isinstance(p, PathCollection):
            pts.extend(np.asarray(p.get_offsets(), dtype=float))
        elif isinstance(p, Rectangle):
            pts.append((p.get_x() + p.get_width() / 2, p.get_y() + p.get_height()))
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def _labelled_artists(fig):
    """label -> (axes, artist) for every artist carrying a legend label, over all axes of the figure."""
    out = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            out.setdefault(lab, (ax, h))
    return out


def check_legends(fig) -> list[str]:
    """Every legend entry names a real artist that is drawn inside its axes; returns the entries."""
    artists = _labelled_artists(fig)
    entries = []
    rendered = _pixels(fig)
    for leg_ax in fig.axes:
        leg = leg_ax.get_legend()
        if leg is None:
            continue
        for text in leg.get_texts():
            lab = text.get_text()
            entries.append(lab)
            assert lab in artists, f"legend entry {lab!r} has no plotted artist (a proxy)"
            ax, artist = artists[lab]
            assert all(p.get_visible() for p in _parts(artist)), lab
            drawn = _drawn_pixels(fig, ax, artist, rendered)
            assert drawn >= 10, f"legend entry {lab!r}: its artist draws nothing"
            if isinstance(artist, PathCollection):  # a marker: a good part shows, not an edge peeking out
                square = plots.MARKER_AREA * (fig.dpi / 72.0) ** 2  # a lone marker's box, in pixels
                assert drawn >= 0.2 * square, f"legend entry {lab!r}: its marker is mostly hidden"
            pts = _data_points(artist)
            pts = pts[np.isfinite(pts).all(axis=1)]
            if len(pts) and all(p.get_transform() == ax.transData for p in _parts(artist)
                                if isinstance(p, Line2D | PathCollection)):
                (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
                inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
                assert inside.all(), f"legend entry {lab!r}: data outside the axes limits"
    return entries


def point_labels(fig):
    return [t for ax in fig.axes for t in ax.texts if t.get_gid() == plots.POINT_LABEL]


def check_labels_apart(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = point_labels(fig)
    boxes = [plots.text_box(t, renderer) for t in labels]
    frame = fig.axes[0].get_window_extent(renderer)
    for t, b in zip(labels, boxes, strict=True):
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1, t.get_text()
    for (ta, a), (tb, b) in itertools.combinations(zip(labels, boxes, strict=True), 2):
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        assert w <= 0 or h <= 0, f"labels {ta.get_text()!r} and {tb.get_text()!r} overlap"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_pareto_legend_labels_and_shared_point(tmp_path):
    fig, caption = plots.pareto_figure(_run(tmp_path=tmp_path))
    entries = check_legends(fig)
    assert set(entries) == {"random", "heuristic", "dsir", "classifier", "bandit", "raft", "Pareto front"}
    check_labels_apart(fig)
    texts = sorted(t.get_text() for t in point_labels(fig))
    assert texts == ["bandit", "classifier", "dsir", "heuristic = random", "raft"]
    assert "heuristic = random" in caption
    # both strategies of the shared point are visible there (nested markers, the larger underneath)
    artists = _labelled_artists(fig)
    ax = fig.axes[0]
    drawn = {s: _drawn_pixels(fig, ax, artists[s][1]) for s in ("heuristic", "random", "dsir")}
    assert min(drawn.values()) >= 10, drawn
    sizes = {s: float(artists[s][1].get_sizes()[0]) for s in ("dsir", "heuristic", "random")}
    assert sizes["heuristic"] > sizes["random"]  # equal points nested: the larger underneath
    z = {s: artists[s][1].get_zorder() for s in ("dsir", "heuristic", "random")}
    assert z["heuristic"] < z["random"] and z["heuristic"] < z["dsir"]
    markers = {artists[s][1].get_paths()[0].vertices.tobytes() for s in artists if s != "Pareto front"}
    assert len(markers) == 6  # one shape per strategy


def test_pareto_front_only_with_two_points(tmp_path):
    dominated = {"random": (0.6, 40.0), "heuristic": (0.6, 40.0), "raft": (0.1, 35.0)}
    fig, caption = plots.pareto_figure(_run(dominated, tmp_path=tmp_path))
    entries = check_legends(fig)
    assert "Pareto front" not in entries
    assert not any(line.get_label() == "Pareto front" for line in fig.axes[0].lines)
    assert "single point" in caption
    check_labels_apart(fig)


def test_pareto_many_close_points_keep_labels_apart(tmp_path):
    crowd = {f"s{i}": (0.5 + 0.004 * (i % 3), 40.0 + 0.05 * i) for i in range(9)}
    crowd["far"] = (0.1, 60.0)
    fig, _ = plots.pareto_figure(_run(crowd, tmp_path=tmp_path))
    check_legends(fig)
    check_labels_apart(fig)
    assert len(point_labels(fig)) == 10


def test_pareto_several_budgets_and_seeds(tmp_path):
    pts = {k: POINTS[k] for k in ("random", "heuristic", "raft", "bandit")}
    fig, caption = plots.pareto_figure(_run(pts, budgets=(0.25, 0.5), seeds=(0, 1), tmp_path=tmp_path))
    entries = check_legends(fig)
    assert {"random", "heuristic", "raft", "bandit"} <= set(entries)
    check_labels_apart(fig)
    texts = {t.get_text() for t in point_labels(fig)}
    assert "raft @0.25" in texts and "raft @0.5" in texts
    assert "@" in caption


def _bar_at(ax, x, color):
    return [p for p in ax.patches
            if isinstance(p, Rectangle) and abs(p.get_x() + p.get_width() / 2 - x) < 1e-6
            and np.allclose(p.get_facecolor()[:3], color[:3]) and p.get_height() > 0]


def test_metrics_zero_bar_visible_and_missing_marked(tmp_path):
    data = _run(tmp_path=tmp_path)
    fig, caption = plots.metrics_by_budget_figure(data)
    check_legends(fig)
    strategies = sorted(data.results["strategy"].unique())
    colors = plots.strategy_colors(strategies)
    tox_ax, ppl_ax = fig.axes
    i = strategies.index("bandit")  # toxicity exactly 0
    zero_bars = _bar_at(tox_ax, i, colors["bandit"])
    assert zero_bars and _drawn_pixels(fig, tox_ax, zero_bars[0]) >= 10
    values = {round(t.get_position()[0]): t.get_text() for t in tox_ax.texts
              if t.get_gid() == plots.VALUE_LABEL}
    assert values[i] == "0" and values[strategies.index("classifier")] == "0.3"
    j = strategies.index("ppo")  # no perplexity
    missing = [t for t in ppl_ax.texts if t.get_gid() == plots.MISSING_LABEL]
    assert [(round(t.get_position()[0]), t.get_text()) for t in missing] == [(j, "n/a")]
    assert not _bar_at(ppl_ax, j, colors["ppo"])
    assert "n/a" in caption and "0" in caption


def test_metrics_over_budgets_legend(tmp_path):
    fig, _ = plots.metrics_by_budget_figure(_run(budgets=(0.25, 0.5), tmp_path=tmp_path))
    entries = check_legends(fig)
    assert "bandit" in entries  # its toxicity line lies on 0 and is still drawn inside the axes
    assert any(t.get_text() == "n/a: ppo" for t in fig.axes[1].texts)


def test_keep_drop_zero_and_missing(tmp_path):
    data = _run(tmp_path=tmp_path)
    fig, caption = plots.keep_drop_figure(data)
    entries = check_legends(fig)
    assert set(entries) == set(POINTS)
    strategies = sorted(POINTS)
    colors = plots.strategy_colors(strategies)
    src_ax, tox_ax = fig.axes
    width = 0.8 / len(strategies)

    def slot(level_index, strat):
        return level_index + (strategies.index(strat) - (len(strategies) - 1) / 2) * width

    toxic = sorted(["clean", "toxic"]).index("toxic")
    zero = _bar_at(tox_ax, slot(toxic, "raft"), colors["raft"])  # raft keeps no toxic document
    assert zero and zero[0].get_height() == pytest.approx(plots.KEEP_ZERO_HEIGHT)
    assert _drawn_pixels(fig, tox_ax, zero[0]) >= 4
    assert any(t.get_text() == "0" and abs(t.get_position()[0] - slot(toxic, "raft")) < 1e-6
               for t in tox_ax.texts)
    tweets = sorted(SOURCES).index("tweets")
    assert not _bar_at(src_ax, slot(tweets, "classifier"), colors["classifier"])
    na = [t for t in src_ax.texts if t.get_gid() == plots.MISSING_LABEL]
    assert [(t.get_position()[0], t.get_text()) for t in na] == [(pytest.approx(slot(tweets, "classifier")),
                                                                   "n/a")]
    assert "n/a" in caption


def test_training_curves_legend(tmp_path):
    fig, _ = plots.training_curves_figure(_run(tmp_path=tmp_path))
    entries = check_legends(fig)
    assert "random" in entries  # a single logged loss value: drawn as a marker
    assert "random selection" in entries and "bandit" in entries


def test_all_figures_render(tmp_path):
    figs = plots.all_figures(_run(tmp_path=tmp_path))
    assert [f.key for f in figs] == ["pareto", "by_budget", "curves", "keepdrop"]
    assert all(len(f.png_base64) > 1000 for f in figs)
