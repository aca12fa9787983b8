"""Write step: the second streaming pass over the corpus, writing the kept documents and the manifest.

The corpus is read again rather than its documents held since the first pass; each document's id digest
is checked against the one the read step kept (a corpus changed in between is refused). Kept documents go
through the transform step (re-route prefix, PII redaction) and carry ``meta["curate_weight"]`` when a
weight differs from 1; the manifest gets one row per document in table order, then the quarantined rows.
Both files are written atomically. ``stats``: ``written`` and ``manifest_rows``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path
from dynacure.io.document import Document
from dynacure.io.idset import id_digest
from dynacure.pipeline.read import Candidates
from dynacure.pipeline.transform import TextTransform
from dynacure.selectors.base import Selection

MANIFEST_COLUMNS = ("id", "decision", "probability", "weight", "reason")
MANIFEST_SCHEMA = pa.schema([("id", pa.string()), ("decision", pa.string()), ("probability", pa.float64()),
                             ("weight", pa.float64()), ("reason", pa.string())])
MANIFEST_CHUNK = 1 << 16  # rows per row group: the manifest is built and written this many rows at a time



class ManifestRows:
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
def manifest_writer(path: Path, selection: Selection, reason_codes: np.ndarray,
                     reason_names: Any) -> Iterator[ManifestRows]:
    """``manifest.parquet`` written atomically: it appears only when the block completes."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, MANIFEST_SCHEMA) as writer:
        yield ManifestRows(writer, selection, reason_codes, reason_names)


class WriteStep:
    """Writes ``out/shard-*.jsonl.gz`` + ``corpus.json`` (kept documents) and ``out/manifest.parquet``."""

    def __init__(self, out: Path, out_shard_size: int, transform: TextTransform) -> None:
        self.out, self.out_shard_size, self.transform = out, out_shard_size, transform
        self.stats: Counter[str] = Counter()

    def run(self, corpus: Path, shard_size: int, cand: Candidates, selection: Selection,
            extra: dict[str, Any]) -> set[str]:
        """The second pass; returns the ids that appear more than once in the manifest (an accounting
        error the caller reports). ``extra``: fields added to ``corpus.json``."""
        from dynacure.io.quarantine import Quarantine
        from dynacure.io.readers import iter_shards
        from dynacure.io.writers import write_corpus

        n_docs_read, doc_digests = cand.n_read, cand.digests
        row_of = np.full(n_docs_read, -1, dtype=np.int32 if n_docs_read < 2**31 else np.int64)
        row_of[cand.read_pos] = np.arange(len(cand.read_pos))
        keep = selection.keep
        weighted = bool(np.any(np.abs(selection.weight[selection.keep] - 1.0) > 1e-12))
        quarantined = cand.quarantined
        # Ids of quarantined rows, to catch one that repeats or equals a document's id (the reader already
        # made the documents' ids unique among themselves).
        extra_count = Counter(quarantined["id"].astype(str))
        repeated = {i for i, c in extra_count.items() if c > 1}
        reason = selection.reason
        with manifest_writer(self.out / "manifest.parquet", selection, reason.codes,
                             reason.categories) as manifest_rows:

            def kept_docs() -> Iterator[Document]:
                k = 0
                for shard in iter_shards(corpus, shard_size=shard_size, quarantine=Quarantine()):
                    for d in shard.docs:
                        i = row_of[k] if k < n_docs_read else -1
                        k += 1
                        if i < 0:
                            continue
                        if id_digest(d.id) != doc_digests[i]:
                            raise RuntimeError(f"{corpus}: changed while curating (document {k}, {d.id!r}, "
                                               f"is not the one read before); rerun")
                        manifest_rows.add(d.id)
                        self.stats["manifest_rows"] += 1
                        if d.id in extra_count:
                            repeated.add(d.id)
                        if not keep[i]:
                            continue
                        meta = dict(d.meta)
                        if weighted:
                            meta["curate_weight"] = float(selection.weight[i])
                        self.stats["written"] += 1
                        yield Document(d.id, self.transform.apply(int(i), d.text), d.source, meta)
                if k != n_docs_read:
                    raise RuntimeError(f"{corpus}: changed while curating ({k} documents now, {n_docs_read} "
                                       f"before)")

            write_corpus(kept_docs(), self.out, shard_size=self.out_shard_size, extra=extra, check_ids=False)
            manifest_rows.finish(quarantined)
        return repeated
