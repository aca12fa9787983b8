"""What ``dynacure report PATH`` is looking at, told from the files there, and the page for each kind.

- ``experiment``: a RUNS folder of ``dynacure experiment`` / ``demo`` (``results.parquet``): the full
  comparison report (``report.html``);
- ``corpus``: a folder written by ``dynacure curate`` (``summary.json`` + ``manifest.parquet``): its
  composition by source, drops by reason and score distributions (``report.corpus``);
- ``evaluation``: the results file of ``dynacure evaluate`` (a JSON file with ``suites``), or a folder
  holding one: the model folder or any folder whose run record is evaluate's (its ``out``), or a
  ``results.json`` / ``eval.json`` there: every metric with its interval (``report.evaluation``).

Each page is one static, self-contained HTML file, written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from dynacure.io.atomic import write_text_atomic
from dynacure.report.evaluation import read_evaluation

log = logging.getLogger(__name__)

Kind = Literal["experiment", "corpus", "evaluation"]
EVAL_NAMES = ("results.json", "eval.json", "evaluation.json")
KINDS_TEXT = ("a RUNS folder of `dynacure experiment` / `demo` (results.parquet), a curated corpus folder of "
              "`dynacure curate` (summary.json + manifest.parquet), or an evaluation: the results JSON of "
              "`dynacure evaluate` or a folder holding it")


def find_evaluation(folder: Path) -> Path | None:
    """The evaluation results file of ``folder``: the one its evaluate run record names, else a file of
    a usual name that holds evaluation results."""
    from dynacure.runinfo import find_run_info

    rec = find_run_info(folder, "evaluate")
    if rec is not None:
        out = Path(str(rec.get("config", {}).get("out", "")))
        for cand in (out, folder / out.name):
            if out.name and cand.is_file() and read_evaluation(cand) is not None:
                return cand
    for name in EVAL_NAMES:
        if (folder / name).is_file() and read_evaluation(folder / name) is not None:
            return folder / name
    return None


def detect(path: str | Path) -> tuple[Kind, Path]:
    """The kind of ``path`` and the file or folder its page is made from; a clear error otherwise."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (give {KINDS_TEXT})")
    if p.is_file():
        if read_evaluation(p) is not None:
            return "evaluation", p
        raise ValueError(f"{p}: not the results of `dynacure evaluate` (a JSON object with 'suites'); "
                         f"give {KINDS_TEXT}")
    if (p / "results.parquet").is_file():
        return "experiment", p
    if (p / "summary.json").is_file() and (p / "manifest.parquet").is_file():
        return "corpus", p
    found = find_evaluation(p)
    if found is not None:
        return "evaluation", found
    if (p / "cells").is_dir():
        raise ValueError(f"{p}: an experiment without a results table yet (no results.parquet): let "
                         "`dynacure experiment` finish, or re-run it to collect the results")
    if (p / "manifest.parquet").is_file():
        raise ValueError(f"{p}: a curate run that has not finished (no summary.json); re-run the same "
                         "`dynacure curate` command")
    if (p / "learner.json").is_file() or (p / "config.json").is_file():
        raise ValueError(f"{p}: a model folder without an evaluation; run `dynacure evaluate {p} "
                         f"--out {p / 'eval.json'}` first")
    raise ValueError(f"{p}: nothing to report here; give {KINDS_TEXT}")


def default_out(path: str | Path) -> Path:
    """``report.html`` in the folder given (beside the file, when a file was given)."""
    p = Path(path)
    return (p if p.is_dir() else p.parent) / "report.html"


def build_any(path: str | Path, out: str | Path | None = None) -> tuple[Kind, Path]:
    """Render the page of whatever ``path`` is (``detect``) into ``out`` (default: ``default_out``)."""
    kind, source = detect(path)
    target = Path(out) if out is not None else default_out(path)
    if kind == "experiment":
        from dynacure.report.html import build_report

        return kind, build_report(source, target)
    if kind == "corpus":
        from dynacure.report.corpus import render_corpus

        page = render_corpus(source)
    else:
        from dynacure.report.evaluation import render_evaluation

        page = render_evaluation(source)
    write_text_atomic(target, page)
    log.info("%s report written to %s", kind, target)
    return kind, target
