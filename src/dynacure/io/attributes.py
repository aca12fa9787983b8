"""Attribute tables (Dolma's documents/attributes split): per-document scores as Parquet keyed by ``id``.

Layout: ``ATTRS/<signal>/<shard-name>.parquet`` holds column ``id`` plus one column per signal output,
named ``<signal>__<column>`` so tables from many signals join without clashes. A corpus is scored once
and selected many times.

Each table also holds ``text_digest``: a short stable hash (blake2b, 8 bytes, hex) of the exact text each
row was scored from, so a resume can re-score the documents whose text changed and ``curate --attributes``
can refuse scores of other text (``check_text_digests``). Tables written before the column existed have
no ``text_digest``; readers accept them (``read_attributes`` never returns the column: it is not a score).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path

SEP = "__"
TEXT_DIGEST = "text_digest"
SHOW_IDS = 5  # how many mismatching ids a message names


class StaleAttributesError(ValueError):
    """Stored attributes were computed from other text than the corpus holds now."""


def text_digest(text: str) -> str:
    """16 hex characters identifying ``text`` exactly (blake2b-8 of its UTF-8 bytes)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def text_digests(texts: Iterable[str]) -> list[str]:
    return [text_digest(t) for t in texts]


def mismatched_positions(stored: Sequence[str | None], current: Sequence[str]) -> list[int]:
    """Positions whose stored digest differs from the current one (a missing stored digest differs)."""
    return [i for i, (a, b) in enumerate(zip(stored, current, strict=True)) if a != b]


def describe_ids(ids: Sequence[str], limit: int = SHOW_IDS) -> str:
    """``"3 documents (a, b, c)"``: a count and the first few ids, for messages."""
    shown = ", ".join(str(i) for i in ids[:limit]) + (", ..." if len(ids) > limit else "")
    return f"{len(ids):,} document{'s' if len(ids) != 1 else ''} ({shown})"


def column_name(signal: str, column: str) -> str:
    return f"{signal}{SEP}{column}"


def _shard_table(signal: str, ids: list[str], columns: Mapping[str, np.ndarray],
                 digests: Sequence[str] | None) -> pa.Table:
    data: dict[str, object] = {"id": pa.array(ids, type=pa.string())}
    if digests is not None:
        if len(digests) != len(ids):
            raise ValueError(f"signal {signal!r}: {len(digests)} text digests for {len(ids)} documents")
        data[TEXT_DIGEST] = pa.array(list(digests), type=pa.string())
    for name, values in columns.items():
        arr = np.asarray(values)
        if len(arr) != len(ids):
            raise ValueError(f"signal {signal!r} column {name!r}: {len(arr)} values for {len(ids)} documents")
        data[column_name(signal, name)] = pa.array(arr)
    return pa.table(data)


def attribute_shard_path(attrs_dir: str | Path, signal: str, shard: str) -> Path:
    return Path(attrs_dir) / signal / f"{shard}.parquet"


def write_attribute_shard(
    attrs_dir: str | Path, signal: str, shard: str, ids: list[str], columns: Mapping[str, np.ndarray],
    digests: Sequence[str] | None = None,
) -> Path:
    """Write one signal's scores for one corpus shard, atomically; ``digests``: ``text_digest`` of each
    scored text (always given by the scoring engines; None writes a table without the column)."""
    out = attribute_shard_path(attrs_dir, signal, shard)
    with atomic_path(out) as tmp:
        pq.write_table(_shard_table(signal, ids, columns, digests), tmp)
    return out


def stored_digests(path: str | Path) -> tuple[list[str], list[str | None] | None]:
    """(ids, text digests) of one attribute shard; digests None for a table written without them."""
    schema = pq.read_schema(path)
    cols = ["id", TEXT_DIGEST] if TEXT_DIGEST in schema.names else ["id"]
    tbl = pq.read_table(path, columns=cols)
    digests = tbl.column(TEXT_DIGEST).to_pylist() if TEXT_DIGEST in cols else None
    return tbl.column("id").to_pylist(), digests


