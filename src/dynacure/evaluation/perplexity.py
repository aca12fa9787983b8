"""Held-out perplexity on WikiText-2 and PTB test text: does curated training keep language ability?

The test text is cut into consecutive windows of whole words that fit the learner's context; each window is
scored with ``continuation_logprob`` after the previous window as (unscored) context, so every token but
those of the first window is predicted with context, as in the usual strided evaluation.
Token-level perplexity = exp(-sum logprob / sum tokens); per-word perplexity divides by the number of
whitespace words instead, so learners with different tokenizers compare. Intervals: bootstrap over
windows (the ratio recomputed on each resample).

Windows never cross the boundary of a *block* of ``unit_words`` consecutive words. The blocks are the units
behind ``<corpus>_word_ppl`` (``SuiteResult.units``, kind "exp_ratio": values = the block's summed NLL in
nats, weights = its whitespace words, ids = ``<corpus>:w<first word>+<words>``). Blocks depend only on the
text and the options, not on the learner's tokenizer (windows do), so two learners evaluated with the same
options pair block by block even when their tokenizers differ. Token perplexity gets no Units: its
denominator is the learner's own token count, which is not comparable across tokenizers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from dynacure.config import StrictModel
from dynacure.evaluation.base import Suite, SuiteResult
from dynacure.evaluation.checkpoint import ChunkStore
from dynacure.evaluation.common import ProgressFn, batched_logprob, parse_options, ratio_ci
from dynacure.io import public_data
from dynacure.learners.base import Learner
from dynacure.stats import Units

log = logging.getLogger(__name__)

CORPORA = ("wikitext2", "ptb")
DEFAULT_TOKENS_PER_WORD = 2.0  # used only when the learner exposes no tokenizer


class PerplexityOptions(StrictModel):
    corpora: list[str] = list(CORPORA)
    data_dir: str | None = None
    max_tokens: int | None = None  # at most this many whitespace words of each corpus (from its start)
    window_tokens: int | None = None  # default: the learner's context length minus one (start token)
    batch_size: int = 32
    with_context: bool = True  # condition each window on the previous one
    unit_words: int = Field(256, ge=1)  # words per block, the unit of the paired comparison (module doc)


def corpus_words(name: str, data_dir: str | None) -> tuple[list[str], str]:
    """Whitespace words of a test corpus in order, with end-of-line markers kept as in the source files."""
    base = Path(data_dir) if data_dir else public_data.default_data_dir()
    if name == "wikitext2":
        lines = public_data.wikitext2("test", data_dir)
        path = base / "wikitext-2" / "wiki.test.tokens.gz"
    elif name == "ptb":
        lines = public_data.ptb("test", data_dir)
        path = base / "ptb" / "ptb.test.txt.gz"
    else:
        raise ValueError(f"perplexity: unknown corpus {name!r}; choose from {list(CORPORA)}")
    words = [w for line in lines if line.strip() for w in line.split()]
    return words, str(path.resolve())


def learner_context(learner: Learner) -> int | None:
    for obj in (learner, getattr(learner, "config", None)):
        for attr in ("n_ctx", "context_length", "block_size", "max_length"):
            v = getattr(obj, attr, None) if obj is not None else None
            if isinstance(v, int) and v > 1:
                return v
    return None


def token_counter(learner: Learner) -> Callable[[list[str]], list[int]]:
    """Tokens per word (with its leading space) by the learner's own tokenizer when it has one."""
    tok = getattr(learner, "tokenizer", None)
    enc = getattr(tok, "encode", None)
    if callable(enc):
        def count(words: list[str]) -> list[int]:
            return [len(ids) for ids in enc([" " + w for w in words])]
        return count
    return lambda words: [math.ceil(DEFAULT_TOKENS_PER_WORD)] * len(words)


def pack_words(counts: Sequence[int], window_tokens: int) -> list[tuple[int, int]]:
    """``(start, end)`` word ranges that greedily pack whole words (``counts[i]`` tokens each) into windows
    of at most ``window_tokens`` tokens; a word longer than that is a window alone."""
    ranges: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, c in enumerate(counts):
        if i > start and used + c > window_tokens:
            ranges.append((start, i))
            start, used = i, 0
        used += c
    if len(counts) > start:
        ranges.append((start, len(counts)))
    return ranges


