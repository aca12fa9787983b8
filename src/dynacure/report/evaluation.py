"""The report page of one trained model's evaluation (``dynacure evaluate``'s results file): what was
evaluated and how much of each test set, then every suite's metrics with their 95% intervals, one table
per suite, with the direction that is better, and the suites that did not run with the reason.

Values reach the page escaped (``Markup.format`` and the templates autoescape); figures carry the intervals
the suites computed (bootstrap over prompts, texts or items)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from markupsafe import Markup

from dynacure import __version__
from dynacure.report.markup import _est, _table, direction, fmt, join, render


def read_evaluation(path: Path) -> dict[str, Any] | None:
    """The results of ``dynacure evaluate`` in ``path``, or None when the file is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("suites"), dict) and "format_version" in data:
        return data
    return None


def _overview(res: dict[str, Any], source: Path) -> Markup:
    suites = res.get("suites", {})
    done = [n for n, r in suites.items() if not r.get("skipped")]
    pending = res.get("suites_pending") or []
    sizes = res.get("sizes")
    items = [
        ("model", str(res.get("model", "n/a"))),
        ("results file", str(source)),
        ("suites run", ", ".join(done) or "none"),
        ("suites skipped", ", ".join(n for n, r in suites.items() if r.get("skipped")) or "none"),
        ("test-set sizes", {"quick": "quick subsets (`dynacure evaluate --full` for the full sets)",
                            "full": "the full test sets"}.get(str(sizes), "as the options below say")),
        ("seed", str(res.get("seed", "n/a"))),
        ("time per suite (s)", ", ".join(f"{n} {fmt(r.get('seconds'))}" for n, r in suites.items()
                                         if r.get("seconds") is not None) or "n/a"),
        ("options", json.dumps(res.get("options", {}), sort_keys=True) if res.get("options") else "defaults"),
        ("data files", ", ".join(Path(f).name for f in res.get("data_files", [])) or "none"),
    ]
    dl = join((Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in items), "")
    parts: list[Any] = [Markup('<dl class="meta">{}</dl>').format(dl)]
    if res.get("complete") is False or pending:
        parts.append(Markup('<p class="note"><b>Incomplete:</b> the evaluation was interrupted before {} '
                            "finished; re-run the same <code>dynacure evaluate</code> command to finish it "
                            "(it resumes where it stopped).</p>").format(", ".join(pending) or "every suite"))
    return join(parts)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def model_section(res: dict[str, Any]) -> Markup:
    """What the evaluated model is, from its folder when it is still there: its kind and size
    (learner.json / a Hugging Face config.json) and how it was trained (train_log.json, run.json)."""
    folder = Path(str(res.get("model", "")))
    if not str(res.get("model", "")) or not folder.is_dir():
        return Markup("")
    learner, hf = _json(folder / "learner.json"), _json(folder / "config.json")
    log_ = _json(folder / "train_log.json")
    from dynacure.runinfo import find_run_info

    train = find_run_info(folder, "train") or {}
    items: list[tuple[str, str]] = []
    if learner:
        dims, preset = learner.get("dims", {}), learner.get("config", {}).get("preset", "n/a")
        items.append(("learner", f"{learner.get('kind', 'n/a')} preset '{preset}', "
                                 f"{fmt(dims.get('n_parameters'))} parameters, "
                                 f"context {dims.get('n_ctx', 'n/a')}"))
    elif hf:
        items.append(("learner", f"Hugging Face {hf.get('model_type', 'model')} "
                                 f"({', '.join(hf.get('architectures') or []) or 'n/a'})"))
    if train:
        cfg = train.get("config", {})
        items.append(("trained on", str(cfg.get("curated", cfg.get("corpus", "n/a")))))
    if log_:
        losses = [float(x) for x in log_.get("losses", []) if x is not None]
        tail = losses[-max(1, len(losses) // 5):] if losses else []
        steps = log_.get("steps", len(losses))
        items.append(("training", f"{fmt(log_.get('tokens_seen'))} tokens in {steps} "
                                  f"steps, {fmt(log_.get('seconds'))} s; mean loss of the last fifth "
                                  f"{fmt(sum(tail) / len(tail)) if tail else 'n/a'}"))
    if not items:
        return Markup("")
    dl = join((Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in items), "")
    return Markup('<dl class="meta">{}</dl>').format(dl)


def _suite_table(name: str, r: dict[str, Any]) -> Markup:
    rows = []
    for metric, est in sorted(r.get("metrics", {}).items()):
        value = float(est.get("value", float("nan")))
        low, high = float(est.get("low", float("nan"))), float(est.get("high", float("nan")))
        rows.append([metric, direction(metric) or "\u2013", _est(value, low, high), str(est.get("n", "n/a"))])
    return _table(["metric", "better", "value [95% interval]", "n"], rows, text_cols=2,
                  table_id=f"eval-{name}", table_class="results")


def _details(r: dict[str, Any]) -> str:
    """The suite's scalar details in one line (sizes, judge, thresholds), for reading the numbers."""
    keep = []
    for k, v in sorted(r.get("details", {}).items()):
        if k in ("data_files", "judge"):
            continue
        if isinstance(v, int | float | str | bool):
            keep.append(f"{k.replace('_', ' ')}: {fmt(v) if isinstance(v, float) else v}")
        elif isinstance(v, dict) and all(isinstance(x, int | float) for x in v.values()) and len(v) <= 8:
            keep.append(f"{k.replace('_', ' ')}: " + ", ".join(f"{a} {fmt(b)}" for a, b in v.items()))
    judge = r.get("details", {}).get("judge")
    if isinstance(judge, dict) and judge.get("name"):
        keep.append(f"judge: {judge['name']}")
    return "; ".join(keep)


def _results(res: dict[str, Any]) -> Markup:
    parts: list[Any] = [Markup(
        '<p class="note">Each value with its 95% interval in brackets (bootstrap over the suite\'s units: '
        "prompts, text blocks, pairs or items; n counts them).</p>")]
    skipped = []
    for name, r in res.get("suites", {}).items():
        if r.get("skipped"):
            skipped.append(Markup("<li><code>{}</code>: {}</li>").format(name, r["skipped"]))
            continue
        parts.append(Markup("<h3>Suite <code>{}</code></h3>").format(name))
        parts.append(_suite_table(name, r))
        info = _details(r)
        if info:
            parts.append(Markup('<p class="note">{}</p>').format(info))
    if skipped:
        parts.append(Markup("<h3>Suites that did not run</h3><ul>{}</ul>").format(join(skipped, "")))
    return join(parts)


def render_evaluation(source: str | Path) -> str:
    """The page of the evaluation results file ``source``."""
    path = Path(source)
    res = read_evaluation(path)
    if res is None:
        raise ValueError(f"{path}: not the results of `dynacure evaluate` (a JSON object with 'suites')")
    sections = [
        {"id": "what-was-evaluated", "title": "What was evaluated", "body": _overview(res, path)},
        {"id": "results", "title": "Results", "body": _results(res)},
    ]
    model = model_section(res)
    if model:
        sections.insert(1, {"id": "model", "title": "The model", "body": model})
    model = Path(str(res.get("model", path.parent))).name or str(path)
    lead = ("How the trained model does on the evaluation suites: toxicity of its continuations judged by a "
            "model that no reward or selector uses, perplexity on held-out text, and the other suites run; "
            "every figure with its 95% interval.")
    return str(render("report.html", title=f"evaluation of {model}", lead=lead, sections=sections,
                      version=__version__, written_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      runs=str(path)))
