"""What the scoring engines share: signal checks, the per-shard task, shard outputs, done-markers, summary.

Both engines (``local``: inline or a process pool; ``ray``: Ray tasks) run ``score_task`` on an
``dynacure.engines.executor`` executor: the worker reads its own shard (``ScoreTask.spans``, via
``dynacure.io.readers.read_span_texts``), checks its done-markers, scores what is left and writes
``ATTRS/<signal>/<shard>.parquet`` (``dynacure.io.attributes.write_attribute_shard``), then the marker
``ATTRS/<signal>/_done/<shard>.json``; the driver receives only counts, seconds and quarantine entries.
So both engines write byte-identical attribute tables and either can resume the other's run.
The marker is written after the table and atomically, so a shard with a marker is whole, and a rerun skips
it (resume at shard granularity). Markers sit inside the signal's folder, not in a top-level ``ATTRS/_done``,
because ``signals_in`` takes every top-level folder of ATTRS for a signal (``read_attributes`` only globs
``*.parquet`` one level down). A marker records the signal's keyword arguments; resuming into a folder
scored with other arguments is refused before any work, since it would mix two configurations in one table.

A marker also records the digest of the shard's texts (``texts_sha1``, over each row's ``text_digest``), so
a resume notices a document whose text changed under the same id: only those rows are scored again (the
table is patched in place, ``io.attributes.patch_attribute_shard``), and the summary names them
(``rescored_docs``, ``changed_ids``). A shard scored before tables carried ``text_digest`` is scored whole
again, since nothing says which of its texts it was computed from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynacure.io.atomic import write_json_atomic
from dynacure.io.attributes import (
    SHOW_IDS,
    attribute_shard_path,
    mismatched_positions,
    patch_attribute_shard,
    stored_digests,
    text_digests,
    write_attribute_shard,
)
from dynacure.io.jsonfile import InvalidJSONError, read_versioned
from dynacure.io.quarantine import Quarantine
from dynacure.io.readers import Span, read_span_texts
from dynacure.signals.base import Signal, available_signals, get_signal

log = logging.getLogger(__name__)

MARKER_FORMAT_VERSION = 1
DONE_DIR = "_done"
QUARANTINE_FILE = "quarantine.jsonl"


@dataclass
class ScoreSummary:
    """What one ``score_corpus`` call did (also written into ``ATTRS/run.json``)."""

    engine: str
    attrs_dir: str
    signals: list[str]
    n_shards: int = 0
    n_docs: int = 0
    n_read: int = 0
    n_quarantined: int = 0
    quarantine_counts: dict[str, int] = field(default_factory=dict)
    scored_docs: dict[str, int] = field(default_factory=dict)  # newly scored this run, per signal
    skipped_shards: dict[str, int] = field(default_factory=dict)  # already done (resumed), per signal
    resumed_docs: dict[str, int] = field(default_factory=dict)  # documents in those shards, per signal
    seconds: dict[str, float] = field(default_factory=dict)  # time inside each signal's score()
    # Documents of resumed shards whose text changed since they were scored: re-scored this run (they are
    # counted in ``scored_docs``, not ``resumed_docs``), the shards they sit in, and their first ids.
    rescored_docs: dict[str, int] = field(default_factory=dict)
    changed_shards: dict[str, int] = field(default_factory=dict)
    changed_ids: dict[str, list[str]] = field(default_factory=dict)
    undigested_shards: dict[str, int] = field(default_factory=dict)  # old tables without text digests
    wall_seconds: float = 0.0  # the whole call: checks, building (loading, training) signals, scoring
    setup_seconds: float = 0.0  # of which: checks and building the signals before any shard is scored
    signal_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def docs_per_second(self) -> float:
        scored = max(self.scored_docs.values(), default=0)
        return scored / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def accounting_errors(self) -> list[str]:
        """Where the counts do not add up (empty when every record read is scored or quarantined)."""
        errors = []
        if self.n_docs + self.n_quarantined != self.n_read:
            errors.append(f"read {self.n_read} records but kept {self.n_docs} + quarantined "
                          f"{self.n_quarantined}")
        for name in self.signals:
            have = self.scored_docs.get(name, 0) + self.resumed_docs.get(name, 0)
            if have != self.n_docs:
                errors.append(f"signal {name!r}: {have} documents scored (incl. resumed), corpus has "
                              f"{self.n_docs}")
        return errors


def new_summary(engine: str, attrs_dir: str | Path, names: list[str]) -> ScoreSummary:
    return ScoreSummary(engine=engine, attrs_dir=str(attrs_dir), signals=names,
                        scored_docs=dict.fromkeys(names, 0), skipped_shards=dict.fromkeys(names, 0),
                        resumed_docs=dict.fromkeys(names, 0), seconds=dict.fromkeys(names, 0.0),
                        rescored_docs=dict.fromkeys(names, 0), changed_shards=dict.fromkeys(names, 0),
                        changed_ids={n: [] for n in names}, undigested_shards=dict.fromkeys(names, 0))


def parse_signal_names(signals: str | Sequence[str]) -> list[str]:
    """``"quality,pii"`` or a list -> checked, de-duplicated names; unknown names fail before any work."""
    raw = signals.split(",") if isinstance(signals, str) else list(signals)
    names = list(dict.fromkeys(n.strip() for n in raw if n.strip()))
    if not names:
        raise ValueError("no signals given; available: " + ", ".join(available_signals()))
    known = available_signals()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(repr(u) for u in unknown)}; "
                         f"available: {', '.join(known)}")
    return names


def check_signal_kwargs(names: Sequence[str], signal_kwargs: Mapping[str, Mapping[str, Any]] | None
                        ) -> dict[str, dict[str, Any]]:
    kwargs = {k: dict(v) for k, v in (signal_kwargs or {}).items()}
    extra = sorted(set(kwargs) - set(names))
    if extra:
        raise ValueError(f"signal_kwargs for signals not being scored: {', '.join(extra)}")
    for name, kw in kwargs.items():
        try:
            json.dumps(kw, sort_keys=True)
        except TypeError as exc:
            raise ValueError(f"signal_kwargs[{name!r}] must be JSON-serialisable (it is recorded): "
                             f"{exc}") from None
    return {n: kwargs.get(n, {}) for n in names}


def build_signals(names: Sequence[str], kwargs: Mapping[str, Mapping[str, Any]]) -> dict[str, Signal]:
    """Build each signal once, before any work, so a missing model or a bad argument fails up front.

    ``ModelMissingError`` (a ``FileNotFoundError`` whose message says how to train the model) passes through;
    an argument the signal does not take becomes a ``ValueError`` naming the signal.
    """
    built: dict[str, Signal] = {}
    for name in names:
        try:
            built[name] = get_signal(name, **kwargs.get(name, {}))
        except TypeError as exc:
            raise ValueError(f"signal {name!r}: bad --signal-arg ({exc})") from None
    return built


def ids_digest(ids: Sequence[str]) -> str:
    h = hashlib.sha1()
    for i in ids:
        h.update(i.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def marker_path(attrs_dir: str | Path, signal: str, shard: str) -> Path:
    return Path(attrs_dir) / signal / DONE_DIR / f"{shard}.json"


def read_marker(attrs_dir: str | Path, signal: str, shard: str) -> dict[str, Any] | None:
    path = marker_path(attrs_dir, signal, shard)
    if not path.exists():
        return None
    try:
        return read_versioned(path, MARKER_FORMAT_VERSION, hint="score into a new folder")
    except InvalidJSONError as exc:  # cannot happen with atomic writes; treat as not done
        log.warning("%s: unreadable done-marker (%s); shard will be rescored", path, exc)
        return None


def check_resume_compatible(attrs_dir: str | Path, names: Sequence[str],
                            kwargs: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse to resume into a folder whose markers were written with other signal arguments."""
    for name in names:
        folder = Path(attrs_dir) / name / DONE_DIR
        first = next(iter(sorted(folder.glob("*.json"))), None) if folder.exists() else None
        if first is None:
            continue
        marker = read_marker(attrs_dir, name, first.stem)
        if marker is not None and marker.get("kwargs") != dict(kwargs[name]):
            raise ValueError(f"{first}: signal {name!r} was scored here with arguments "
                             f"{marker.get('kwargs')}, now {dict(kwargs[name])}; use a new output folder or "
                             f"remove {Path(attrs_dir) / name}")


