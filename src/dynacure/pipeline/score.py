"""Score step: attribute columns for a shard of documents, written as one attribute shard per signal.

``score_shard`` is the per-shard work as a plain function (shard in -> attribute files
``ATTRS/<signal>/<shard>.parquet`` out), so an executor (``engines``) can map it over shards; a shard whose
stored file already holds the same ids is reused, which is what makes a killed run resumable.
``shard_attributes`` reads one shard's stored columns back for the read step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dynacure.io.attributes import write_attribute_shard
from dynacure.io.document import Document


def _stored_shard_ok(path: Path, ids: list[str]) -> bool:
    if not path.exists():
        return False
    try:
        stored = pq.read_table(path, columns=["id"]).column("id").to_pylist()
    except (OSError, pa.ArrowInvalid, KeyError):
        return False
    return stored == ids


def score_shard(attrs_dir: Path, signals: dict[str, Any], shard_name: str,
                docs: Sequence[Document]) -> list[str]:
    """Score ``docs`` with every signal not already stored for this shard; returns the signals scored."""
    ids = [d.id for d in docs]
    texts = [d.text for d in docs]
    scored = []
    for name, sig in signals.items():
        if _stored_shard_ok(attrs_dir / name / f"{shard_name}.parquet", ids):  # resume: scored before
            continue
        write_attribute_shard(attrs_dir, name, shard_name, ids, sig.score(texts))
        scored.append(name)
    return scored


def shard_attributes(attrs_dir: Path, signals: list[str], shard_name: str,
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


class ScoreStep:
    """Scores the corpus's shards with the named signals into ``attrs_dir`` (``stats``: ``scored:<signal>``
    and ``reused:<signal>`` shards)."""

    def __init__(self, attrs_dir: Path, signals: Sequence[str]) -> None:
        from dynacure.signals.base import get_signal

        self.attrs_dir = attrs_dir
        self.signals = {name: get_signal(name) for name in signals}
        self.stats: Counter[str] = Counter()

    def run(self, shard_name: str, docs: Sequence[Document]) -> None:
        if not docs:
            return
        scored = score_shard(self.attrs_dir, self.signals, shard_name, docs)
        for name in self.signals:
            self.stats[f"{'scored' if name in scored else 'reused'}:{name}"] += 1
