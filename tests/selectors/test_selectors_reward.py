"""Composite reward: weight validation, the formula on known numbers, calibration and missing columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from dynacure.selectors.reward import RewardColumns, RewardWeights, composite_reward, reward_components


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "b", "c"],
        "toxicity_ngram__toxicity": [0.1, 0.9, 0.2],
        "toxicity_ngram__insult": [0.3, 0.2, 0.0],
        "profanity__toxicity": [0.0, 0.5, 0.6],
        "alignment__score": [0.5, 0.2, 1.0],
        "quality__score": [0.8, 0.4, 0.0],
        "quality__density": [0.5, 1.0, 1.0],
    })


def test_weights_must_sum_to_one():
    RewardWeights(safety=0.2, alignment=0.3, utility=0.5)
    RewardWeights(safety=1 / 3, alignment=1 / 3, utility=1 / 3)
    with pytest.raises(ValidationError, match="sum to 1"):
        RewardWeights(safety=0.5, alignment=0.5, utility=0.5)
    with pytest.raises(ValidationError):
        RewardWeights(safety=1.2, alignment=-0.1, utility=-0.1)
    with pytest.raises(ValidationError):
        RewardWeights(safety=0.5, alignment=0.5, utility=0.0, extra=0.0)


def test_parse_weights():
    w = RewardWeights.parse("0.5, 0.3, 0.2")
    assert (w.safety, w.alignment, w.utility) == (0.5, 0.3, 0.2)
    for bad in ("0.5,0.5", "a,b,c", "0.6,0.3,0.2"):
        with pytest.raises(ValueError, match="weights"):
            RewardWeights.parse(bad)


def test_composite_reward_formula():
    t = table()
    w = RewardWeights(safety=0.5, alignment=0.3, utility=0.2)
    r = composite_reward(t, w)
    tox = np.array([0.3, 0.9, 0.6])  # max over the three toxicity columns
    expected = 0.5 * (1 - tox) + 0.3 * np.array([0.5, 0.2, 1.0]) + 0.2 * np.array([0.8, 0.4, 0.0])
    np.testing.assert_allclose(r, expected)
    # with density, utility = quality * density
    r2 = composite_reward(t, w, RewardColumns(density="quality__density"))
    np.testing.assert_allclose(r2 - r, 0.2 * (np.array([0.4, 0.4, 0.0]) - np.array([0.8, 0.4, 0.0])))


def test_calibrator_is_applied_to_toxicity():
    class Halve:
        def predict(self, x):
            return np.asarray(x) / 2

    t = table()
    w = RewardWeights(safety=1.0, alignment=0.0, utility=0.0)
    np.testing.assert_allclose(composite_reward(t, w, calibrator=Halve()), 1 - np.array([0.3, 0.9, 0.6]) / 2)
    # per-column calibrators: only the profanity column is recalibrated to 0
    cal = {"profanity__toxicity": lambda x: np.zeros_like(x)}
    np.testing.assert_allclose(composite_reward(t, w, calibrator=cal), 1 - np.array([0.3, 0.9, 0.2]))


def test_missing_columns_are_named():
    t = table().drop(columns=["alignment__score", "quality__score"])
    with pytest.raises(ValueError, match="alignment__score.*quality__score"):
        composite_reward(t, RewardWeights())
    # a component with weight 0 needs no column
    comps = reward_components(t, RewardWeights(safety=1.0, alignment=0.0, utility=0.0))
    assert set(comps) == {"safety"}
    no_tox = table()[["id", "alignment__score", "quality__score"]]
    with pytest.raises(ValueError, match="toxicity"):
        composite_reward(no_tox, RewardWeights())


def test_out_of_range_and_nan_refused():
    t = table()
    t.loc[0, "alignment__score"] = 1.7
    with pytest.raises(ValueError, match=r"alignment__score.*\[0, 1\]"):
        composite_reward(t, RewardWeights())
    t = table()
    t.loc[1, "quality__score"] = np.nan
    with pytest.raises(ValueError, match="quality__score.*1 missing"):
        composite_reward(t, RewardWeights())
