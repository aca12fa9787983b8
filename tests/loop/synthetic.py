"""Synthetic loop pools for the loop tests: texts plus score columns with a known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLEAN = [
    "the",
    "river",
    "flows",
    "past",
    "the",
    "old",
    "mill",
    "and",
    "the",
    "children",
    "walk",
    "to",
    "school",
    "in",
    "the",
    "morning",
    "light",
    "farmers",
    "grow",
    "wheat",
    "and",
    "corn",
    "while",
    "the",
    "baker",
    "makes",
    "bread",
    "for",
    "the",
    "village",
    "market",
]
TOXIC = ["idiot", "stupid", "hate", "moron", "dumb", "shut", "up", "loser", "trash", "kill", "ugly"]


def draw_text(rng: np.random.Generator, toxic: bool) -> str:
    """8-29 clean words; a toxic text has a third of them replaced by toxic words."""
    k = int(rng.integers(8, 30))
    words = list(rng.choice(CLEAN, size=k))
    if toxic:
        for j in rng.choice(k, size=max(1, k // 3), replace=False):
            words[j] = str(rng.choice(TOXIC))
    return " ".join(words)


def synthetic_pool(n: int = 400, toxic_share: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A pool whose toxic rows have high toxicity scores and toxic words; returns (table, gold labels)."""
    # offset so the pool's draws are not the same stream as a selector seeded with the same number
    rng = np.random.default_rng(seed + 9176)
    toxic = rng.random(n) < toxic_share
    texts, sources = [], []
    for i in range(n):
        texts.append(draw_text(rng, bool(toxic[i])))
        sources.append(["web", "forum", "books"][int(rng.integers(0, 3))])
    tox = np.clip(np.where(toxic, rng.beta(6, 2, n), rng.beta(1, 8, n)), 0, 1)
    table = pd.DataFrame(
        {
            "id": [f"d{i:05d}" for i in range(n)],
            "text": texts,
            "source": sources,
            "n_tokens": [len(t.split()) for t in texts],
            "toxicity_ngram__toxicity": tox,
            "alignment__score": np.clip(rng.beta(3, 3, n) - 0.2 * toxic, 0, 1),
            "quality__score": rng.beta(4, 2, n),
        }
    )
    return table, toxic.astype(int)
