"""``curate``: run one selection strategy over a corpus and write the curated corpus plus its decision record.

Steps: validate everything cheap first (budget, strategy, weights, paths); stream the corpus shard by shard
(unreadable records go to ``quarantine.jsonl``); get the attributes the strategy needs, either from stored
tables (``attributes``) or by scoring each shard with the signals (written under ``OUT/attributes`` and
reused on a rerun); select at the token budget; write

- ``OUT/shard-*.jsonl.gz`` + ``OUT/corpus.json``: the kept documents (re-routed ones with their tag prefix,
  PII redacted with ``redact_pii``; ``meta["curate_weight"]`` carries a loss weight other than 1),
- ``OUT/manifest.parquet``: one row per input record (``id, decision, probability, weight, reason``), with
  decision ``keep`` / ``drop`` / ``quarantined``,
- ``OUT/run.json`` and, last, ``OUT/summary.json``: the folder is complete exactly when ``summary.json``
  exists. A rerun first removes it (and temporary files a killed run left), then redoes the work; attribute
  shards scored by the killed run are reused, and every file is written atomically and byte-deterministically,
  so a run killed at any point and rerun gives the same files as an uninterrupted run.
  A loop strategy's policy learning checkpoints under ``OUT/policy-checkpoint/<key>`` and a rerun resumes
  it (``_policy_checkpoint``); ``CurateResult.extra["resumed"]`` says what a rerun reused (attribute
  shards, the policy step), which the CLI prints. Input paths are stored absolute and relative to OUT.

Accounting: every record read is exactly one manifest row, so ``kept + dropped + quarantined ==
records_read`` (checked before the summary is written).

The work is the pipeline's steps, in order: ``ReadStep`` (first pass, with ``ScoreStep`` per shard when no
stored attributes are given; memory: see ``pipeline.read``), ``SelectStep``, then ``WriteStep`` (second
pass) with ``TextTransform`` on every kept document. This function checks the input, wires the steps and
writes the summary and run record.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from dynacure.io.atomic import write_json_atomic
from dynacure.io.attributes import signals_in
from dynacure.learners.base import Learner
from dynacure.pipeline.read import MISSING_ATTRIBUTES, ReadStep
from dynacure.pipeline.score import ScoreStep
from dynacure.pipeline.select import CAP_DROPPED, CAP_READMITTED, SelectStep, apply_disparity_cap
from dynacure.pipeline.strategies import selector_class
from dynacure.pipeline.transform import TextTransform
from dynacure.pipeline.write import MANIFEST_COLUMNS, WriteStep
from dynacure.runinfo import absolute, seed_everything, write_run_info
from dynacure.selectors.base import Selection, SelectionContext
from dynacure.selectors.budget import check_budget
from dynacure.selectors.reward import RewardWeights

__all__ = ["CAP_DROPPED", "CAP_READMITTED", "MANIFEST_COLUMNS", "MISSING_ATTRIBUTES", "SUMMARY_FILE",
           "CurateResult", "apply_disparity_cap", "curate", "read_target_texts"]

log = logging.getLogger(__name__)

SUMMARY_FORMAT_VERSION = 1
SUMMARY_FILE = "summary.json"  # written last: its presence marks a finished run
# The input paths run.json keeps absolute and relative to OUT, so OUT reads from anywhere (runinfo).
RUN_PATHS = ("corpus", "attributes", "target")
POLICY_CHECKPOINTS = "policy-checkpoint"  # a loop strategy's policy learning, resumable (removed when done)

ProgressFn = Callable[[str, int, int], None]


@dataclass
class CurateResult:
    out_dir: Path
    summary: dict[str, Any]
    selection: Selection | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> pd.DataFrame:
        """The decision manifest, read from ``manifest.parquet`` (it is written in chunks, never held)."""
        return pd.read_parquet(self.out_dir / "manifest.parquet")


def _weights(weights: RewardWeights | str | None) -> RewardWeights | None:
    if weights is None or isinstance(weights, RewardWeights):
        return weights
    return RewardWeights.parse(weights)


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def read_target_texts(path: str | Path) -> list[str]:
    """Texts of a target/holdout corpus (any format the readers take)."""
    from dynacure.io.readers import read_documents

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: target corpus not found")
    texts = [d.text for d in read_documents(p)]
    if not texts:
        raise ValueError(f"{p}: target corpus has no readable documents")
    return texts


def _with_signal_kwargs(params: dict[str, Any], signal_kwargs: Mapping[str, Mapping[str, Any]]
                        ) -> dict[str, Any]:
    """``params`` with ``--signal-arg``'s options for a loop strategy (its probes build the signals too)."""
    kwargs = {k: dict(v) for k, v in signal_kwargs.items()}
    if params.get("signal_kwargs") not in (None, kwargs):
        raise ValueError("signal options given twice (--signal-arg and --param signal_kwargs): give them "
                         "once, with --signal-arg")
    return {**params, "signal_kwargs": kwargs}