def make_windows(words: list[str], counts: list[int], window_tokens: int) -> list[str]:
    """Greedily pack whole words into windows of at most ``window_tokens`` tokens (a longer word alone)."""
    if len(words) != len(counts):
        raise ValueError(f"{len(words)} words but {len(counts)} token counts")
    return [" ".join(words[a:b]) for a, b in pack_words(counts, window_tokens)]


def score_windows(learner: Learner, windows: list[str], *, with_context: bool = True, batch_size: int = 32,
                  progress: ProgressFn | None = None, suite: str = "", done_offset: int = 0,
                  total: int | None = None, store: ChunkStore | None = None,
                  key: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Summed log-prob and token count of each consecutive window, each scored after the previous one as
    (unscored) context when ``with_context``."""
    prefixes = ([""] + windows[:-1]) if with_context else [""] * len(windows)
    conts = [(" " if p else "") + w for p, w in zip(prefixes, windows, strict=True)]
    return batched_logprob(learner, prefixes, conts, batch_size=batch_size, progress=progress, suite=suite,
                           done_offset=done_offset, total=total, store=store, key=key)


class PerplexitySuite(Suite):
    name: ClassVar[str] = "perplexity"

    def __init__(self, progress: ProgressFn | None = None, **options: Any):
        self.opts: PerplexityOptions = parse_options(PerplexityOptions, options, self.name)
        for c in self.opts.corpora:
            if c not in CORPORA:
                raise ValueError(f"perplexity: unknown corpus {c!r}; choose from {list(CORPORA)}")
        self.progress = progress

    def run(self, learner: Learner, seed: int = 0) -> SuiteResult:
        ctx = learner_context(learner)
        window = self.opts.window_tokens or (ctx - 1 if ctx else 63)
        if ctx and window > ctx - 1:
            raise ValueError(f"perplexity: window_tokens={window} does not fit the learner context {ctx}")
        count = token_counter(learner)
        metrics = {}
        units: dict[str, Units] = {}
        details: dict[str, Any] = {"window_tokens": window, "unit_words": self.opts.unit_words,
                                   "data_files": [], "corpora": {}}
        prepared = []
        step = self.opts.unit_words
        for name in self.opts.corpora:
            words, path = corpus_words(name, self.opts.data_dir)
            if self.opts.max_tokens is not None:
                words = words[: self.opts.max_tokens]
            counts = count(words)
            windows: list[str] = []
            block_of: list[int] = []  # block index of each window
            for b, start in enumerate(range(0, len(words), step)):
                part = make_windows(words[start:start + step], counts[start:start + step], window)
                windows.extend(part)
                block_of.extend([b] * len(part))
            starts = list(range(0, len(words), step))
            ids = [f"{name}:w{s}+{min(step, len(words) - s)}" for s in starts]
            prepared.append((name, path, windows, np.asarray(block_of, dtype=int), ids))
        total = sum(len(p[2]) for p in prepared)
        done = 0
        for name, path, windows, block_of, ids in prepared:
            lp, ntok = score_windows(learner, windows, with_context=self.opts.with_context,
                                     batch_size=self.opts.batch_size, progress=self.progress, suite=self.name,
                                     done_offset=done, total=total, store=self.checkpoint, key=name)
            done += len(windows)
            nwords = np.array([len(w.split()) for w in windows], dtype=float)
            metrics[f"{name}_token_ppl"] = ratio_ci(-lp, ntok, seed, transform=math.exp)
            metrics[f"{name}_word_ppl"] = ratio_ci(-lp, nwords, seed, transform=math.exp)
            # per-block sums: the tokenizer-independent units of the paired comparison
            block_nll = np.bincount(block_of, weights=-lp, minlength=len(ids))
            block_words = np.bincount(block_of, weights=nwords, minlength=len(ids))
            units[f"{name}_word_ppl"] = Units("exp_ratio", block_nll, block_words, ids=ids)
            details["data_files"].append(path)
            details["corpora"][name] = {"windows": len(windows), "blocks": len(ids),
                                        "tokens": int(ntok.sum()), "words": int(nwords.sum()),
                                        "nll_per_token": float(-lp.sum() / max(ntok.sum(), 1))}
        return SuiteResult(self.name, metrics, None, details, units)
