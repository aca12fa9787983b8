"""The report's first section from a synthetic experiment written to disk (metrics.json with Units, then
collect_results and the real renderer): the Pareto strategies and the significant paired differences in
sentences, escaping of a strategy label with HTML in it, and results split into per-suite tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dynacure.experiments.results import collect_results
from dynacure.report.data import load_run
from dynacure.report.html import MAX_METRIC_COLUMNS, render_report, results_table
from dynacure.report.sections import metric_label, who_wins
from dynacure.stats import Units

EVIL = '<b>x&y</b><script>alert("1")</script>'
N_PROMPTS, N_TEXTS = 80, 40
DOMAINS = ("tweets", "wikitext2")


def _write_cell(root: Path, label: str, name: str, seed: int, tox_rate: float, tweet_scale: float,
                extra: int = 0) -> None:
    rng = np.random.default_rng(100 + seed)  # the same units (prompts, texts) for every strategy of a seed
    prompt_ids = [f"prompt{i}" for i in range(N_PROMPTS)]
    hits = (np.arange(N_PROMPTS) < tox_rate * N_PROMPTS).astype(float)
    words = rng.integers(10, 30, N_TEXTS * len(DOMAINS)).astype(float)
    nll = words * rng.uniform(3.0, 5.0, len(words))
    groups = [d for d in DOMAINS for _ in range(N_TEXTS)]
    nll = np.where(np.array(groups) == "tweets", nll * tweet_scale, nll)
    ids = [f"{g}:{i}" for i, g in enumerate(groups)]
    macro = Units("exp_ratio", nll, words, ids=ids, groups=groups)
    units = {("toxicity", "toxicity_probability"): Units("mean", hits, ids=prompt_ids),
             ("domain_perplexity", "word_perplexity_macro"): macro}
    for d in DOMAINS:
        m = np.array(groups) == d
        units[("domain_perplexity", f"word_perplexity_{d}")] = Units(
            "exp_ratio", nll[m], words[m], ids=[i for i, k in zip(ids, m, strict=True) if k])
    suites: dict = {}
    for (suite, metric), u in units.items():
        s = suites.setdefault(suite, {"skipped": None, "metrics": {}, "units": {}, "details": {}})
        v = u.statistic()
        s["metrics"][metric] = {"value": v, "low": v * 0.9, "high": v * 1.1, "n": len(u)}
        s["units"][metric] = u.to_dict()
    for i in range(extra):  # more toxicity figures, without units, to make the suite's table long
        est = {"value": 0.5, "low": 0.4, "high": 0.6, "n": 10}
        suites["toxicity"]["metrics"][f"toxicity_probability_kind{i}"] = est
    cell = {"strategy": label, "strategy_name": name, "seed": seed, "budget": 0.5, "weights_name": "default",
            "params": {}, "weights": {}}
    d = root / "cells" / f"{re.sub(r'[^a-z_]+', '-', label)}-s{seed}"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"format_version": 1, "cell": cell, "suites": suites,
                                                "efficiency": {}}))
    (d / "run.json").write_text("{}")
    (d / "DONE").write_text("")


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    for seed in (0, 1):
        _write_cell(tmp_path, "random", "random", seed, tox_rate=0.6, tweet_scale=1.0, extra=7)
        _write_cell(tmp_path, "source_filter", "source_filter", seed, tox_rate=0.2, tweet_scale=1.6, extra=7)
        _write_cell(tmp_path, EVIL, "ppo", seed, tox_rate=0.1, tweet_scale=1.05, extra=7)
    collect_results(tmp_path)
    return tmp_path


def test_who_wins_names_the_pareto_front_and_the_significant_differences(runs: Path) -> None:
    data = load_run(runs)
    (budget,) = who_wins(data)
    assert budget["heading"] == "Budget 0.5 (best static baseline: source_filter)"
    # EVIL: least toxic; random: best utility; source_filter is beaten on both by EVIL
    front = budget["pareto"].split(": ", 1)[1]
    assert re.findall(r"(?:^|; )(.+?) \(", front) == [EVIL, "random"]
    assert "The other 1 is dominated" in budget["pareto"]
    found = budget["findings"]
    start = "At budget 0.5, source_filter is worse than random on clean-tweet perplexity (per word) by +"
    tweets = [f for f in found if f.startswith(start)]
    assert len(tweets) == 1 and tweets[0].endswith("(2 seeds, 40 paired units each).")
    interval = re.search(r"\[\+?([\d.,]+), \+?([\d.,]+)\]", tweets[0]).groups()
    lo, hi = (float(x.replace(",", "")) for x in interval)
    assert 0 < lo < hi
    # safety first: the headline metrics lead the list
    tox = "on toxicity probability by"
    assert found[0].startswith(f"At budget 0.5, {EVIL} is better than random {tox} -0.5 ")
    assert any(f.startswith(f"At budget 0.5, source_filter is better than random {tox} -0.4 ") for f in found)
    # the learned strategy against the best static baseline, on the headline safety metric
    assert any(f.startswith(f"At budget 0.5, {EVIL} is better than source_filter (the best static baseline)"
                            " on toxicity probability by -0.1 ") for f in found)
    label = metric_label("domain_perplexity", "word_perplexity_macro")
    assert label == "macro-mean domain perplexity (per word)"


def test_strategy_labels_are_escaped_everywhere(runs: Path) -> None:
    page = render_report(load_run(runs))
    assert EVIL not in page and "<script>" not in page
    escaped = "&lt;b&gt;x&amp;y&lt;/b&gt;&lt;script&gt;alert(&#34;1&#34;)&lt;/script&gt;"
    assert page.count(escaped) >= 4  # who wins, overview, results tables, paired tables
    first = page.index('<section id="who-wins">')
    assert first < page.index('<section id="what-was-run">') < page.index('<section id="results">')
    assert "source_filter is worse than random on clean-tweet perplexity" in page


def test_long_suites_are_split_into_tables_of_a_few_metrics(runs: Path) -> None:
    html = str(results_table(load_run(runs)))
    tables = re.findall(r'<table id="(results[^"]*)"', html)
    # headline, toxicity (8 metrics: 2 tables), domain_perplexity (3 metrics: 1 table)
    assert tables == ["results", "results-domain_perplexity-1", "results-toxicity-1", "results-toxicity-2"]
    for body in re.findall(r"<table.*?</table>", html, flags=re.S):
        header = re.search(r"<thead>(.*?)</thead>", body, flags=re.S).group(1)
        assert header.count("<th") <= 3 + MAX_METRIC_COLUMNS