def patch_attribute_shard(attrs_dir: str | Path, signal: str, shard: str, positions: Sequence[int],
                          columns: Mapping[str, np.ndarray], digests: Sequence[str]) -> Path:
    """Replace the rows at ``positions`` of a stored shard (which has ``text_digest``) with new scores.

    ``columns`` and ``digests`` hold one value per position. Row order and the table's schema are kept,
    so a shard re-scored in part has the layout of one scored whole.
    """
    path = attribute_shard_path(attrs_dir, signal, shard)
    old = pq.read_table(path)
    n = old.num_rows
    pos = np.asarray(positions, dtype=np.int64)
    all_ids = old.column("id").to_pylist()
    new = _shard_table(signal, [all_ids[p] for p in pos], columns, digests)
    new = new.select(old.column_names).cast(old.schema)
    keep = np.setdiff1d(np.arange(n, dtype=np.int64), pos)
    combined = pa.concat_tables([old.take(pa.array(keep)), new])
    order = np.empty(n, dtype=np.int64)  # row i of the result is row order[i] of ``combined``
    order[keep] = np.arange(len(keep))
    order[pos] = len(keep) + np.arange(len(pos))
    with atomic_path(path) as tmp:
        pq.write_table(combined.take(pa.array(order)), tmp)
    return path


def signals_in(attrs_dir: str | Path) -> list[str]:
    root = Path(attrs_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def read_attributes(attrs_dir: str | Path, signals: Iterable[str] | None = None) -> pd.DataFrame:
    """All attribute columns of the chosen signals joined on ``id`` (one row per scored document)."""
    root = Path(attrs_dir)
    chosen = list(signals) if signals is not None else signals_in(root)
    if not chosen:
        raise FileNotFoundError(f"{root}: no attribute tables found")
    merged: pd.DataFrame | None = None
    for sig in chosen:
        files = sorted((root / sig).glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{root / sig}: no attribute shards for signal {sig!r}")
        table = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        table = table.drop(columns=[TEXT_DIGEST], errors="ignore")  # a check, not a score
        merged = table if merged is None else merged.merge(table, on="id", how="outer", validate="one_to_one")
    assert merged is not None
    return merged


def join_attributes(docs: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
    """Attach attributes to a document table by ``id``; documents without scores get NaN."""
    return docs.merge(attrs, on="id", how="left", validate="one_to_one")


def check_text_digests(where: str | Path, ids: Sequence[str], stored: Sequence[str | None] | None,
                       current: Sequence[str]) -> bool:
    """Raise ``StaleAttributesError`` naming ``where`` and the first ids whose stored ``text_digest``
    differs from ``current``; False when ``stored`` is None (a table without digests: cannot be checked)."""
    if stored is None:
        return False
    bad = mismatched_positions(stored, current)
    if bad:
        raise StaleAttributesError(
            f"{where}: attributes of other text: {describe_ids([ids[i] for i in bad])} changed since they "
            "were scored; re-score the corpus (dynacure score CORPUS --out SAME_FOLDER re-scores what "
            "changed)")
    return True


def read_text_digests(attrs_dir: str | Path, signal: str) -> pd.Series | None:
    """id -> ``text_digest`` over every shard of one signal; None when a shard has no digests."""
    parts = []
    for f in sorted((Path(attrs_dir) / signal).glob("*.parquet")):
        if TEXT_DIGEST not in pq.read_schema(f).names:
            return None
        tbl = pq.read_table(f, columns=["id", TEXT_DIGEST])
        parts.append(pd.Series(tbl.column(TEXT_DIGEST).to_pylist(), index=tbl.column("id").to_pylist(),
                               dtype=object))
    return pd.concat(parts) if parts else pd.Series([], dtype=object)
