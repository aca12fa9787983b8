"""The scorer report renders what the models' meta.json hold: intervals on small groups, misses marked, the
categories not emitted with their reason, and one reliability diagram per model that has the data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dynacure.report.scorers import FPR_TARGET, build_scorer_report, wilson
from dynacure.signals.training import reliability_bins


def _meta(fpr_women: float, n_women: int) -> dict:
    rel = reliability_bins([0, 0, 1, 1, 1, 0], [0.1, 0.2, 0.7, 0.9, 0.8, 0.4])
    return {
        "heldout": {
            "tweeteval_offensive": {"auroc": 0.85, "macro_f1": 0.75},
            "tweeteval_hate": {"auroc": 0.7, "macro_f1": 0.6},
            "jigsaw": {"auroc": 0.95, "macro_f1": 0.88},
            "identity_fpr_at_0.5": {"all": {"fpr": 0.2, "n": 1000},
                                    "women": {"fpr": fpr_women, "n": n_women},
                                    "disability": {"fpr": 0.0, "n": 3}},
            "identity_fpr_neutral": {"threshold": 0.5, "source": "BBQ unique contexts",
                                     "all": {"fpr": 0.05, "n": 600}, "Religion": {"fpr": 0.4, "n": 100}},
            "categories": {"religion": {"n_test": 500, "positives": 40, "datasets": ["jigsaw_test"],
                                        "auroc": 0.81, "status": "ok"},
                           "ability": {"n_test": 500, "positives": 4, "datasets": ["jigsaw_test"],
                                       "status": "too little test data: 4 positives (need >= 20)"}},
            "reliability_test": {"jigsaw": rel},
        },
        "reliability_validation": {"toxicity": {"raw": rel, "calibrated_cross_fitted": rel}},
        "not_emitted": {"ability": "too little data: 3 training positives"},
    }


def test_scorer_report_marks_misses_and_shows_intervals(tmp_path: Path) -> None:
    for name, meta in (("toxicity_transformer", _meta(0.5, 40)), ("judge", _meta(0.1, 40))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text(json.dumps(meta))
    html = build_scorer_report(tmp_path).read_text()
    assert (tmp_path / "scorers.html").exists()
    low, high = wilson(20, 40)
    assert 0.34 < low < 0.36 and 0.64 < high < 0.66  # Wilson interval of 20/40
    fpr = html[html.index('id="scorer-fpr"'):]
    fpr = fpr[: fpr.index("</table>")]
    women = re.search(r"<tr><td class=\"text\">women</td>(.*?)</tr>", fpr, re.S).group(1)
    cells = re.findall(r'<td class="([^"]*)">', women)
    # the transformer's 0.5 is above the target (marked worse), the judge's 0.1 below (better)
    assert 0.5 > FPR_TARGET > 0.1
    assert cells == ["worse", "better"]
    assert "0.5 <span class='ci'>[0.352, 0.648] n=40</span>" in women
    neutral = html[html.index('id="scorer-fpr-neutral"'):]
    religion = re.search(r"<tr><td class=\"text\">Religion</td>(.*?)</tr>", neutral, re.S).group(1)
    assert re.findall(r'<td class="([^"]*)">', religion) == ["worse", "worse"]  # 0.4 > 0.30 in both models
    assert "too little test data: 4 positives" in html
    assert html.count('<figure id="fig-reliability-') == 2


def test_scorer_report_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no trained scorer"):
        build_scorer_report(tmp_path)


def test_scorer_report_names_a_broken_meta(tmp_path: Path) -> None:
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "meta.json").write_text('{"heldout": \n oops}')
    with pytest.raises(ValueError, match=r"judge/meta.json: line 2"):
        build_scorer_report(tmp_path)
