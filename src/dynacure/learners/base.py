"""The learner interface every part of dynacure trains and probes through.

The small GPT (``tiny_gpt``) and the Hugging Face adapter (``hf``) both implement it, so selectors,
the RL loop and the evaluation suites never care which model is underneath.

Optional beyond it: a learner with ``encode``, ``eos_id``, ``n_ctx`` and ``train_packed_step(rows,
token_weights)`` (both causal LMs, ``causal_lm.CausalLMLearner``) is trained by ``learners.training.train`` on
documents packed into full context blocks; any other learner one ``train_step`` row per document.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class Learner(ABC):
    """A causal language model that can be trained step by step, scored and sampled."""

    device: str = "cpu"

    @abstractmethod
    def train_step(self, texts: Sequence[str], weights: Sequence[float] | None = None) -> float:
        """One optimiser step on ``texts``; ``weights`` (one per text, mean ~1) scale each example's loss.

        Returns the (weighted) mean token loss of the batch before the update.
        """

    @abstractmethod
    def example_losses(
        self, texts: Sequence[str], contexts: Sequence[str] | None = None, max_tokens: int | None = None
    ) -> np.ndarray:
        """Mean token negative log-likelihood of each text, optionally conditioned on a context placed
        before it (the context's own tokens are not scored). ``max_tokens`` scores only each text's first
        ``max_tokens`` tokens (cheap ranking scores). Shape ``(len(texts),)``."""

    @abstractmethod
    def continuation_logprob(self, prefixes: Sequence[str], continuations: Sequence[str]) -> tuple[
            np.ndarray, np.ndarray]:
        """Summed log-prob of each continuation given its prefix, and its token count."""

    @abstractmethod
    def generate(self, prompts: Sequence[str], num_samples: int = 1, max_new_tokens: int = 20,
                 top_p: float = 0.9, temperature: float = 1.0, seed: int = 0) -> list[list[str]]:
        """``num_samples`` sampled continuations (text only, prompt excluded) per prompt."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write weights (safetensors), config and tokenizer (JSON) under ``path``; resumable."""

    def perplexity(self, texts: Sequence[str]) -> float:
        """Token-weighted perplexity over ``texts`` (default: from ``example_losses``)."""
        losses = self.example_losses(texts)
        return float(np.exp(np.mean(losses)))
