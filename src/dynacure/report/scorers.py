"""The scorer report: one self-contained HTML page on the trained reward scorers and the judge of a folder.

Everything on the page comes from the models' ``meta.json`` (written by ``dynacure train-scorer``), so it
can be rebuilt at any time without scoring anything:

- held-out AUROC / macro-F1 per benchmark (official test splits, thresholds from validation);
- the false-positive rate on non-toxic test texts per identity group mentioned, with a Wilson 95% interval
  (the groups are small: an FPR on 3 texts says little, and the interval shows it), beside the 0.30 target;
- the harm categories' held-out AUROC, and the categories not emitted with the reason;
- reliability diagrams: predicted probability against the observed positive rate per bin, raw and calibrated
  on validation (cross-fitted) and calibrated on the test splits, so "0.5 means what it says" can be checked.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from markupsafe import Markup

from dynacure import __version__
from dynacure.io.atomic import write_text_atomic
from dynacure.report.markup import _figure_html, _table, fmt, join, render
from dynacure.report.plots import Figure, _png

log = logging.getLogger(__name__)

REPORT_FILE = "scorers.html"
FPR_TARGET = 0.30  # issue 15: every group's false-positive rate on non-toxic texts at the decision threshold
BENCHMARKS = ("tweeteval_offensive", "tweeteval_hate", "jigsaw")
# Folder name -> what the model is for (the order of the page).
MODELS = {
    "toxicity_transformer": "reward scorer: MiniLM fine-tuned end to end, calibrated",
    "toxicity_transformer_noaug": "ablation: the same fine-tune without counterfactual augmentation",
    "toxicity_ngram": "reward scorer: hashed n-grams + logistic regression",
    "toxicity_minilm": "reward scorer: frozen MiniLM embeddings + logistic regression",
    "judge": "evaluation judge (judge rows only; never a reward)",
}


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """95% Wilson interval of a proportion k/n (None for n == 0)."""
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def read_models(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    """name -> meta.json of every known model present in ``model_dir`` (page order)."""
    out = {}
    for name in MODELS:
        meta = Path(model_dir) / name / "meta.json"
        if meta.exists():
            try:
                out[name] = json.loads(meta.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{meta}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    return out


def _fpr_source(heldout: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    if "identity_fpr_at_0.5" in heldout:
        return heldout["identity_fpr_at_0.5"], "calibrated score >= 0.5"
    if "identity_fpr" in heldout:
        return heldout["identity_fpr"], "each benchmark's validation threshold"
    return None, ""


def headline_table(models: dict[str, dict[str, Any]]) -> Markup:
    header = ["model", "role"] + [f"{b} AUROC / macro-F1" for b in BENCHMARKS] + ["non-toxic FPR (all)",
                                                                                  "worst group FPR"]
    rows = []
    for name, meta in models.items():
        h = meta.get("heldout") or {}
        cells: list[Any] = [name, MODELS[name]]
        for b in BENCHMARKS:
            r = h.get(b)
            cells.append(f"{fmt(r['auroc'])} / {fmt(r['macro_f1'])}" if isinstance(r, dict) else "n/a")
        fpr, _ = _fpr_source(h)
        if fpr:
            groups = {g: v for g, v in fpr.items() if g != "all" and v.get("fpr") is not None}
            worst = max(groups, key=lambda g: groups[g]["fpr"]) if groups else None
            cells.append(fmt(fpr["all"]["fpr"]))
            cells.append(f"{fmt(groups[worst]['fpr'])} ({worst}, n={groups[worst]['n']})" if worst else "n/a")
        else:
            cells += ["n/a", "n/a"]
        rows.append(cells)
    return _table(header, rows, text_cols=2, table_id="scorer-headline")


def _fpr_cell(v: dict[str, Any] | None) -> Any:
    if not v or v.get("fpr") is None:
        return "n/a"
    n = int(v["n"])
    lo, hi = wilson(round(v["fpr"] * n), n) or (float("nan"), float("nan"))
    text = Markup("{} <span class='ci'>[{}, {}] n={}</span>").format(fmt(v["fpr"]), fmt(lo), fmt(hi), n)
    return {"v": text, "cls": "worse" if v["fpr"] > FPR_TARGET else "better"}


def _group_table(sources: dict[str, tuple[dict[str, Any], str]], table_id: str) -> Markup:
    groups = list(dict.fromkeys(g for fpr, _ in sources.values() for g in fpr
                                if isinstance(fpr[g], dict) and "fpr" in fpr[g]))
    header = ["group"] + [f"{n} ({rule})" for n, (_, rule) in sources.items()]
    rows = [[g] + [_fpr_cell(fpr.get(g)) for fpr, _ in sources.values()] for g in groups]
    return _table(header, rows, table_id=table_id)


def fpr_table(models: dict[str, dict[str, Any]]) -> Markup:
    """Per identity group: pooled labelled test sets, each benchmark alone, and neutral BBQ contexts."""
    parts = []
    pooled = {n: _fpr_source(m.get("heldout") or {}) for n, m in models.items()}
    pooled = {n: (f, f"at {rule}") for n, (f, rule) in pooled.items() if f}
    if pooled:
        parts += [Markup("<h3>Negatives of the three labelled test sets, pooled</h3>"),
                  _group_table(pooled, "scorer-fpr")]
    for bench in BENCHMARKS:
        per = {n: (m["heldout"]["identity_fpr_by_benchmark"][bench], "validation threshold")
               for n, m in models.items()
               if bench in ((m.get("heldout") or {}).get("identity_fpr_by_benchmark") or {})}
        if per:
            parts += [Markup("<h3>{} negatives only</h3>").format(bench),
                      _group_table(per, f"scorer-fpr-{bench}")]
    neutral = {}
    for n, m in models.items():
        nf = (m.get("heldout") or {}).get("identity_fpr_neutral") or {}
        if "all" in nf:
            neutral[n] = (nf, f"score >= {nf['threshold']}")
    if neutral:
        parts += [Markup("<h3>Neutral texts that name a group (BBQ contexts, by BBQ category)</h3>"),
                  _group_table(neutral, "scorer-fpr-neutral")]
    return join(parts) if parts else Markup("<p>No model in this folder has identity-group figures.</p>")


def categories_table(models: dict[str, dict[str, Any]]) -> Markup:
    parts = []
    for name, meta in models.items():
        cats = (meta.get("heldout") or {}).get("categories")
        if not cats:
            continue
        rows = []
        for cat, r in cats.items():
            data = ", ".join(r.get("datasets", []))
            if r.get("auroc") is not None:
                rows.append([cat, fmt(r["auroc"]), str(r["n_test"]), str(r["positives"]), data])
            else:
                rows.append([cat, "not reported", str(r["n_test"]), str(r["positives"]),
                             f"{data}: {r.get('status', '')}"])
        for cat, why in (meta.get("not_emitted") or {}).items():
            if cat not in cats:
                rows.append([cat, "not emitted", "", "", why])
        parts.append(Markup("<h3>{}</h3>").format(name))
        parts.append(_table(["category", "held-out AUROC", "test rows", "test positives", "data / note"],
                            rows, table_id=f"categories-{name}"))
    return join(parts) if parts else Markup("<p>No model in this folder reports harm categories.</p>")


def _curve(ax: Any, rel: dict[str, Any], label: str, marker: str) -> None:
    pts = [(b["mean_pred"], b["frac_pos"]) for b in rel["bins"] if b["n"]]
    if pts:
        ax.plot([p for p, _ in pts], [f for _, f in pts], marker=marker,
                label=f"{label} (ECE {rel['ece']:.3f})")


def reliability_figure(name: str, meta: dict[str, Any]) -> Figure | None:
    """Validation raw vs cross-fitted calibrated (toxicity head) and calibrated on each test split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val = (meta.get("reliability_validation") or {}).get("toxicity")
    test = (meta.get("heldout") or {}).get("reliability_test") or {}
    if not val and not test:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted P(toxic)")
        ax.set_ylabel("observed toxic share")
    if val:
        _curve(axes[0], val["raw"], "raw", "o")
        _curve(axes[0], val["calibrated_cross_fitted"], "calibrated (cross-fitted)", "s")
        axes[0].set_title(f"validation (n={val['raw']['n']})")
        axes[0].legend(fontsize=8)
    for (bench, rel), marker in zip(test.items(), "o^Ds", strict=False):
        _curve(axes[1], rel, bench, marker)
    if test:
        axes[1].set_title("held-out test splits, calibrated")
        axes[1].legend(fontsize=8)
    caption = ("Each point is a bin of predicted probability (10 equal-width bins): its mean "
               "prediction against the share of toxic texts in it; on the diagonal, a score of p means a "
               "share p of toxic texts. Test splits differ in base rate from the training mix, so their "
               "points may sit off the diagonal.")
    return Figure(f"reliability-{name}", f"Reliability of {name}", caption, _png(fig))


