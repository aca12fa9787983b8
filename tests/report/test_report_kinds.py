"""`dynacure report PATH` for a user's own work (issue 28, item 5): a curated corpus folder made by the real
`dynacure curate` on a small generated corpus, a saved model's evaluation made by the real `dynacure
evaluate`, and an experiment; the kind is told from the files, and each page holds the expected figures."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io.demo_corpus import generate_demo_corpus
from dynacure.report.kinds import detect
from dynacure.report.markup import fmt

sys.path.insert(0, str(Path(__file__).parent))
from test_report_ties import _cell  # noqa: E402  (a synthetic experiment cell, with Units)


def _text(page: str) -> str:
    """The page's words: tags out, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_corpus_report_from_a_real_curate_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    docs = generate_demo_corpus(150, toxic_share=0.2, seed=3)
    corpus.write_text("".join(json.dumps({"id": d.id, "text": d.text, "source": d.source}) + "\n"
                              for d in docs))
    out = tmp_path / "curated"
    _invoke(["curate", str(corpus), "--strategy", "heuristic", "--budget", "0.5", "--out", str(out)])
    assert detect(out) == ("corpus", out)
    said = _invoke(["report", str(out)])
    assert "corpus report" in said
    page = (out / "report.html").read_text()
    words = _text(page)
    summary = json.loads((out / "summary.json").read_text())
    for title in ("What was curated", "Composition by source", "Drops by reason", "Score distributions"):
        assert f'<h2>{title}</h2>' in page
    # every source with its documents and kept counts, as the summary has them
    for src, v in summary["by_source"].items():
        kept_share = f"{100 * v['kept'] / v['documents']:.1f}%"
        row = rf"{src} {fmt(v['documents'])} {fmt(v['kept'])} {re.escape(kept_share)} "
        assert re.search(row, words), src
    for reason, n in summary["dropped_by_reason"].items():
        assert f"dropped {reason} {fmt(n)} " in words
    assert "toxicity>=0.5" in summary["dropped_by_reason"]  # the heuristic's own reason is there
    # the profanity score the heuristic read, kept vs dropped, and its histogram
    assert "profanity__toxicity" in words and 'id="fig-scores"' in page and "data:image/png;base64," in page
    assert "no interval" in words


def test_evaluation_report_from_a_real_evaluate_run(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from dynacure.learners.tiny_gpt import TinyGPT
    sys.path.insert(0, str(Path(__file__).parents[1] / "evaluation"))
    from test_eval_bias import ITEMS  # the BBQ items of the evaluation tests

    texts = [f"the cat number {i} sat on the mat ." for i in range(40)]
    model = tmp_path / "model"
    TinyGPT.create(texts, preset="nano", seed=0).save(model)
    with pytest.raises(ValueError, match="a model folder without an evaluation; run `dynacure evaluate"):
        detect(model)
    bbq = tmp_path / "bbq.jsonl"
    bbq.write_text("\n".join(json.dumps(x) for x in ITEMS))
    mc = tmp_path / "mc.json"
    mc.write_text(json.dumps([{"question": "Q?", "mc1_targets": {"senior": 1, "youth": 0},
                               "mc2_targets": {"senior": 1, "youth": 0}}] * 3))
    _invoke(["evaluate", str(model), "--suite", "truthfulqa,bbq", "--out", str(model / "eval.json"),
             "--option", f'truthfulqa.items_file="{mc}"', "--option", f'bbq.items_file="{bbq}"'])
    assert detect(model) == ("evaluation", model / "eval.json")  # found through evaluate's run record
    _invoke(["report", str(model)])
    page = (model / "report.html").read_text()
    words = _text(page)
    res = json.loads((model / "eval.json").read_text())
    for suite in ("truthfulqa", "bbq"):
        assert f"Suite {suite}" in words
        for metric, est in res["suites"][suite]["metrics"].items():
            assert re.search(rf"{re.escape(metric)} \S.*? {re.escape(fmt(est['value']))} "
                             rf"\[{re.escape(fmt(est['low']))}, {re.escape(fmt(est['high']))}\] {est['n']} ",
                             words), metric
    assert "quick subsets" in words and "Incomplete" not in words
    n_params = json.loads((model / "learner.json").read_text())["dims"]["n_parameters"]
    assert f"The model learner tiny_gpt preset 'nano', {fmt(n_params)} parameters, context 64" in words
    # an interrupted evaluation says so and how to finish it; a skipped suite is listed with its reason
    res.update(complete=False, suites_pending=["perplexity"])
    res["suites"]["refusal"] = {"suite": "refusal", "skipped": "the learner does not follow instructions",
                                "metrics": {}, "details": {}}
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(res))
    _invoke(["report", str(partial), "--out", str(tmp_path / "p.html")])
    words = _text((tmp_path / "p.html").read_text())
    assert "Incomplete: the evaluation was interrupted before perplexity finished" in words
    assert "Suites that did not run refusal : the learner does not follow instructions" in words


def test_experiment_folders_keep_their_report_and_other_paths_are_refused(tmp_path: Path) -> None:
    from dynacure.experiments.results import collect_results

    runs = tmp_path / "runs"
    for label, tox, shift in (("random", 0.08, 0.4), ("raft", 0.0, 0.0)):
        _cell(runs, label, max_tox=tox, ppl_shift=shift)
    collect_results(runs)
    assert detect(runs) == ("experiment", runs)
    said = _invoke(["report", str(runs)])
    assert "experiment report" in said and '<section id="who-wins">' in (runs / "report.html").read_text()
    stray = tmp_path / "notes.json"
    stray.write_text("[1, 2]")
    result = CliRunner().invoke(app, ["report", str(stray)])
    assert result.exit_code == 2 and "not the results of `dynacure evaluate`" in result.output
    result = CliRunner().invoke(app, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
