"""Perplexity on a held-out text file (the demo's clean text), with the perplexity suite's own method.

The evaluation layer's ``perplexity`` suite reads WikiText-2/PTB only; the demo must run without
../shared/data, so this suite applies the same windows, log-probabilities and bootstrap to any text file
and reports ``heldout_token_ppl`` / ``heldout_word_ppl`` under the suite name ``perplexity``.

Both carry their per-window Units (kind "exp_ratio"): values = the window's summed NLL in nats, weights =
its token count (``heldout_token_ppl``, the learner's tokens) or its whitespace word count
(``heldout_word_ppl``). Ids are the window's word span ``w<first word>+<words>``: the windows are packed by
the learner's tokenizer, so two learners with the same tokenizer (every cell of an experiment) get the same
ids and pair unit by unit, and learners whose tokenizers cut the text differently are refused a pairing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dynacure.evaluation.base import Suite, SuiteResult
from dynacure.evaluation.common import ProgressFn, batched_logprob, ratio_ci
from dynacure.evaluation.perplexity import learner_context, make_windows, token_counter
from dynacure.learners.base import Learner
from dynacure.stats import Units


class HeldoutPerplexitySuite(Suite):
    name: ClassVar[str] = "perplexity"

    def __init__(
        self,
        texts_file: str | Path,
        max_tokens: int | None = None,
        batch_size: int = 32,
        progress: ProgressFn | None = None,
    ) -> None:
        self.path = Path(texts_file)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: held-out text file not found")
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.progress = progress

    def run(self, learner: Learner, seed: int = 0) -> SuiteResult:
        words = self.path.read_text(encoding="utf-8").split()
        if self.max_tokens is not None:
            words = words[: self.max_tokens]
        if not words:
            raise ValueError(f"{self.path}: no text")
        ctx = learner_context(learner)
        window = ctx - 1 if ctx else 63
        windows = make_windows(words, token_counter(learner)(words), window)
        lp, ntok = batched_logprob(
            learner,
            [""] * len(windows),
            windows,
            batch_size=self.batch_size,
            progress=self.progress,
            suite=self.name,
        )
        nwords = np.array([len(w.split()) for w in windows], dtype=float)
        starts = np.concatenate([[0], np.cumsum(nwords)[:-1]]).astype(int)
        ids = [f"w{s}+{int(n)}" for s, n in zip(starts, nwords, strict=True)]
        units = {
            "heldout_token_ppl": Units("exp_ratio", -lp, np.asarray(ntok, dtype=float), ids=ids),
            "heldout_word_ppl": Units("exp_ratio", -lp, nwords, ids=list(ids)),
        }
        metrics = {
            "heldout_token_ppl": ratio_ci(-lp, ntok, seed, transform=math.exp),
            "heldout_word_ppl": ratio_ci(-lp, nwords, seed, transform=math.exp),
        }
        details: dict[str, Any] = {
            "data_files": [str(self.path.resolve())],
            "window_tokens": window,
            "windows": len(windows),
            "tokens": int(ntok.sum()),
            "words": int(nwords.sum()),
        }
        return SuiteResult(self.name, metrics, None, details, units)
