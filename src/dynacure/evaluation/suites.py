"""The suites by name, and ``run_suites``: evaluate one learner on several suites into one JSON-able dict."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from dynacure.evaluation.base import Suite
from dynacure.evaluation.bias import BBQSuite, WinogenderSuite
from dynacure.evaluation.checkpoint import Checkpoint, ChunkStore
from dynacure.evaluation.common import ProgressFn
from dynacure.evaluation.domain_perplexity import DomainPerplexitySuite
from dynacure.evaluation.judge import Judge, judge_provenance
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


# The sizes ``dynacure evaluate`` uses unless ``--full``: a few minutes for a small model on 2 CPU cores
# (a `tiny` TinyGPT: toxicity 129 s + perplexity 93 s, 3 min 57 s for the command on a shared machine; the
# full sets took about 20 minutes for toxicity alone). Experiments set their own sizes in their
# config; these apply only to the command. A size the user gives (a flag or --option) always wins.
QUICK_SIZES: dict[str, dict[str, Any]] = {
    "toxicity": {"max_prompts": 50, "samples": 5},  # per kind: 100 prompts x 5 continuations
    "perplexity": {"max_tokens": 20_000},  # words of each test corpus
    "preference": {"max_pairs": 200},  # per subset
    "truthfulqa": {"max_questions": 200},
    "bbq": {"max_items": 600},
    "refusal": {"max_prompts": 50},  # per set
    "domain_perplexity": {"max_texts_per_domain": 100},
}
# Options that point a suite at the user's own file: its own size then, not a quick subset of it.
_OWN_FILES = ("prompts_file", "items_file", "sentences_file")


def apply_sizes(options: dict[str, dict[str, Any]], names: list[str], full: bool
                ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``options`` with the quick sizes added where the user set none (nothing added when ``full``).

    Returns the options and, per suite, the quick sizes that were added (to tell the user)."""
    out = {k: dict(v) for k, v in options.items()}
    added: dict[str, dict[str, Any]] = {}
    if full:
        return out, added
    for name in names:
        mine = out.get(name, {})
        own_file = any(mine.get(k) for k in _OWN_FILES)
        for key, value in QUICK_SIZES.get(name, {}).items():
            if key in mine or (own_file and key.startswith("max_")):
                continue
            mine[key] = value
            added.setdefault(name, {})[key] = value
        if mine:
            out[name] = mine
    return out, added


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
               on_suite: Callable[[str, dict[str, Any]], None] | None = None,
               checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """Run the named suites on ``learner``; ``options`` maps suite name -> its options.

    Returns ``{"format_version", "seed", "suites": {name: SuiteResult.to_dict() + seconds}, "data_files"}``.
    All suites are built (and their options checked) before the first one runs. With a ``checkpoint``
    (``evaluation.checkpoint``), a suite finished earlier under the same key is reused, the results so far
    are written after each suite, chunks of a suite's work are kept for a resumed run, and the result
    carries ``suite_keys``.
    """
    wanted = parse_suite_names(names)
    options = options or {}
    stray = sorted(set(options) - set(wanted))
    if stray:
        raise ValueError(f"options given for suites that are not run: {stray}")
    suites = {n: get_suite(n, options=options.get(n), judge=judge, progress=progress) for n in wanted}
    out: dict[str, Any] = {"format_version": FORMAT_VERSION, "seed": seed, "suites": {}, "data_files": []}
    keys: dict[str, str] = {}
    if checkpoint is not None:
        out["suite_keys"] = keys
        judge_info = judge_provenance(judge) if judge is not None else None
        for name in wanted:
            keys[name] = checkpoint.suite_key(name, options.get(name), seed,
                                              judge_info if name == "toxicity" else None)
    for i, (name, suite) in enumerate(suites.items()):
        d = checkpoint.finished(name, keys[name]) if checkpoint is not None else None
        if d is None:
            store = checkpoint.store(name, keys[name]) if checkpoint is not None else None
            d = _run_one(name, suite, learner, seed, store)
        out["suites"][name] = d
        for f in d["details"].get("data_files", []):
            if f not in out["data_files"]:
                out["data_files"].append(f)
        if checkpoint is not None:
            checkpoint.save(out, pending=wanted[i + 1:])
            checkpoint.suite_done(name, keys[name])
        if on_suite:
            on_suite(name, d)
    return out


def _run_one(name: str, suite: Suite, learner: Learner, seed: int, store: ChunkStore | None
             ) -> dict[str, Any]:
    seed_everything(seed)
    suite.checkpoint = store
    t0 = time.perf_counter()
    res = suite.run(learner, seed=seed)
    d = res.to_dict()
    d["seconds"] = round(time.perf_counter() - t0, 3)
    if store is not None and store.reused:
        d["details"]["chunks_reused"] = store.reused  # how much an earlier, interrupted run had done
    log.info("suite %s done in %.1fs%s", name, d["seconds"],
             f" (skipped: {res.skipped})" if res.skipped else "")
    return d