def shard_is_done(attrs_dir: str | Path, signal: str, shard: str, ids: Sequence[str],
                  digests: Sequence[str] | None = None) -> bool:
    """Whether the shard is scored for these ids (and, with ``digests``, for exactly these texts)."""
    plan = plan_shard(attrs_dir, signal, shard, ids, digests)
    return plan.mode == "done"


@dataclass(frozen=True)
class ShardPlan:
    """What a shard needs for one signal: ``done``; ``patch`` (re-score ``positions``, whose text changed);
    ``full`` (score every document: new, its ids changed, or stored without text digests)."""

    mode: str
    positions: tuple[int, ...] = ()
    why: str = ""


def plan_shard(attrs_dir: str | Path, signal: str, shard: str, ids: Sequence[str],
               digests: Sequence[str] | None) -> ShardPlan:
    marker = read_marker(attrs_dir, signal, shard)
    if marker is None:
        return ShardPlan("full", why="new")
    if marker.get("n_docs") != len(ids) or marker.get("ids_sha1") != ids_digest(ids):
        log.warning("%s/%s: the corpus shard changed since it was scored; scoring it again", signal, shard)
        return ShardPlan("full", why="ids changed")
    table = attribute_shard_path(attrs_dir, signal, shard)
    if not ids:
        return ShardPlan("done")
    if not table.exists():
        return ShardPlan("full", why="table missing")
    if digests is None or marker.get("texts_sha1") == ids_digest(digests):
        return ShardPlan("done")
    try:
        stored_ids, stored = stored_digests(table)
    except (OSError, ValueError, KeyError) as exc:  # ArrowInvalid is a ValueError
        log.warning("%s: unreadable (%s); scoring the shard again", table, exc)
        return ShardPlan("full", why="table unreadable")
    if stored_ids != list(ids):  # a table that is not the marker's: score it again
        log.warning("%s: its ids differ from its done-marker's; scoring the shard again", table)
        return ShardPlan("full", why="table ids changed")
    if stored is None:
        log.warning("%s: scored without text digests (an older dynacure); scoring the shard again so its "
                    "scores are known to match its texts", table)
        return ShardPlan("full", why="no text digests")
    changed = mismatched_positions(stored, digests)
    return ShardPlan("patch", tuple(changed)) if changed else ShardPlan("done")