def _check_signal_kwargs_used(selector: Any, strategy: str, signal_kwargs: Mapping[str, Any], *,
                              scores_here: bool) -> None:
    """Refuse ``--signal-arg`` options that no signal built here would use, rather than ignore them."""
    if hasattr(selector, "signal_kwargs"):  # a loop strategy: its probes may build any signal
        return
    scored = set(selector.signals) if scores_here else set()
    unused = sorted(set(signal_kwargs) - scored)
    if unused:
        why = ("the attributes are stored (--attributes): pass them to `dynacure score`" if not scores_here
               else f"strategy {strategy!r} scores no such signal")
        raise ValueError(f"--signal-arg {', '.join(unused)}: not used here; {why}")


def _start_clean(out: Path) -> None:
    """Make a (re)started run look unfinished and drop the temporary files a killed run left behind."""
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    for tmp in [*out.glob(".*.tmp"), *out.glob("attributes/*/.*.tmp")]:
        tmp.unlink(missing_ok=True)



def _policy_checkpoint(selector: Any, out: Path, table: pd.DataFrame, seed: int, budget: float
                       ) -> Path | None:
    """Where a loop strategy's policy learning checkpoints, so that an interrupted curate resumes it:
    ``OUT/policy-checkpoint/<key>``, the key a digest of the strategy's parameters, seed, budget and the
    candidate ids, so a checkpoint of another run (or of a changed corpus) is never resumed. None for a
    strategy that learns no policy here or checkpoints where its own ``checkpoint_dir`` says."""
    if getattr(selector, "kind", None) != "loop" or getattr(selector, "policy_path", None) is not None:
        return None
    if getattr(selector, "checkpoint_dir", False) is not None:
        return None
    blob = json.dumps({"params": selector.params(), "seed": seed, "budget": budget}, sort_keys=True,
                      default=str).encode()
    ids = hashlib.sha1(blob)
    for chunk in range(0, len(table), 100_000):  # chunked: no copy of a million-id string at once
        ids.update("\n".join(map(str, table["id"].iloc[chunk:chunk + 100_000])).encode())
    folder = out / POLICY_CHECKPOINTS / ids.hexdigest()[:16]
    for stale in (out / POLICY_CHECKPOINTS).glob("*"):
        if stale != folder:  # another run's, never resumed: do not let it pile up
            shutil.rmtree(stale, ignore_errors=True)
    selector.checkpoint_dir = str(folder)
    return folder


def _run_config(corpus: Path, strategy: str, budget: float, attributes: Any, target: Any,
                rw: RewardWeights | None, redact_pii: bool, params: dict[str, Any],
                disparity_cap: float | None) -> dict[str, Any]:
    """What ``run.json`` records of a curate run."""
    return {"corpus": str(corpus), "strategy": strategy, "budget": budget,
            "attributes": str(attributes) if attributes else None,
            "target": str(target) if isinstance(target, str | Path) else None,
            "weights": rw.model_dump() if rw is not None else None, "redact_pii": redact_pii,
            "params": params, "disparity_cap": disparity_cap}


