"""Attribute tables (Dolma's documents/attributes split): per-document scores as Parquet keyed by ``id``.

Layout: ``ATTRS/<signal>/<shard-name>.parquet`` holds column ``id`` plus one column per signal output,
named ``<signal>__<column>`` so tables from many signals join without clashes. A corpus is scored once
and selected many times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.atomic import atomic_path

SEP = "__"


def column_name(signal: str, column: str) -> str:
    return f"{signal}{SEP}{column}"


def write_attribute_shard(
    attrs_dir: str | Path, signal: str, shard: str, ids: list[str], columns: Mapping[str, np.ndarray]
) -> Path:
    """Write one signal's scores for one corpus shard, atomically."""
    data: dict[str, object] = {"id": pa.array(ids, type=pa.string())}
    for name, values in columns.items():
        arr = np.asarray(values)
        if len(arr) != len(ids):
            raise ValueError(f"signal {signal!r} column {name!r}: {len(arr)} values for {len(ids)} documents")
        data[column_name(signal, name)] = pa.array(arr)
    out = Path(attrs_dir) / signal / f"{shard}.parquet"
    with atomic_path(out) as tmp:
        pq.write_table(pa.table(data), tmp)
    return out


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
        merged = table if merged is None else merged.merge(table, on="id", how="outer", validate="one_to_one")
    assert merged is not None
    return merged


def join_attributes(docs: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
    """Attach attributes to a document table by ``id``; documents without scores get NaN."""
    return docs.merge(attrs, on="id", how="left", validate="one_to_one")
