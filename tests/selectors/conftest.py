"""Small corpora built in code for the selector tests: two topics with disjoint vocabularies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

_SPORTS = ("the striker scored a late goal and the crowd cheered as the team won the match in the final "
          "minute the coach praised the defence the referee blew the whistle the keeper saved a penalty "
          "the league table season fans stadium players kicked ball tournament championship")
SPORTS = tuple(_SPORTS.split())
_COOKING = ("stir the onions in butter until golden then add garlic and simmer the sauce season with salt "
           "and pepper bake the bread in a hot oven whisk the eggs chop the herbs the recipe kitchen "
           "flour sugar pan roast dough spoon")
COOKING = tuple(_COOKING.split())


def topic_text(rng: np.random.Generator, vocab: tuple[str, ...] | list[str], n_words: int) -> str:
    return " ".join(rng.choice(vocab, size=n_words))


def topic_table(n_sports: int, n_cooking: int, seed: int = 0,
                lengths: tuple[int, int] = (20, 40)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for topic, vocab, n in (("sports", SPORTS, n_sports), ("cooking", COOKING, n_cooking)):
        for i in range(n):
            text = topic_text(rng, vocab, int(rng.integers(*lengths)))
            rows.append({"id": f"{topic}-{i}", "source": topic, "text": text, "n_tokens": len(text.split())})
    order = rng.permutation(len(rows))
    return pd.DataFrame([rows[i] for i in order]).reset_index(drop=True)


@pytest.fixture
def make_topics():
    return topic_table


@pytest.fixture
def topics() -> pd.DataFrame:
    return topic_table(100, 300, seed=1)


@pytest.fixture
def sports_target() -> list[str]:
    rng = np.random.default_rng(99)
    return [topic_text(rng, SPORTS, 30) for _ in range(40)]


@pytest.fixture(scope="session")
def small_topics() -> pd.DataFrame:
    return topic_table(60, 180, seed=2)


@pytest.fixture(scope="session")
def nano_prior(small_topics):
    """A nano TinyGPT trained briefly on the two-topic pool: the generic prior for CoLoR and ICA tests."""
    import torch

    from dynacure.selectors.models import pool_learner

    torch.set_num_threads(1)
    return pool_learner(small_topics["text"].tolist(), "nano", seed=0, n_docs=240, steps=40)
