"""Read step: the first streaming pass over a corpus, building the candidate table a strategy ranks.

The table is held whole (every strategy ranks the whole pool), so it is kept to a few bytes per document:
the row position as id (an 8-byte digest of the real id lets the write step check its second pass), token
count, source code, attribute columns (attached shard by shard when the attribute shards line up with the
corpus's, else one join on id, for which the ids are read again), a strategy's per-document text features
(``Selector.text_features``, computed per shard) and text only for strategies with ``needs_text``.
Unreadable records go to ``quarantine.jsonl``; documents without the stored attributes become manifest rows
``missing_attributes``. ``stats``: ``documents``, ``quarantined:<reason>``.
Stored attributes must have been computed from the texts read now: each table's ``text_digest`` is checked
(per shard when the shards line up, else after the join on id) and attributes of other text are refused
(``StaleAttributesError``, naming the table or folder and the first ids); tables without digests (an older
dynacure) are accepted with a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynacure.io.attributes import (
    StaleAttributesError,
    describe_ids,
    read_attributes,
    read_text_digests,
    text_digest,
)
from dynacure.io.document import count_tokens, derive_id
from dynacure.io.idset import chunk_digests, id_digests, string_chunks
from dynacure.pipeline.score import ScoreStep, shard_attributes, warn_undigested
from dynacure.selectors.base import Selector
from dynacure.selectors.common import UNIQUE_IDS

log = logging.getLogger(__name__)

MISSING_ATTRIBUTES = "missing_attributes"
QUARANTINE_COLUMNS = ("id", "decision", "probability", "weight", "reason")


@dataclass
class Candidates:
    """What the first pass leaves for selection and the second pass."""

    table: pd.DataFrame  # id = row position, source, n_tokens, attributes, features, text when needed
    digests: np.ndarray  # 8-byte digest of each table row's document id
    read_pos: np.ndarray  # table row -> position among the readable documents
    n_read: int  # readable documents
    records_read: int  # every record read, quarantined ones included
    quarantined: pd.DataFrame  # manifest rows (decision "quarantined") of records not in the table
    membership: dict[str, np.ndarray] | None = None  # identity-group masks per table row (disparity cap)


def _str_array(values: list[str]) -> pd.Series:
    # Arrow-backed strings: a few bytes per id instead of a Python object each (memory scales with corpus).
    return pd.Series(values, dtype="str")


def _read_ids(corpus: Path, shard_size: int) -> pd.Series:
    """The ids of the readable documents, in reading order (Arrow strings)."""
    return _read_ids_and_digests(corpus, shard_size, with_digests=False)[0]


def _read_ids_and_digests(corpus: Path, shard_size: int, with_digests: bool = True
                          ) -> tuple[pd.Series, np.ndarray]:
    """The ids of the readable documents, in reading order (Arrow strings), and their texts' digests
    (``text_digest`` as uint64: 8 bytes a document)."""
    from dynacure.io.quarantine import Quarantine
    from dynacure.io.readers import iter_shards

    parts, digests = [], []
    for shard in iter_shards(corpus, shard_size=shard_size, quarantine=Quarantine()):
        parts.append(_str_array([d.id for d in shard.docs]))
        digests.append(np.array([int(text_digest(d.text), 16) for d in shard.docs] if with_digests else [],
                                dtype=np.uint64))
    if not parts:
        return _str_array([]), np.zeros(0, dtype=np.uint64)
    return pd.concat(parts, ignore_index=True), np.concatenate(digests)


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


class ReadStep:
    """Reads ``corpus`` for ``selector``: scores shards with ``score`` when given, attaches the stored
    attributes of ``use_signals`` from ``attrs_dir``, and keeps identity-group masks when ``groups``."""

    def __init__(self, corpus: Path, out: Path, selector: Selector, attrs_dir: Path, use_signals: list[str],
                 *, shard_size: int, score: ScoreStep | None = None, groups: bool = False,
                 progress: Any = None) -> None:
        self.corpus, self.out, self.selector = corpus, out, selector
        self.attrs_dir, self.use_signals, self.shard_size = attrs_dir, list(use_signals), shard_size
        self.score, self.groups, self.progress = score, groups, progress
        self.stats: Counter[str] = Counter()

    def run(self) -> Candidates:
        from dynacure.io.quarantine import Quarantine, read_quarantine
        from dynacure.io.readers import ReadStats, iter_shards

        corpus, selector, use_signals = self.corpus, self.selector, self.use_signals
        has_features = type(selector).text_features is not Selector.text_features
        features: dict[str, list[np.ndarray]] = {}
        # Stored attributes are attached shard by shard while reading when their shards line up with the
        # corpus's (same ids, same order): then no table of every id and score is ever loaded.
        attr_parts: dict[str, list[np.ndarray]] | None = {} if use_signals else None
        digests: list[np.ndarray] = []
        source_code: dict[str, int] = {}  # sources as category codes: 4 bytes per document, not a string
        sources: list[np.ndarray] = []
        ntoks: list[np.ndarray] = []
        texts: list[pd.Series] = []
        groups: list[dict[str, np.ndarray]] = []
        stats = ReadStats()
        qpath = self.out / "quarantine.jsonl"
        with Quarantine(qpath) as quarantine:
            for shard in iter_shards(corpus, shard_size=self.shard_size, quarantine=quarantine, stats=stats):
                if self.score is not None:
                    self.score.run(shard.name, shard.docs)
                shard_ids = [d.id for d in shard.docs]
                if attr_parts is not None and shard.docs:
                    cols = shard_attributes(self.attrs_dir, use_signals, shard.name, shard_ids,
                                            [d.text for d in shard.docs])
                    if cols is None:  # shards do not line up: join on id after reading
                        attr_parts = None
                    else:
                        for name, col in cols.items():
                            attr_parts.setdefault(name, []).append(col)
                digests.append(id_digests(shard_ids, len(shard_ids)))
                sources.append(np.array([source_code.setdefault(d.source, len(source_code))
                                         for d in shard.docs], dtype=np.int32))
                ntoks.append(np.array([count_tokens(d.text) for d in shard.docs], dtype=np.int64))
                if selector.needs_text:
                    texts.append(_str_array([d.text for d in shard.docs]))
                if has_features:  # text features per shard: the texts need not be held
                    for name, col in selector.text_features([d.text for d in shard.docs]).items():
                        features.setdefault(selector.feature_column(name), []).append(np.asarray(col))
                if self.groups:
                    from dynacure.audit.groups import group_membership

                    groups.append(group_membership([d.text for d in shard.docs]))
                if self.progress:
                    self.progress("read", stats.n_read, 0)
        qrows = _quarantine_rows(read_quarantine(qpath), corpus)
        n_docs_read = int(sum(len(x) for x in digests))
        if not n_docs_read:
            raise ValueError(f"{corpus}: no readable documents ({len(qrows)} quarantined)")

        columns: dict[str, Any] = {
            "id": np.arange(n_docs_read, dtype=np.int64),
            "source": pd.Categorical.from_codes(np.concatenate(sources), categories=list(source_code)),
            "n_tokens": np.concatenate(ntoks),
        }
        if selector.needs_text:
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
        missing: list[pd.DataFrame] = []
        if use_signals:
            table, read_pos, doc_digests, missing = self._join(table, read_pos, doc_digests, use_signals)
        parts = [*missing, qrows] if len(qrows) else missing
        quarantined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {c: [] for c in QUARANTINE_COLUMNS})
        self.stats["documents"] += len(table)
        self.stats.update(f"quarantined:{str(r).split(':', 1)[0]}" for r in quarantined["reason"])
        membership = None
        if self.groups:
            names = sorted({g for shard_groups in groups for g in shard_groups})
            membership = {g: np.concatenate([sg.get(g, np.zeros(0, bool)) for sg in groups])[read_pos]
                          for g in names}
        return Candidates(table, doc_digests, read_pos, n_docs_read, int(stats.n_read), quarantined,
                          membership)

    def _check_digests(self, ids: pd.Series, text_digs: np.ndarray, use_signals: list[str]) -> None:
        """Refuse stored attributes whose ``text_digest`` differs from the text of the same id now."""
        for sig in use_signals:
            stored = read_text_digests(self.attrs_dir, sig)
            if stored is None:
                warn_undigested(self.attrs_dir, sig)
                continue
            found = ids.map(stored)
            known = found.notna().to_numpy()
            stored_u = np.array([int(h, 16) for h in found[known]], dtype=np.uint64)
            bad = np.flatnonzero(known)[stored_u != text_digs[known]]
            if len(bad):
                raise StaleAttributesError(
                    f"{self.attrs_dir / sig}: attributes of other text: "
                    f"{describe_ids(ids.iloc[bad].tolist())} changed since they were scored; re-score the "
                    "corpus (dynacure score CORPUS --out SAME_FOLDER re-scores what changed)")

    def _join(self, table: pd.DataFrame, read_pos: np.ndarray, doc_digests: np.ndarray,
              use_signals: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[pd.DataFrame]]:
        """Attach the attributes whose shards did not line up with the corpus's: the rare case, a join on
        id, for which the ids are read again (with their texts' digests, to check the stored ones)."""
        missing: list[pd.DataFrame] = []
        table["id"], text_digs = _read_ids_and_digests(self.corpus, self.shard_size)
        self._check_digests(table["id"], text_digs, use_signals)
        attrs = read_attributes(self.attrs_dir, use_signals)
        if len(attrs) == len(table) and bool(attrs["id"].astype("str").reset_index(drop=True)
                                             .eq(table["id"]).all()):
            # Scored in reading order (the usual case): attach by position, no hash join over every id.
            for col in attrs.columns.drop("id"):
                table[col] = attrs[col].to_numpy()
        else:
            extra_ids = ~attrs["id"].isin(table["id"])
            if extra_ids.any():
                log.warning("%s: %d scored ids are not in the corpus; ignored", self.attrs_dir,
                            int(extra_ids.sum()))
            merged = table.merge(attrs[~extra_ids], on="id", how="left", validate="one_to_one",
                                 indicator=True)
            unscored = (merged["_merge"] == "left_only").to_numpy()
            if unscored.any():
                log.warning("%d documents have no stored attributes; quarantined as %s", int(unscored.sum()),
                            MISSING_ATTRIBUTES)
                n = int(unscored.sum())
                missing.append(pd.DataFrame({
                    "id": merged.loc[unscored, "id"].to_numpy(), "decision": "quarantined",
                    "probability": np.zeros(n), "weight": np.zeros(n), "reason": MISSING_ATTRIBUTES}))
                read_pos = read_pos[~unscored]
            table = merged.loc[~unscored].drop(columns="_merge").reset_index(drop=True)
        if table.empty:
            raise ValueError(f"{self.corpus}: no document has the attributes strategy "
                             f"{self.selector.name!r} needs")
        # back to positions (the digests of the rows left, in table order)
        doc_digests = chunk_digests(string_chunks(table["id"]))
        table["id"] = np.arange(len(table), dtype=np.int64)
        return table, read_pos, doc_digests, missing