def score_texts(signal: Signal, texts: list[str]) -> dict[str, np.ndarray]:
    """Score in batches of the signal's declared batch size; check every column's length and name."""
    size = max(1, int(signal.resources.batch_size))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(texts), size):
        chunk = texts[start:start + size]
        cols = signal.score(chunk)
        missing = set(signal.columns) - set(cols)
        if missing:
            raise ValueError(f"signal {signal.name!r} did not return column(s) {sorted(missing)}")
        for c in signal.columns:
            arr = np.asarray(cols[c])
            if arr.shape[:1] != (len(chunk),):
                raise ValueError(f"signal {signal.name!r} column {c!r}: {arr.shape[:1]} values for "
                                 f"{len(chunk)} texts")
            parts.setdefault(c, []).append(arr)
    return {c: np.concatenate(v) for c, v in parts.items()}


def write_shard_outputs(attrs_dir: str | Path, signal_name: str, shard: str, ids: list[str],
                        columns: Mapping[str, np.ndarray] | None, seconds: float,
                        kwargs: Mapping[str, Any], params: Mapping[str, Any],
                        digests: Sequence[str] | None = None,
                        positions: Sequence[int] | None = None) -> None:
    """The attribute table (unless the shard has no documents), then its done-marker: in that order.

    ``positions``: ``columns`` hold the scores of those rows only, patched into the stored table."""
    digests = list(digests) if digests is not None else None
    if ids:
        assert columns is not None
        if positions is not None:
            assert digests is not None
            patch_attribute_shard(attrs_dir, signal_name, shard, positions, columns,
                                  [digests[p] for p in positions])
        else:
            write_attribute_shard(attrs_dir, signal_name, shard, ids, columns, digests)
    marker = {
        "format_version": MARKER_FORMAT_VERSION, "signal": signal_name, "shard": shard, "n_docs": len(ids),
        "ids_sha1": ids_digest(ids), "kwargs": dict(kwargs), "params": json_safe(dict(params)),
        "seconds": round(seconds, 4),
    }
    if digests is not None:
        marker["texts_sha1"] = ids_digest(digests)
    write_json_atomic(marker_path(attrs_dir, signal_name, shard), marker)


