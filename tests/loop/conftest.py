"""Fixtures of the loop tests: synthetic pools, the reward-side scorer, a nano learner."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_pool  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def pool():
    return synthetic_pool(600, seed=0)


@pytest.fixture(scope="session")
def profanity_scorer():
    """The shipped reward-side scorer (alt-profanity-check through the `profanity` signal)."""
    from dynacure.signals.base import get_signal

    sig = get_signal("profanity")
    return lambda texts: (
        np.asarray(sig.score(list(texts))["toxicity"], dtype=np.float64) if texts else np.zeros(0)
    )


@pytest.fixture()
def nano(pool):
    from dynacure.learners.tiny_gpt import TinyGPT

    table, _ = pool
    return TinyGPT.create(list(table["text"][:200]), preset="nano", seed=0)
