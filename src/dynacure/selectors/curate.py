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

Accounting: every record read is exactly one manifest row, so ``kept + dropped + quarantined ==
records_read`` (checked before the summary is written).

Memory: over stored attributes, the strategies that stream (``Selector.streaming``, saved loop policies)
select shard by shard in bounded memory with the same files (``selectors.streaming``, ``streaming="auto"``).
Otherwise the candidate table is held whole because the strategy ranks the whole pool, so it is kept to a
few bytes per document: the row position as id (an 8-byte digest of the real id checks the second pass),
token count, source code, attribute columns (attached shard by shard when the attribute shards line up),
and text only for strategies with ``needs_text``; a strategy's per-document text features
(``Selector.text_features``, e.g. the heuristic's blocklist match) are computed shard by shard instead.
Documents are not held: the shards are read and scored one at a time, and a second streaming pass over the
corpus writes the kept documents and the manifest rows (ids from the corpus itself).
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.attributes import read_attributes, signals_in, write_attribute_shard
from dynacure.io.document import Document, count_tokens, derive_id
from dynacure.io.idset import chunk_digests, id_digest, id_digests, string_chunks
from dynacure.learners.base import Learner
from dynacure.runinfo import seed_everything, write_run_info
from dynacure.selectors import selector_class
from dynacure.selectors.base import Selection, SelectionContext, Selector
from dynacure.selectors.budget import budget_tokens, check_budget
from dynacure.selectors.common import UNIQUE_IDS
from dynacure.selectors.reward import RewardWeights

log = logging.getLogger(__name__)

SUMMARY_FORMAT_VERSION = 1
SUMMARY_FILE = "summary.json"  # written last: its presence marks a finished run
MANIFEST_COLUMNS = ("id", "decision", "probability", "weight", "reason")
MISSING_ATTRIBUTES = "missing_attributes"
# Strategies that cannot run without a target / holdout set.
NEEDS_TARGET = ("dsir", "color", "ica")

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


def _run_config(corpus: Path, strategy: str, budget: float, attributes: Any, target: Any,
                rw: RewardWeights | None, redact_pii: bool, params: dict[str, Any],
                disparity_cap: float | None) -> dict[str, Any]:
    """What ``run.json`` records of a curate run."""
    return {"corpus": str(corpus), "strategy": strategy, "budget": budget,
            "attributes": str(attributes) if attributes else None,
            "target": str(target) if isinstance(target, str | Path) else None,
            "weights": rw.model_dump() if rw is not None else None, "redact_pii": redact_pii,
            "params": params, "disparity_cap": disparity_cap}


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


def _stored_shard_ok(path: Path, ids: list[str]) -> bool:
    if not path.exists():
        return False
    try:
        stored = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    except (OSError, pa.ArrowInvalid, KeyError):
        return False
    return stored == ids


def _score_shard(attrs_dir: Path, signals: dict[str, Any], shard_name: str, docs: list[Document]) -> None:
    ids = [d.id for d in docs]
    texts = [d.text for d in docs]
    for name, sig in signals.items():
        out = attrs_dir / name / f"{shard_name}.parquet"
        if _stored_shard_ok(out, ids):  # resume: this shard was scored by an earlier run
            continue
        cols = sig.score(texts)
        write_attribute_shard(attrs_dir, name, shard_name, ids, cols)


def _shard_attributes(attrs_dir: Path, signals: list[str], shard_name: str,
                      ids: list[str]) -> dict[str, np.ndarray] | None:
    """The stored attribute columns of one corpus shard when every chosen signal has that shard with the
    same ids in the same order (the usual case: scored with the same shard size); else None."""
    out: dict[str, np.ndarray] = {}
    for sig in signals:
        path = attrs_dir / sig / f"{shard_name}.parquet"
        if not path.exists():
            return None
        try:
            tbl = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ValueError(f"{path}: unreadable attribute shard ({exc})") from None
        if "id" not in tbl.column_names or tbl.column("id").to_pylist() != ids:
            return None
        for name in tbl.column_names:
            if name != "id":  # as the whole-table path converts them (list columns: arrays per row)
                out[name] = tbl.column(name).to_pandas().to_numpy()
    return out


def _quarantine_rows(entries: list[dict[str, Any]], corpus: Path) -> pd.DataFrame:
    root = corpus if corpus.is_dir() else corpus.parent
    ids, reasons = [], []
    for e in entries:
        f = Path(e["file"])
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            rel = f.as_posix()
        # The reader's own fallback id for that position: stable across runs.
        ids.append(derive_id(rel, e["line"]))
        reasons.append(f"{e['reason']}" + (f": {e['detail']}" if e.get("detail") else ""))
    n = len(ids)
    return pd.DataFrame({"id": ids, "decision": ["quarantined"] * n, "probability": np.zeros(n),
                         "weight": np.zeros(n), "reason": reasons})


def _start_clean(out: Path) -> None:
    """Make a (re)started run look unfinished and drop the temporary files a killed run left behind."""
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    for tmp in [*out.glob(".*.tmp"), *out.glob("attributes/*/.*.tmp")]:
        tmp.unlink(missing_ok=True)


def _str_array(values: list[str]) -> pd.Series:
    # Arrow-backed strings: a few bytes per id instead of a Python object each (memory scales with corpus).
    return pd.Series(values, dtype="str")


CAP_READMITTED = "readmitted:disparity_cap"
CAP_DROPPED = "dropped:disparity_cap"


def _ratios(keep: np.ndarray, membership: dict[str, np.ndarray]) -> dict[str, float]:
    overall = 1.0 - keep.mean() if len(keep) else 0.0
    return {g: float((1.0 - keep[m].mean()) / overall) for g, m in membership.items()
            if m.sum() >= 5 and overall > 0}


def apply_disparity_cap(selection: Selection, n_tokens: np.ndarray, membership: dict[str, np.ndarray],
                        max_ratio: float, budget: float) -> tuple[Selection, dict[str, Any]]:
    """The selection after ``dynacure.audit.mitigation.cap_disparity``, with the manifest reasons updated,
    and a summary (documents re-admitted / dropped, worst removal ratio before and after).

    Priority is the strategy's own selection probability (ties: input order), so the documents brought
    back are those the strategy liked best among the dropped members of an over-removed group."""
    from dynacure.audit.mitigation import cap_disparity

    keep0 = np.asarray(selection.keep, dtype=bool)
    priority = np.asarray(selection.probability, dtype=np.float64)
    keep, back = cap_disparity(keep0, priority, n_tokens, membership, max_ratio=max_ratio)
    limit = budget_tokens(n_tokens, budget)
    over = int(np.asarray(n_tokens)[keep].sum()) - limit
    if over > 0:  # no un-capped document was left to pay for a re-admission: give back the least preferred
        log.warning("disparity cap: %d tokens over the budget after re-admission; undoing some", over)
        for i in np.flatnonzero(back)[np.argsort(priority[back], kind="stable")]:
            if over <= 0:
                break
            keep[i], back[i] = False, False
            over -= int(n_tokens[i])
    dropped = keep0 & ~keep
    reason = np.asarray(selection.reason, dtype=object).copy()
    reason[back] = CAP_READMITTED
    reason[dropped] = CAP_DROPPED
    weight = np.asarray(selection.weight, dtype=np.float64).copy()
    weight[back & (weight <= 0)] = 1.0  # a re-admitted document trains like a plainly kept one
    before, after = _ratios(keep0, membership), _ratios(keep, membership)
    summary = {"max_ratio": float(max_ratio), "readmitted": int(back.sum()), "dropped": int(dropped.sum()),
               "worst_ratio_before": max(before.values(), default=float("nan")),
               "worst_ratio_after": max(after.values(), default=float("nan")),
               "ratios_before": before, "ratios_after": after}
    out = Selection(selection.ids, selection.probability, weight, keep, reason)
    for attr in ("prefix",):  # strategy extras (re-routing tags) carry over
        if hasattr(selection, attr):
            setattr(out, attr, getattr(selection, attr))
    return out, summary


MANIFEST_SCHEMA = pa.schema([("id", pa.string()), ("decision", pa.string()), ("probability", pa.float64()),
                             ("weight", pa.float64()), ("reason", pa.string())])
MANIFEST_CHUNK = 1 << 16  # rows per row group: the manifest is built and written this many rows at a time


def _read_ids(corpus: Path, shard_size: int) -> pd.Series:
    """The ids of the readable documents, in reading order (Arrow strings)."""
    from dynacure.io.quarantine import Quarantine
    from dynacure.io.readers import iter_shards

    parts = [_str_array([d.id for d in shard.docs])
             for shard in iter_shards(corpus, shard_size=shard_size, quarantine=Quarantine())]
    return pd.concat(parts, ignore_index=True) if parts else _str_array([])


class _ManifestRows:
    """Writes the selection's manifest rows in table order as the second pass meets their documents (the
    ids come from the corpus), ``MANIFEST_CHUNK`` rows per row group; ``finish`` adds the quarantined rows."""

    def __init__(self, writer: pq.ParquetWriter, selection: Selection, reason_codes: np.ndarray,
                 reason_names: Any) -> None:
        self.writer, self.selection, self.codes = writer, selection, reason_codes
        self.names = pa.array([str(r) for r in reason_names], type=pa.string())
        self.decisions = pa.array(["keep", "drop"], type=pa.string())
        self.ids: list[str] = []
        self.start = 0

    def add(self, doc_id: str) -> None:
        self.ids.append(doc_id)
        if len(self.ids) >= MANIFEST_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.ids:
            return
        a, b = self.start, self.start + len(self.ids)
        sel = self.selection
        keep = np.asarray(sel.keep[a:b], dtype=bool)
        # Arrow-native columns (dictionary-decoded codes): no Python object per row besides the ids.
        self.writer.write_table(pa.table({
            "id": pa.array(self.ids, type=pa.string()),
            "decision": pa.DictionaryArray.from_arrays(
                pa.array(np.where(keep, 0, 1).astype(np.int32)), self.decisions).dictionary_decode(),
            "probability": pa.array(np.asarray(sel.probability[a:b], dtype=np.float64)),
            "weight": pa.array(np.asarray(sel.weight[a:b], dtype=np.float64)),
            "reason": pa.DictionaryArray.from_arrays(
                pa.array(np.asarray(self.codes[a:b], dtype=np.int32)), self.names).dictionary_decode(),
        }, schema=MANIFEST_SCHEMA))
        self.start, self.ids = b, []

    def finish(self, extra: pd.DataFrame) -> None:
        self._flush()
        if self.start != len(self.selection.keep):
            raise RuntimeError(f"manifest has {self.start} selection rows for {len(self.selection.keep)} "
                               f"documents")
        if len(extra):
            self.writer.write_table(pa.table({
                "id": pa.array(extra["id"].astype(str).tolist(), type=pa.string()),
                "decision": pa.array(extra["decision"].astype(str).tolist(), type=pa.string()),
                "probability": pa.array(extra["probability"].to_numpy(dtype=np.float64)),
                "weight": pa.array(extra["weight"].to_numpy(dtype=np.float64)),
                "reason": pa.array(extra["reason"].astype(str).tolist(), type=pa.string()),
            }, schema=MANIFEST_SCHEMA))


@contextmanager
def _manifest_writer(path: Path, selection: Selection, reason_codes: np.ndarray,
                     reason_names: Any) -> Iterator[_ManifestRows]:
    """``manifest.parquet`` written atomically: it appears only when the block completes."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, MANIFEST_SCHEMA) as writer:
        yield _ManifestRows(writer, selection, reason_codes, reason_names)


def curate(corpus: str | Path, out_dir: str | Path, strategy: str, budget: float, *,
           attributes: str | Path | None = None, target: str | Path | list[str] | None = None, seed: int = 0,
           weights: RewardWeights | str | None = None, redact_pii: bool = False,
           params: dict[str, Any] | None = None, learner: Learner | None = None, shard_size: int = 10000,
           out_shard_size: int = 5000, progress: ProgressFn | None = None,
           disparity_cap: float | None = None, streaming: bool | Literal["auto"] = "auto") -> CurateResult:
    """Curate ``corpus`` with ``strategy`` at ``budget`` (share of tokens) into ``out_dir``.

    ``disparity_cap``: after selection, re-admit documents of identity/dialect groups the strategy removes
    more than ``disparity_cap`` times as often as the corpus overall (``dynacure.audit.mitigation``), at
    the same token budget; re-admitted rows get reason ``readmitted:disparity_cap`` and the rows dropped to
    pay for them ``dropped:disparity_cap``.

    ``streaming``: ``"auto"`` selects shard by shard in bounded memory (``selectors.streaming``, the same
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
    if strategy in NEEDS_TARGET and target is None:
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
    selector = factory(**params) if params else factory()
    if streaming is not False:
        from dynacure.selectors import streaming as stream

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
    from dynacure.io.quarantine import Quarantine, read_quarantine
    from dynacure.io.readers import ReadStats, iter_shards

    needed: tuple[str, ...] = tuple(getattr(selector, "signals", ()))
    attrs_dir = Path(attributes) if attributes is not None else out / "attributes"
    scorers: dict[str, Any] = {}
    if attributes is None and needed:
        from dynacure.signals.base import get_signal

        scorers = {name: get_signal(name) for name in needed}
    needs_text = bool(getattr(selector, "needs_text", True))
    has_features = type(selector).text_features is not Selector.text_features
    features: dict[str, list[np.ndarray]] = {}
    use_signals = [s for s in (signals_in(attrs_dir) if attributes is not None else sorted(scorers))
                   if s != "embedding" or strategy == "ica"]
    # Stored attributes are attached shard by shard while reading when their shards line up with the
    # corpus's (same ids, same order): then no table of every id and score is ever loaded.
    attr_parts: dict[str, list[np.ndarray]] | None = {} if use_signals else None
    # Documents are named by position in the table; an 8-byte digest of each id is kept to check that the
    # second pass meets the same documents (string ids cost ~24 B each and are read again only for a join).
    digests: list[np.ndarray] = []
    source_code: dict[str, int] = {}  # sources as category codes: 4 bytes per document, not a string
    sources: list[np.ndarray] = []
    ntoks: list[np.ndarray] = []
    texts: list[pd.Series] = []
    groups: list[dict[str, np.ndarray]] = []  # identity-group masks per shard, for the disparity cap
    stats = ReadStats()
    qpath = out / "quarantine.jsonl"
    with Quarantine(qpath) as quarantine:
        for shard in iter_shards(corpus, shard_size=shard_size, quarantine=quarantine, stats=stats):
            if scorers and shard.docs:
                _score_shard(attrs_dir, scorers, shard.name, shard.docs)
            shard_ids = [d.id for d in shard.docs]
            if attr_parts is not None and shard.docs:
                cols = _shard_attributes(attrs_dir, use_signals, shard.name, shard_ids)
                if cols is None:  # shards do not line up: join on id after reading
                    attr_parts = None
                else:
                    for name, col in cols.items():
                        attr_parts.setdefault(name, []).append(col)
            digests.append(id_digests(shard_ids, len(shard_ids)))
            sources.append(np.array([source_code.setdefault(d.source, len(source_code)) for d in shard.docs],
                                    dtype=np.int32))
            ntoks.append(np.array([count_tokens(d.text) for d in shard.docs], dtype=np.int64))
            if needs_text:
                texts.append(_str_array([d.text for d in shard.docs]))
            if has_features:  # text features per shard: the texts need not be held
                for name, col in selector.text_features([d.text for d in shard.docs]).items():
                    features.setdefault(selector.feature_column(name), []).append(np.asarray(col))
            if disparity_cap is not None:
                from dynacure.audit.groups import group_membership

                groups.append(group_membership([d.text for d in shard.docs]))
            if progress:
                progress("read", stats.n_read, 0)
    qrows = _quarantine_rows(read_quarantine(qpath), corpus)
    n_docs_read = int(sum(len(x) for x in digests))
    if not n_docs_read:
        raise ValueError(f"{corpus}: no readable documents ({len(qrows)} quarantined)")

    columns: dict[str, Any] = {
        "id": np.arange(n_docs_read, dtype=np.int64),
        "source": pd.Categorical.from_codes(np.concatenate(sources), categories=list(source_code)),
        "n_tokens": np.concatenate(ntoks),
    }
    if needs_text:
        columns["text"] = pd.concat(texts, ignore_index=True)
    for name, parts in features.items():
        columns[name] = np.concatenate(parts)
    if attr_parts is not None and any(sum(map(len, v)) != n_docs_read for v in attr_parts.values()):
        attr_parts = None  # a column some shards lack: join on id instead
    if attr_parts is not None:
        for name, parts in attr_parts.items():
            columns[name] = np.concatenate(parts)
        use_signals = []  # attached
    doc_digests = np.concatenate(digests)
    del digests, sources, ntoks, texts, features, attr_parts
    table = pd.DataFrame(columns)
    del columns
    table.attrs[UNIQUE_IDS] = True  # the reader quarantines every repeated id
    # Table row -> position among the documents read (rows without attributes are removed below).
    read_pos = np.arange(n_docs_read, dtype=np.int64)
    # ---- attach attributes (when their shards did not line up with the corpus's) -----------------------
    extra_rows: list[pd.DataFrame] = []
    if use_signals:  # the rare case: a join on id, so the ids are read again
        table["id"] = _read_ids(corpus, shard_size)
        attrs = read_attributes(attrs_dir, use_signals)
        if len(attrs) == len(table) and bool(attrs["id"].astype("str").reset_index(drop=True)
                                             .eq(table["id"]).all()):
            # Scored in reading order (the usual case): attach by position, no hash join over every id.
            use_signals = []
            for col in attrs.columns.drop("id"):
                table[col] = attrs[col].to_numpy()
            del attrs
    if use_signals:
        extra_ids = ~attrs["id"].isin(table["id"])
        if extra_ids.any():
            log.warning("%s: %d scored ids are not in the corpus; ignored", attrs_dir, int(extra_ids.sum()))
        merged = table.merge(attrs[~extra_ids], on="id", how="left", validate="one_to_one", indicator=True)
        unscored = (merged["_merge"] == "left_only").to_numpy()
        if unscored.any():
            log.warning("%d documents have no stored attributes; quarantined as %s", int(unscored.sum()),
                        MISSING_ATTRIBUTES)
            n = int(unscored.sum())
            extra_rows.append(pd.DataFrame({
                "id": merged.loc[unscored, "id"].to_numpy(), "decision": "quarantined",
                "probability": np.zeros(n), "weight": np.zeros(n), "reason": MISSING_ATTRIBUTES}))
            read_pos = read_pos[~unscored]
        table = merged.loc[~unscored].drop(columns="_merge").reset_index(drop=True)
    if table.empty:
        raise ValueError(f"{corpus}: no document has the attributes strategy {strategy!r} needs")
    if not pd.api.types.is_integer_dtype(table["id"].dtype):  # after a join: back to positions
        doc_digests = chunk_digests(string_chunks(table["id"]))
        table["id"] = np.arange(len(table), dtype=np.int64)

    # ---- select ----------------------------------------------------------------------------------------
    if progress:
        progress("select", 0, 0)
    ctx = SelectionContext(budget=budget, seed=seed, learner=learner, target_texts=target_texts)
    selection = selector.select(table, ctx)
    cap_summary: dict[str, Any] | None = None
    if disparity_cap is not None:
        names = sorted({g for shard_groups in groups for g in shard_groups})
        membership = {g: np.concatenate([sg.get(g, np.zeros(0, bool)) for sg in groups])[read_pos]
                      for g in names}
        selection, cap_summary = apply_disparity_cap(selection, table["n_tokens"].to_numpy(), membership,
                                                     disparity_cap, budget)
    if len(selection.ids) != len(table) or not np.array_equal(np.asarray(selection.ids),
                                                              table["id"].to_numpy()):
        raise RuntimeError(f"selector {strategy!r} returned ids in a different order than its input")
    # What is left to do needs the tokens and sources only: free the attribute and text columns.
    table = table[["source", "n_tokens"]]
    limit = budget_tokens(table["n_tokens"].to_numpy(), budget)
    kept_tokens = int(table["n_tokens"].to_numpy()[selection.keep].sum())
    if kept_tokens > limit:
        raise RuntimeError(f"selector {strategy!r} kept {kept_tokens} tokens over the budget of {limit}")

    # ---- write -----------------------------------------------------------------------------------------
    prefix = getattr(selection, "prefix", None)
    weighted = bool(np.any(np.abs(selection.weight[selection.keep] - 1.0) > 1e-12))
    pii_counts: Counter[str] = Counter()
    redact = None
    if redact_pii:
        from dynacure.signals.pii import redact

    # Second streaming pass: the kept documents are re-read rather than held in memory since the first.
    row_of = np.full(n_docs_read, -1, dtype=np.int32 if n_docs_read < 2**31 else np.int64)
    row_of[read_pos] = np.arange(len(read_pos))
    del read_pos
    keep = selection.keep
    if len(qrows):
        extra_rows.append(qrows)
    extra = pd.concat(extra_rows, ignore_index=True) if extra_rows else pd.DataFrame(
        {c: [] for c in MANIFEST_COLUMNS})
    # Reasons as a categorical from here: a small integer code per document, not an object pointer.
    selection.reason = pd.Categorical(np.asarray(selection.reason, dtype=object))
    reason_codes, reason_names = selection.reason.codes, selection.reason.categories
    # Ids of quarantined rows, to catch one that repeats or equals a document's id (the reader already
    # made the documents' ids unique among themselves).
    extra_count = Counter(extra["id"].astype(str))
    repeated = {i for i, c in extra_count.items() if c > 1}

    from dynacure.io.writers import write_corpus

    with _manifest_writer(out / "manifest.parquet", selection, reason_codes, reason_names) as manifest_rows:

        def kept_docs() -> Iterator[Document]:
            k = 0
            for shard in iter_shards(corpus, shard_size=shard_size, quarantine=Quarantine()):
                for d in shard.docs:
                    i = row_of[k] if k < n_docs_read else -1
                    k += 1
                    if i < 0:
                        continue
                    if id_digest(d.id) != doc_digests[i]:
                        raise RuntimeError(f"{corpus}: changed while curating (document {k}, {d.id!r}, is "
                                           f"not the one read before); rerun")
                    manifest_rows.add(d.id)
                    if d.id in extra_count:
                        repeated.add(d.id)
                    if not keep[i]:
                        continue
                    text = d.text
                    if prefix is not None and prefix[i]:
                        text = str(prefix[i]) + text
                    if redact is not None:
                        text, counts = redact(text)
                        pii_counts.update(counts)
                    meta = dict(d.meta)
                    if weighted:
                        meta["curate_weight"] = float(selection.weight[i])
                    yield Document(d.id, text, d.source, meta)
            if k != n_docs_read:
                raise RuntimeError(f"{corpus}: changed while curating ({k} documents now, {n_docs_read} "
                                   f"before)")

        write_corpus(kept_docs(), out, shard_size=out_shard_size,
                     extra={"curated_from": str(corpus), "strategy": strategy}, check_ids=False)
        manifest_rows.finish(extra)

    keep_mask = np.asarray(selection.keep, dtype=bool)
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
    summary: dict[str, Any] = {
        "format_version": SUMMARY_FORMAT_VERSION,
        "strategy": strategy,
        "params": selector.params(),
        "seed": seed,
        "budget": budget,
        "records_read": int(stats.n_read),
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
        "pii_redacted": dict(pii_counts),
        "disparity_cap": cap_summary,
    }
    del reason_codes, reason_names
    if repeated:
        raise RuntimeError(f"accounting error: {len(repeated)} ids appear more than once in the manifest "
                           f"(first: {sorted(repeated)[0]!r})")
    accounted = summary["kept"] + summary["dropped"] + summary["quarantined"]
    if accounted != summary["records_read"]:
        raise RuntimeError(f"accounting error: kept + dropped + quarantined = {accounted} manifest rows for "
                           f"{summary['records_read']} records read")
    write_run_info(out, "curate", _run_config(corpus, strategy, budget, attributes, target, rw, redact_pii,
                                              summary["params"], disparity_cap), seed)
    write_json_atomic(out / SUMMARY_FILE, summary)  # last: marks the run finished
    return CurateResult(out, summary, selection)
