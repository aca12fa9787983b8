"""Score step: attribute columns for a shard of documents, written as one attribute shard per signal.

``score_shard`` is the per-shard work as a plain function (shard in -> attribute files
``ATTRS/<signal>/<shard>.parquet`` out), so an executor (``engines``) can map it over shards; a shard whose
stored file already holds the same ids and the same texts (``text_digest``) is reused, which is what makes a
killed run resumable without ever reusing scores of a text that has since changed.
``shard_attributes`` reads one shard's stored columns back for the read step and, given the shard's texts,
refuses scores computed from other text (``StaleAttributesError`` naming the file and the first ids); a table
written before tables carried ``text_digest`` is accepted with a warning (nothing to check it against).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.attributes import (
    TEXT_DIGEST,
    check_text_digests,
    describe_ids,
    mismatched_positions,
    stored_digests,
    text_digests,
    write_attribute_shard,
)
from dynacure.io.document import Document

log = logging.getLogger(__name__)

# (attrs folder, signal) already warned about tables without text digests: one warning per signal and run.
_WARNED_UNDIGESTED: set[tuple[str, str]] = set()


def _stored_shard_ok(path: Path, ids: list[str], digests: list[str]) -> bool:
    """Whether ``path`` holds scores of exactly these documents (ids and texts), to be reused."""
    if not path.exists():
        return False
    try:
        stored_ids, stored = stored_digests(path)
    except (OSError, pa.ArrowInvalid, KeyError):
        return False
    if stored_ids != ids:
        return False
    if stored is None:
        log.warning("%s: no text digests (scored by an older dynacure); scoring the shard again", path)
        return False
    changed = mismatched_positions(stored, digests)
    if changed:
        log.warning("%s: the text of %s changed since it was scored; scoring the shard again", path,
                    describe_ids([ids[i] for i in changed]))
        return False
    return True


def score_shard(attrs_dir: Path, signals: dict[str, Any], shard_name: str,
                docs: Sequence[Document]) -> list[str]:
    """Score ``docs`` with every signal not already stored for this shard (same ids and texts); returns
    the signals scored."""
    ids = [d.id for d in docs]
    texts = [d.text for d in docs]
    digests = text_digests(texts)
    scored = []
    for name, sig in signals.items():
        if _stored_shard_ok(attrs_dir / name / f"{shard_name}.parquet", ids, digests):  # resume
            continue
        write_attribute_shard(attrs_dir, name, shard_name, ids, sig.score(texts), digests)
        scored.append(name)
    return scored


def warn_undigested(attrs_dir: Path, signal: str) -> None:
    """Say (once per folder and signal) that stored attributes cannot be checked against the corpus."""
    key = (str(attrs_dir), signal)
    if key not in _WARNED_UNDIGESTED:
        _WARNED_UNDIGESTED.add(key)
        log.warning("%s: attribute tables of %r carry no text digests (scored by an older dynacure): "
                    "cannot check they were computed from this corpus's text; re-score it "
                    "(dynacure score) to have them checked", attrs_dir, signal)


def shard_attributes(attrs_dir: Path, signals: list[str], shard_name: str, ids: list[str],
                     texts: Sequence[str] | None = None) -> dict[str, np.ndarray] | None:
    """The stored attribute columns of one corpus shard when every chosen signal has that shard with the
    same ids in the same order (the usual case: scored with the same shard size); else None.

    With ``texts``, each table's ``text_digest`` must match them: ``StaleAttributesError`` (a ValueError
    naming the table and the first mismatching ids) when not; a table without digests is accepted with a
    warning."""
    out: dict[str, np.ndarray] = {}
    digests = text_digests(texts) if texts is not None else None
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
        if digests is not None:
            stored = tbl.column(TEXT_DIGEST).to_pylist() if TEXT_DIGEST in tbl.column_names else None
            if not check_text_digests(path, ids, stored, digests):
                warn_undigested(attrs_dir, sig)
        for name in tbl.column_names:
            if name not in ("id", TEXT_DIGEST):  # as the whole-table path converts them (lists: arrays)
                out[name] = tbl.column(name).to_pandas().to_numpy()
    return out


class ScoreStep:
    """Scores the corpus's shards with the named signals into ``attrs_dir`` (``stats``: ``scored:<signal>``
    and ``reused:<signal>`` shards; a stored shard whose texts changed is scored again)."""

    def __init__(self, attrs_dir: Path, signals: Sequence[str],
                 signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        from dynacure.engines.common import build_signals

        self.attrs_dir = attrs_dir
        # ``signal_kwargs``: constructor options per signal (``curate --signal-arg``), built as ``score`` does
        self.signals = build_signals(list(signals), signal_kwargs or {})
        self.stats: Counter[str] = Counter()

    def run(self, shard_name: str, docs: Sequence[Document]) -> None:
        if not docs:
            return
        scored = score_shard(self.attrs_dir, self.signals, shard_name, docs)
        for name in self.signals:
            self.stats[f"{'scored' if name in scored else 'reused'}:{name}"] += 1
