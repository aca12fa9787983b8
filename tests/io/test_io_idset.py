"""The readers' compact id set: exact membership over merges, duplicates refused."""

from __future__ import annotations

import numpy as np
import pytest

from dynacure.io.idset import IdSet


def test_idset_matches_a_python_set_across_merges():
    rng = np.random.default_rng(0)
    ids = [f"doc-{k}" for k in rng.integers(0, 3000, size=5000)]
    compact, reference = IdSet(flush_at=64), set()
    for i in ids:
        assert compact.add(i) == (i not in reference)
        reference.add(i)
    assert len(compact) == len(reference)
    assert all(i in compact for i in reference)
    assert "doc-999999" not in compact and 5 not in compact
    assert compact.add("café") and not compact.add("café") and compact.add("cafe")
    with pytest.raises(ValueError):
        IdSet(flush_at=0)


def test_find_duplicates_is_exact_and_reads_chunks():
    from dynacure.io.idset import find_duplicates

    chunks = [["a", "b", "c"], ["d", "b"], [], ["e", "a", "a"]]
    assert find_duplicates(lambda: iter(chunks)) == ["a", "b"]
    assert find_duplicates(lambda: iter([["x", "y"], ["z"]])) == []
    assert find_duplicates(lambda: iter([])) == []