def score_shard(signal: Signal, signal_name: str, attrs_dir: str | Path, shard: str, ids: list[str],
                texts: list[str], kwargs: Mapping[str, Any], params: Mapping[str, Any],
                digests: Sequence[str] | None = None, positions: Sequence[int] | None = None) -> float:
    """Score one shard with one signal (only the rows at ``positions`` when given) and write its outputs;
    returns the seconds spent in ``score``."""
    chosen = [texts[p] for p in positions] if positions is not None else texts
    t0 = time.perf_counter()
    columns = score_texts(signal, chosen) if chosen else None
    seconds = time.perf_counter() - t0
    write_shard_outputs(attrs_dir, signal_name, shard, ids, columns, seconds, kwargs, params,
                        digests if digests is not None else text_digests(texts), positions)
    return seconds


def json_safe(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


@dataclass(frozen=True)
class ScoreTask:
    """One shard to score: where its records are, which signals, where the outputs go (no documents)."""

    attrs_dir: str
    shard: str
    spans: tuple[Span, ...]
    signals: tuple[str, ...]
    kwargs: Mapping[str, Mapping[str, Any]]
    text_field: str
    text_field_auto: bool = False  # pick the text field per file when ``text_field`` is absent there


# One cache per worker process: each signal (per keyword arguments) is built once and kept for every shard
# the process scores, with its params (asked once: they may read package metadata, ~2 ms a call).
# Inline runs put the pre-flight's signals here (``cached_signals``).
_WORKER_SIGNALS: dict[str, tuple[Signal, dict[str, Any]]] = {}


def _cache_key(name: str, kwargs: Mapping[str, Any]) -> str:
    return f"{name}\x00{json.dumps(dict(kwargs), sort_keys=True)}"


def _signal_for(name: str, kwargs: Mapping[str, Any]) -> tuple[Signal, dict[str, Any]]:
    key = _cache_key(name, kwargs)
    cached = _WORKER_SIGNALS.get(key)
    if cached is None:
        sig = get_signal(name, **kwargs)
        cached = _WORKER_SIGNALS[key] = (sig, json_safe(sig.params()))
    return cached


@contextlib.contextmanager
def cached_signals(built: Mapping[str, Signal], kwargs: Mapping[str, Mapping[str, Any]]) -> Iterator[None]:
    """Serve ``built`` to inline ``score_task`` calls, for one run only (a later run rebuilds its models)."""
    keys = {_cache_key(n, kwargs[n]): (s, json_safe(s.params())) for n, s in built.items()}
    _WORKER_SIGNALS.update(keys)
    try:
        yield
    finally:
        for k in keys:
            _WORKER_SIGNALS.pop(k, None)


def score_task(task: ScoreTask) -> dict[str, Any]:
    """Read one shard, score the signals whose done-marker is missing or stale, write tables then markers.

    Runs in a worker. Returns the counts the driver adds up: documents and records read, the seconds in
    each signal's ``score``, the signals resumed, their params, the records quarantined while reading
    (``read_span_texts`` quarantines only what the planning read did not already), and per signal the
    documents of a resumed shard re-scored because their text changed (``changed``: count, first ids).
    """
    quar = Quarantine()
    seen: set[str] = set()  # one shard's ids: a plain set is cheaper than an IdSet at this size
    ids: list[str] = []
    texts: list[str] = []
    n_read = 0
    for span in task.spans:
        got_ids, got_texts, n = read_span_texts(span, quar, seen, text_field=task.text_field,
                                                auto_text_field=task.text_field_auto)
        ids.extend(got_ids)
        texts.extend(got_texts)
        n_read += n
    digests = text_digests(texts)
    seconds: dict[str, float] = {}
    params: dict[str, Any] = {}
    resumed: list[str] = []
    changed: dict[str, tuple[int, list[str]]] = {}
    undigested: list[str] = []
    for name in task.signals:
        plan = plan_shard(task.attrs_dir, name, task.shard, ids, digests)
        if plan.mode == "done":
            resumed.append(name)
            continue
        positions = plan.positions if plan.mode == "patch" else None
        if positions is not None:
            changed[name] = (len(positions), [ids[p] for p in positions[:SHOW_IDS]])
        elif plan.why == "no text digests":
            undigested.append(name)
        sig, params[name] = _signal_for(name, task.kwargs[name])
        try:
            seconds[name] = score_shard(sig, name, task.attrs_dir, task.shard, ids, texts, task.kwargs[name],
                                        params[name], digests, positions)
        except Exception as exc:
            exc.add_note(f"while scoring {task.shard} with signal {name!r}")
            raise
    return {"shard": task.shard, "n_docs": len(ids), "n_read": n_read, "seconds": seconds,
            "resumed": resumed, "params": params, "quarantine": quar.entries, "changed": changed,
            "undigested": undigested}
