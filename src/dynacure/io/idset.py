"""A set of document ids that costs ~8 bytes per id, for the readers' run-wide duplicate-id check.

A Python ``set`` of id strings costs ~100 bytes per document (the string object plus its slot), which made
reading a corpus grow with its size. ``IdSet`` keeps a 64-bit BLAKE2b digest of each id: recent digests in
a small Python set, the rest in one sorted NumPy array that the recent ones are merged into every
``flush_at`` additions (so a lookup is a set probe plus one binary search).

Two different ids share a digest with probability about ``n**2 / 2**65`` over ``n`` ids (3e-8 at a million,
3e-2 at a billion); the reader would then quarantine the second one as ``duplicate_id``: accounted for, not
lost. ``find_duplicates`` uses the same digests for an exact check over many ids in little memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np


def id_digest(doc_id: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


class IdSet:
    def __init__(self, flush_at: int = 1 << 16) -> None:
        if flush_at < 1:
            raise ValueError(f"flush_at must be >= 1, got {flush_at}")
        self.flush_at = int(flush_at)
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._has(id_digest(doc_id))

    def _has(self, h: int) -> bool:
        if h in self._recent:
            return True
        s = self._sorted
        if not len(s):
            return False
        i = int(np.searchsorted(s, np.uint64(h)))
        return i < len(s) and int(s[i]) == h

    def add(self, doc_id: str) -> bool:
        """Add ``doc_id``; False (and nothing added) when it was already in the set."""
        h = id_digest(doc_id)
        if self._has(h):
            return False
        self._recent.add(h)
        if len(self._recent) >= self.flush_at:
            merged = np.concatenate([self._sorted, np.fromiter(self._recent, np.uint64, len(self._recent))])
            merged.sort(kind="stable")
            self._sorted = merged
            self._recent = set()
        return True


def id_digests(ids: Iterable[str], count: int = -1) -> np.ndarray:
    """``id_digest`` of every id, as a uint64 array (``count``: the number of ids, when known)."""
    return np.fromiter((id_digest(i) for i in ids), np.uint64, count)


def chunk_digests(chunks: Iterable[Sequence[str]]) -> np.ndarray:
    """``id_digests`` over chunks of ids, concatenated (one chunk of Python strings alive at a time)."""
    parts = [id_digests(chunk, len(chunk)) for chunk in chunks]
    return np.concatenate(parts) if parts else np.empty(0, np.uint64)


def string_chunks(ids: Any, size: int = 1 << 16) -> Iterator[list[str]]:
    """A pandas Series of ids as lists of ``size`` Python strings, one list at a time."""
    for a in range(0, len(ids), size):
        yield ids.iloc[a:a + size].astype(str).tolist()


def find_duplicates(chunks: Callable[[], Iterator[Sequence[str]]]) -> list[str]:
    """The ids that occur more than once over the chunks ``chunks()`` yields (called twice when a digest
    repeats, to tell a real repeat from a digest collision). Memory: 8 bytes per id plus one chunk."""
    all_d = chunk_digests(chunks())
    all_d.sort()  # in place: one array of digests at the peak, not two
    repeated = set(all_d[1:][all_d[1:] == all_d[:-1]].tolist())
    if not repeated:
        return []
    seen: dict[str, int] = {}
    for chunk in chunks():
        for i in chunk:
            if id_digest(i) in repeated:
                seen[i] = seen.get(i, 0) + 1
    return sorted(i for i, n in seen.items() if n > 1)
