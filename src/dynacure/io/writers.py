"""Writers: documents to JSONL / JSONL.gz / Parquet, and sharded corpus folders with a ``corpus.json``.

Every write is atomic (temporary sibling + rename, ``dynacure.io.atomic``) and byte-deterministic for the
same input: JSON keys sorted, gzip headers without timestamp or file name, no wall-clock fields. So a
rerun of the same command produces identical files, and a crash never leaves a file that looks done.

A corpus folder is ``DIR/shard-00000.jsonl.gz ...`` plus ``DIR/corpus.json``::

    {"format_version": 1, "n_docs": ..., "n_tokens": ..., "shard_size": ...,
     "shards": [{"name": "shard-00000", "file": "shard-00000.jsonl.gz", "n_docs": ..., "n_tokens": ...}],
     "sources": {"<source>": {"n_docs": ..., "n_tokens": ...}}, ...extra}
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.document import Document, count_tokens
from dynacure.io.idset import IdSet
from dynacure.io.jsonfile import read_versioned
from dynacure.io.readers import CORPUS_FORMAT_VERSION, CORPUS_MANIFEST, PARQUET_META_KEY

log = logging.getLogger(__name__)

DOCS_FORMAT_VERSION = 1
_JSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_PARQUET_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("meta", pa.string())],
    metadata={PARQUET_META_KEY: json.dumps({"format_version": DOCS_FORMAT_VERSION}).encode()},
)


def _default(obj: Any) -> Any:
    # numpy scalars, Paths, dates and the like in meta: written as their text (never pickled).
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def document_line(doc: Document) -> bytes:
    """One JSONL line (with newline) for ``doc``: sorted keys, compact, UTF-8."""
    return orjson.dumps(doc.to_record(), option=_JSON_OPTS, default=_default) + b"\n"


def _gzip_writer(fh: IO[bytes]) -> gzip.GzipFile:
    # mtime=0 and an empty file name keep the gzip header identical on every run.
    return gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=6, mtime=0)


def _write_jsonl(docs: Iterable[Document], tmp: Path, compress: bool) -> int:
    n = 0
    with open(tmp, "wb") as raw:
        out: IO[bytes] = _gzip_writer(raw) if compress else raw
        try:
            for doc in docs:
                out.write(document_line(doc))
                n += 1
        finally:
            if compress:
                out.close()
    return n


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_parquet(docs: Iterable[Document], tmp: Path, batch_size: int) -> int:
    n = 0
    with pq.ParquetWriter(tmp, _PARQUET_SCHEMA) as writer:
        for batch in _batches(docs, batch_size):
            writer.write_table(pa.table({
                "id": [d.id for d in batch],
                "text": [d.text for d in batch],
                "source": [d.source for d in batch],
                "meta": [orjson.dumps(d.meta, option=_JSON_OPTS, default=_default).decode() for d in batch],
            }, schema=_PARQUET_SCHEMA))
            n += len(batch)
        if n == 0:
            writer.write_table(_PARQUET_SCHEMA.empty_table())
    return n


def write_documents(docs: Iterable[Document], path: str | os.PathLike[str], *,
                    batch_size: int = 10000) -> int:
    """Write ``docs`` to ``path`` (format by suffix: .jsonl, .jsonl.gz, .parquet); return the count."""
    p = Path(path)
    name = p.name.lower()
    with atomic_path(p) as tmp:
        if name.endswith((".jsonl.gz", ".ndjson.gz")):
            n = _write_jsonl(docs, tmp, compress=True)
        elif name.endswith((".jsonl", ".ndjson")):
            n = _write_jsonl(docs, tmp, compress=False)
        elif name.endswith(".parquet"):
            n = _write_parquet(docs, tmp, batch_size)
        else:
            raise ValueError(f"{p}: cannot tell the format from the suffix "
                             "(use .jsonl, .jsonl.gz or .parquet)")
    return n


def shard_file_name(index: int) -> str:
    return f"shard-{index:05d}.jsonl.gz"


def write_corpus(docs: Iterable[Document], out_dir: str | os.PathLike[str], shard_size: int = 5000,
                 extra: dict[str, Any] | None = None, check_ids: bool = True) -> dict[str, Any]:
    """Write ``docs`` as a corpus folder (gzip JSONL shards + ``corpus.json``); return the manifest.

    Streams: at most ``shard_size`` documents are held at once. ``extra`` fields (e.g. a pool's
    composition) are added to ``corpus.json``. Shard files of an earlier, larger corpus in ``out_dir``
    are removed so the folder always matches its manifest. ``check_ids=False`` skips the duplicate-id check
    for callers whose documents come from a reader that already made ids unique.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, not {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    sources: dict[str, dict[str, int]] = {}
    n_docs = n_tokens = 0
    seen = IdSet()  # ~8 bytes per id: writing memory does not grow with the corpus
    for i, batch in enumerate(_batches(docs, shard_size)):
        shard_tokens = 0
        for d in batch:
            if check_ids and not seen.add(d.id):
                raise ValueError(f"duplicate document id {d.id!r} (source {d.source!r}) in corpus for {out}")
            t = count_tokens(d.text)
            shard_tokens += t
            s = sources.setdefault(d.source, {"n_docs": 0, "n_tokens": 0})
            s["n_docs"] += 1
            s["n_tokens"] += t
        fname = shard_file_name(i)
        write_documents(batch, out / fname)
        shards.append({"name": fname.removesuffix(".jsonl.gz"), "file": fname, "n_docs": len(batch),
                       "n_tokens": shard_tokens})
        n_docs += len(batch)
        n_tokens += shard_tokens
    keep = {s["file"] for s in shards}
    for stale in out.glob("shard-*.jsonl.gz"):
        if stale.name not in keep:
            log.info("removing stale shard %s", stale)
            stale.unlink()
    manifest: dict[str, Any] = dict(extra or {})
    manifest.update({
        "format_version": CORPUS_FORMAT_VERSION,
        "n_docs": n_docs,
        "n_tokens": n_tokens,
        "shard_size": shard_size,
        "shards": shards,
        "sources": dict(sorted(sources.items())),
    })
    write_json_atomic(out / CORPUS_MANIFEST, manifest)
    return manifest


def read_corpus_manifest(corpus_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``corpus.json`` of a corpus folder, checked for its format version."""
    path = Path(corpus_dir) / CORPUS_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a corpus folder (no {CORPUS_MANIFEST})")
    return read_versioned(path, CORPUS_FORMAT_VERSION, what="corpus")
