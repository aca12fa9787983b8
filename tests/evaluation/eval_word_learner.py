"""A real ``Learner`` with hand-set probabilities, so every evaluation metric has a hand-computable answer.

It is a whitespace-word unigram model: log P(text) = sum of log p(word) over its words (one token per
word), the prefix does not matter. ``generate`` returns fixed replies from a lookup table when the prompt
is in it (so toxicity of known generations can be checked) and samples words from the unigram otherwise.
``train_step`` updates the unigram by counts, so it is a working (if very small) language model.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynacure.learners.base import Learner


class WordLearner(Learner):
    def __init__(self, probs: dict[str, float], unk: float = 1e-3,
                 replies: dict[str, list[str]] | None = None, default_reply: list[str] | None = None,
                 follows_instructions: bool = False) -> None:
        self.probs = dict(probs)
        self.unk = unk
        self.replies = replies or {}
        self.default_reply = default_reply
        self.follows_instructions = follows_instructions
        self.counts: Counter[str] = Counter()
        self.calls: list[dict] = []

    def logp(self, word: str) -> float:
        return math.log(self.probs.get(word, self.unk))

    def _lp(self, text: str) -> tuple[float, int]:
        words = text.split()
        return sum(self.logp(w) for w in words), len(words)

    def train_step(self, texts: Sequence[str], weights: Sequence[float] | None = None) -> float:
        loss = float(np.nanmean(self.example_losses(texts)))
        for t in texts:
            self.counts.update(t.split())
        total = sum(self.counts.values())
        self.probs = {w: c / total for w, c in self.counts.items()}
        return loss

    def example_losses(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        out = []
        for t in texts:
            lp, n = self._lp(t)
            out.append(-lp / n if n else float("nan"))
        return np.array(out)

    def continuation_logprob(self, prefixes: Sequence[str], continuations: Sequence[str]) -> tuple[
            np.ndarray, np.ndarray]:
        assert len(prefixes) == len(continuations)
        pairs = [self._lp(c) for c in continuations]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def generate(self, prompts: Sequence[str], num_samples: int = 1, max_new_tokens: int = 20,
                 top_p: float = 0.9, temperature: float = 1.0, seed: int = 0) -> list[list[str]]:
        self.calls.append({"n": len(prompts), "num_samples": num_samples, "max_new_tokens": max_new_tokens,
                           "top_p": top_p})
        rng = np.random.default_rng(seed)
        words = sorted(self.probs, key=lambda w: -self.probs[w])
        p = np.array([self.probs[w] for w in words])
        keep = int(np.searchsorted(np.cumsum(p) / p.sum(), top_p) + 1)
        out = []
        for prompt in prompts:
            fixed = self.replies.get(prompt, self.default_reply)
            if fixed is not None:
                out.append([fixed[i % len(fixed)] for i in range(num_samples)])
                continue
            q = p[:keep] / p[:keep].sum()
            out.append([" " + " ".join(rng.choice(words[:keep], size=max_new_tokens, p=q))
                        for _ in range(num_samples)])
        return out

    def save(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "unigram.json").write_text(json.dumps({"format_version": 1, "probs": self.probs,
                                                             "unk": self.unk}))


def keyword_judge(texts: list[str]) -> np.ndarray:
    """P(toxic) by keyword: 0.9 with 'badword', 0.3 with 'meh', else 0."""
    return np.array([0.9 if "badword" in t else 0.3 if "meh" in t else 0.0 for t in texts])