def curate(corpus: str | Path, out_dir: str | Path, strategy: str, budget: float, *,
           attributes: str | Path | None = None, target: str | Path | list[str] | None = None, seed: int = 0,
           weights: RewardWeights | str | None = None, redact_pii: bool = False,
           params: dict[str, Any] | None = None, learner: Learner | None = None, shard_size: int = 10000,
           out_shard_size: int = 5000, progress: ProgressFn | None = None,
           disparity_cap: float | None = None, streaming: bool | Literal["auto"] = "auto",
           labelling: dict[str, Any] | None = None,
           signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None) -> CurateResult:
    """Curate ``corpus`` with ``strategy`` at ``budget`` (share of tokens) into ``out_dir``.

    ``labelling`` (``curate --propose-labels N`` / ``--labels FILE``; a strategy that asks for labels,
    ``raft_labels``, loop/labels.py): ``{"labels_dir", "propose_labels", "labels_file"}``. A proposal step
    writes ``labels_dir/proposal-RR.jsonl`` and returns with ``extra["labels_proposed"]`` (the stop, whose
    text says what to do next) and no selection written; a step with labels only finishes the selection.

    ``disparity_cap``: after selection, re-admit documents of identity/dialect groups the strategy removes
    more than ``disparity_cap`` times as often as the corpus overall (``dynacure.audit.mitigation``), at
    the same token budget; re-admitted rows get reason ``readmitted:disparity_cap`` and the rows dropped to
    pay for them ``dropped:disparity_cap``.

    ``signal_kwargs`` (``curate --signal-arg``): constructor options per signal name, for the signals curate
    scores itself (no ``attributes``) and those a loop strategy probes with (its ``signal_kwargs``).

    ``streaming``: ``"auto"`` selects shard by shard in bounded memory (``pipeline.streaming``, the same
    files) whenever the strategy streams and the attributes are stored, ``True`` requires it (ValueError
    saying why not), ``False`` always holds the candidate table."""
    # ---- refuse bad input before any work ---------------------------------------------------------------
    budget = check_budget(budget)
    factory = selector_class(strategy)
    rw = _weights(weights)
    corpus = Path(corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"{corpus}: corpus not found")
    if attributes is not None and not Path(attributes).is_dir():
        raise FileNotFoundError(f"{attributes}: attributes folder not found")
    if factory.needs_target and target is None:
        raise ValueError(f"strategy {strategy!r} needs a target/holdout set (--target TARGET_CORPUS)")
    if shard_size < 1 or out_shard_size < 1:
        raise ValueError(f"shard sizes must be >= 1 (shard_size={shard_size}, "
                         f"out_shard_size={out_shard_size})")
    if disparity_cap is not None and not (np.isfinite(disparity_cap) and disparity_cap >= 1.0):
        raise ValueError(f"disparity cap must be a ratio >= 1 (got {disparity_cap})")
    params = dict(params or {})
    if rw is not None:
        if not _accepts(factory, "weights"):
            raise ValueError(f"strategy {strategy!r} does not use reward weights (--weights)")
        params["weights"] = rw
    if signal_kwargs and _accepts(factory, "signal_kwargs"):
        params = _with_signal_kwargs(params, signal_kwargs)
    selector = factory(**params) if params else factory()
    if signal_kwargs:
        _check_signal_kwargs_used(selector, strategy, signal_kwargs, scores_here=attributes is None)
    if labelling is not None:
        if not hasattr(selector, "labels_dir"):
            raise ValueError(f"--propose-labels/--labels: strategy {strategy!r} asks for no labels "
                             "(use raft_labels)")
        selector.labels_dir = str(labelling["labels_dir"])
        selector.propose_labels = labelling.get("propose_labels")
        selector.labels_file = labelling.get("labels_file")
        streaming = False  # the proposals name documents by id: the in-memory table
    if streaming is not False:
        from dynacure.pipeline import streaming as stream

        why = stream.why_not_streamable(selector, attributes, disparity_cap)
        if why is None:
            try:
                return stream.run(corpus, Path(str(attributes)), Path(out_dir), selector, strategy, budget,
                                  seed=seed, shard_size=shard_size, out_shard_size=out_shard_size,
                                  redact_pii=redact_pii, weights=rw.model_dump() if rw is not None else None,
                                  run_config=_run_config(corpus, strategy, budget, attributes, target, rw,
                                                         redact_pii, {}, disparity_cap), progress=progress)
            except stream.NotStreamable as exc:
                why = str(exc)
        if streaming is True:
            raise ValueError(f"strategy {strategy!r} cannot select shard by shard here: {why}")
        log.info("selecting in memory: %s", why)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _start_clean(out)
    rng_seed = seed_everything(seed)  # torch/numpy for learner-based strategies
    del rng_seed
    target_texts = read_target_texts(target) if isinstance(target, str | Path) else target

    # ---- read (and score) shard by shard --------------------------------------------------------------
    attrs_dir = Path(attributes) if attributes is not None else out / "attributes"
    score = (ScoreStep(attrs_dir, selector.signals, {k: v for k, v in (signal_kwargs or {}).items()
                                                      if k in selector.signals})
             if attributes is None and selector.signals else None)
    use_signals = [s for s in (signals_in(attrs_dir) if attributes is not None else
                               sorted(score.signals) if score is not None else [])
                   if s != "embedding" or s in selector.optional_signals]
    read = ReadStep(corpus, out, selector, attrs_dir, use_signals, shard_size=shard_size, score=score,
                    groups=disparity_cap is not None, progress=progress)
    cand = read.run()
    if labelling is not None:
        from dynacure.pipeline.read import _read_ids

        # proposals and labels name documents by their ids; the table holds row positions
        selector.doc_ids = _read_ids(corpus, shard_size).to_numpy()[cand.read_pos]

    # ---- select ----------------------------------------------------------------------------------------
    if progress:
        progress("select", 0, 0)
    policy_ckpt = _policy_checkpoint(selector, out, cand.table, seed, budget)
    resumed = {"attribute_shards": sum(n for k, n in score.stats.items() if k.startswith("reused:"))
               if score is not None else 0, "policy_step": 0}
    policy_progress = (lambda done, total: progress("policy", done, total)) if progress else None
    ctx = SelectionContext(budget=budget, seed=seed, learner=learner, target_texts=target_texts,
                           progress=policy_progress)
    step = SelectStep(selector, ctx, disparity_cap)
    if labelling is not None:
        from dynacure.loop.labels import LabelsProposed

        try:
            selection = step.run(cand.table, cand.membership)
        except LabelsProposed as stop:  # a person labels the proposal; the next run goes on from it
            return CurateResult(out, {"labels_proposed": {"file": str(stop.path), "n": stop.n,
                                                          "round": stop.round + 1, "reused": stop.reused}},
                                extra={"labels_proposed": stop})
    else:
        selection = step.run(cand.table, cand.membership)
    # What is left to do needs the tokens and sources only: free the attribute and text columns.
    table = cand.table = cand.table[["source", "n_tokens"]]

    # ---- write -----------------------------------------------------------------------------------------
    if progress:
        progress("write", 0, 0)
    transform = TextTransform.of(selection, redact_pii)
    repeated = WriteStep(out, out_shard_size, transform).run(
        corpus, shard_size, cand, selection, {"curated_from": str(absolute(corpus)), "strategy": strategy})

    keep_mask = np.asarray(selection.keep, dtype=bool)
    reason_codes, reason_names = selection.reason.codes, selection.reason.categories
    n_reasons = len(reason_names)
    kept_counts = np.bincount(reason_codes[keep_mask], minlength=n_reasons)
    dropped_counts = np.bincount(reason_codes[~keep_mask], minlength=n_reasons)
    # Per-source counts from category codes: no per-document Python strings.
    src = table["source"].astype("category")
    codes = src.cat.codes.to_numpy()
    n_src = len(src.cat.categories)
    src_docs = np.bincount(codes, minlength=n_src)
    src_kept = np.bincount(codes, weights=keep_mask, minlength=n_src)
    src_tokens = np.bincount(codes, weights=np.where(keep_mask, table["n_tokens"].to_numpy(), 0),
                             minlength=n_src)
    by_source = {str(name): {"documents": int(src_docs[c]), "kept": int(src_kept[c]),
                             "tokens_kept": int(src_tokens[c])}
                 for c, name in sorted(enumerate(src.cat.categories), key=lambda x: str(x[1]))}
    ntok = table["n_tokens"].to_numpy()
    limit, kept_tokens, extra = step.limit, step.kept_tokens, cand.quarantined
    summary: dict[str, Any] = {
        "format_version": SUMMARY_FORMAT_VERSION,
        "strategy": strategy,
        "params": selector.params(),
        "seed": seed,
        "budget": budget,
        "records_read": cand.records_read,
        "documents": int(len(table)),
        "kept": int(keep_mask.sum()),
        "dropped": int((~keep_mask).sum()),
        "quarantined": int(len(extra)),
        "kept_by_reason": {str(reason_names[c]): int(n) for c, n in enumerate(kept_counts) if n},
        "dropped_by_reason": {str(reason_names[c]): int(n) for c, n in enumerate(dropped_counts) if n},
        "quarantined_by_reason": dict(Counter(str(r).split(":", 1)[0] for r in extra["reason"])),
        "tokens_pool": int(ntok.sum()),
        "tokens_budget": limit,
        "tokens_kept": kept_tokens,
        "budget_achieved": kept_tokens / limit if limit else 0.0,
        "kept_share_of_pool_tokens": kept_tokens / max(1, int(ntok.sum())),
        "by_source": by_source,
        "weights": rw.model_dump() if rw is not None else None,
        "redact_pii": redact_pii,
        "pii_redacted": transform.pii_redacted,
        "disparity_cap": step.cap_summary,
    }
    if repeated:
        raise RuntimeError(f"accounting error: {len(repeated)} ids appear more than once in the manifest "
                           f"(first: {sorted(repeated)[0]!r})")
    accounted = summary["kept"] + summary["dropped"] + summary["quarantined"]
    if accounted != summary["records_read"]:
        raise RuntimeError(f"accounting error: kept + dropped + quarantined = {accounted} manifest rows for "
                           f"{summary['records_read']} records read")
    write_run_info(out, "curate", _run_config(corpus, strategy, budget, attributes, target, rw, redact_pii,
                                              summary["params"], disparity_cap), seed, paths=RUN_PATHS)
    write_json_atomic(out / SUMMARY_FILE, summary)  # last: marks the run finished
    if policy_ckpt is not None:
        resumed["policy_step"] = int(getattr(selector, "resumed_from_step", 0))
        shutil.rmtree(out / POLICY_CHECKPOINTS, ignore_errors=True)  # a finished run resumes nothing
    return CurateResult(out, summary, selection, {"resumed": resumed})
