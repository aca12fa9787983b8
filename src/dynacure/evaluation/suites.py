"""The suites by name, and ``run_suites``: evaluate one learner on several suites into one JSON-able dict."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from dynacure.evaluation.base import Suite
from dynacure.evaluation.bias import BBQSuite, WinogenderSuite
from dynacure.evaluation.common import ProgressFn
from dynacure.evaluation.domain_perplexity import DomainPerplexitySuite
from dynacure.evaluation.judge import Judge
from dynacure.evaluation.perplexity import PerplexitySuite
from dynacure.evaluation.preference import PreferenceSuite
from dynacure.evaluation.refusal import RefusalSuite
from dynacure.evaluation.toxicity import ToxicitySuite
from dynacure.evaluation.truthfulqa import TruthfulQASuite
from dynacure.learners.base import Learner
from dynacure.runinfo import seed_everything

log = logging.getLogger(__name__)

FORMAT_VERSION = 1

SUITES: dict[str, type[Suite]] = {
    "toxicity": ToxicitySuite,
    "perplexity": PerplexitySuite,
    "domain_perplexity": DomainPerplexitySuite,
    "preference": PreferenceSuite,
    "truthfulqa": TruthfulQASuite,
    "bbq": BBQSuite,
    "winogender": WinogenderSuite,
    "refusal": RefusalSuite,
}


def available_suites() -> list[str]:
    return list(SUITES)


def get_suite(name: str, *, options: dict[str, Any] | None = None, judge: Judge | None = None,
              progress: ProgressFn | None = None) -> Suite:
    """Build suite ``name`` with its options validated (unknown option names are refused)."""
    if name not in SUITES:
        raise ValueError(f"unknown evaluation suite {name!r}; choose from {available_suites()}")
    kwargs: dict[str, Any] = dict(options or {})
    if name == "toxicity":
        return ToxicitySuite(judge=judge, progress=progress, **kwargs)
    return SUITES[name](progress=progress, **kwargs)  # type: ignore[call-arg]


def parse_suite_names(names: str | list[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else list(names)
    out = [n.strip() for n in items if n.strip()]
    if not out:
        raise ValueError("no evaluation suite named")
    for n in out:
        if n not in SUITES:
            raise ValueError(f"unknown evaluation suite {n!r}; choose from {available_suites()}")
    return list(dict.fromkeys(out))


def run_suites(learner: Learner, names: str | list[str], *, seed: int = 0,
               options: dict[str, dict[str, Any]] | None = None, judge: Judge | None = None,
               progress: ProgressFn | None = None,
               on_suite: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the named suites on ``learner``; ``options`` maps suite name -> its options.

    Returns ``{"format_version", "seed", "suites": {name: SuiteResult.to_dict() + seconds}, "data_files"}``.
    All suites are built (and their options checked) before the first one runs.
    """
    wanted = parse_suite_names(names)
    options = options or {}
    stray = sorted(set(options) - set(wanted))
    if stray:
        raise ValueError(f"options given for suites that are not run: {stray}")
    suites = {n: get_suite(n, options=options.get(n), judge=judge, progress=progress) for n in wanted}
    out: dict[str, Any] = {"format_version": FORMAT_VERSION, "seed": seed, "suites": {}, "data_files": []}
    for name, suite in suites.items():
        seed_everything(seed)
        t0 = time.perf_counter()
        res = suite.run(learner, seed=seed)
        d = res.to_dict()
        d["seconds"] = round(time.perf_counter() - t0, 3)
        out["suites"][name] = d
        for f in d["details"].get("data_files", []):
            if f not in out["data_files"]:
                out["data_files"].append(f)
        log.info("suite %s done in %.1fs%s", name, d["seconds"],
                 f" (skipped: {res.skipped})" if res.skipped else "")
        if on_suite:
            on_suite(name, d)
    return out