def training_note(meta: dict[str, Any]) -> str:
    t = meta.get("training") or {}
    if not t:
        return ""
    aug = meta.get("augmentation") or {}
    return (f"{t.get('steps')} of {t.get('total_steps')} steps (best at {t.get('best_step')}), "
            f"{t.get('seconds')} s of fine-tuning on {t.get('threads')} threads "
            f"({t.get('examples_per_second')} examples/s), {t.get('train_rows')} training rows"
            + (f" incl. {aug.get('copies')} counterfactual copies" if aug.get("enabled") else
               " (no augmentation)"))


def build_scorer_report(model_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``out`` (default ``model_dir/scorers.html``) from the models' meta.json; returns its path."""
    model_dir = Path(model_dir)
    models = read_models(model_dir)
    if not models:
        raise FileNotFoundError(f"{model_dir}: no trained scorer (meta.json) of {', '.join(MODELS)}")
    notes = [Markup("<li><b>{}</b>: {}</li>").format(n, training_note(m)) for n, m in models.items()
             if training_note(m)]
    sections = [
        {"id": "headline", "title": "Held-out figures",
         "body": join([Markup("<p>Official test splits; thresholds for macro-F1 from each benchmark's "
                              "validation split. Target for the reward scorer (issue 15): TweetEval "
                              "offensive AUROC &ge; 0.88 and macro-F1 &ge; 0.78, TweetEval hate AUROC &ge; "
                              "0.75, Jigsaw AUROC &ge; 0.96.</p>"), headline_table(models),
                       Markup("<ul>") + join(notes) + Markup("</ul>") if notes else Markup("")])},
        {"id": "groups", "title": "False positives on non-toxic texts that mention a group",
         "body": join([Markup("<p>Share of non-toxic test texts (all three benchmarks) flagged toxic, per "
                              "identity group mentioned, with a Wilson 95% interval; red above the 0.30 "
                              "target. TweetEval hate's negatives are tweets that are not <i>hate</i>, "
                              "many of them offensive, so a toxicity scorer flags them whatever group they "
                              "name; the BBQ contexts are neutral by construction and isolate the mention "
                              "of a group.</p>"),
                       fpr_table(models)])},
        {"id": "categories", "title": "Harm categories", "body": categories_table(models)},
        {"id": "reliability", "title": "Calibration",
         "body": join(_figure_html(f) for n, m in models.items() if (f := reliability_figure(n, m)))
         or Markup("<p>No reliability data.</p>")},
    ]
    html = render("report.html", title=f"scorers in {model_dir.name}",
                  lead="What the reward scorers and the judge see, and where they are wrong.",
                  sections=sections, version=__version__, runs=str(model_dir),
                  written_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    path = Path(out) if out is not None else model_dir / REPORT_FILE
    write_text_atomic(path, html)
    return path
