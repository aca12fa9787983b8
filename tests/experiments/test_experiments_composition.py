"""Composition of curated corpora by source: known answers on a hand-made manifest."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dynacure.experiments.composition import ALL, cell_composition, wide_view


def _docs() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "b", "c", "d", "e"],
        "source": ["wiki", "wiki", "tweets", "tweets", "tweets"],
        "n_tokens": [100, 50, 10, 20, 30],
        "meta_toxic": [None, None, 1, 0, 1],
    })


def test_kept_tokens_and_toxic_share_by_source() -> None:
    man = pd.DataFrame({"id": ["a", "b", "c", "d", "e"],
                        "decision": ["keep", "drop", "keep", "keep", "drop"]})
    comp = cell_composition(man, _docs()).set_index("source")
    assert comp.loc["wiki", "kept_tokens"] == 100 and comp.loc["wiki", "pool_tokens"] == 150
    assert math.isnan(comp.loc["wiki", "kept_toxic_share"])  # no gold label there: unknown, not zero
    assert comp.loc["tweets", "kept_tokens"] == 30
    assert comp.loc["tweets", "kept_toxic_share"] == pytest.approx(0.5)
    assert comp.loc["tweets", "pool_toxic_share"] == pytest.approx(2 / 3)
    assert comp.loc[ALL, "kept_tokens"] == 130 and comp.loc[ALL, "kept_docs"] == 3
    assert comp.loc["wiki", "share_of_kept_tokens"] == pytest.approx(100 / 130)
    wide = wide_view(comp.reset_index().assign(strategy="random", budget=0.5))
    assert wide.loc["random @ 0.5", "tweets"] == "30 (50.0%)"
    assert list(wide.columns) == [ALL, "tweets", "wiki"]


def test_manifest_from_another_corpus_is_refused() -> None:
    man = pd.DataFrame({"id": ["a", "zz"], "decision": ["keep", "drop"]})
    with pytest.raises(ValueError, match="not in the documents table"):
        cell_composition(man, _docs())
