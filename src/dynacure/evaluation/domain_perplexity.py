"""Utility where curation costs: word perplexity on held-out clean text of every domain of the raw pool.

WikiText-2/PTB perplexity alone hides what a strategy loses by throwing a whole domain away (the toxic
minority of the pool sits in the social-media sources). This suite scores the learner on clean texts of
each pool domain, drawn from splits that never enter the pool (``dynacure.io.pool``):

=============  ===========================================  ===========================================
domain         held-out clean texts                         pool sources it stands for
=============  ===========================================  ===========================================
``tweets``     TweetEval offensive *test*, label 0          tweeteval_offensive, tweeteval_hate
``comments``   Jigsaw *test* pools, no toxic label          jigsaw
``davidson``   Davidson "neither" (class 2), parts other    davidson
               than ``pool`` (``public_data.part_of``)
``dialogue``   HH-RLHF harmless/helpful *eval* half,        hh_rlhf_harmless, hh_rlhf_helpful
               chosen dialogues
``wikitext2``  WikiText-2 *test*, paragraph documents as    wikitext2
               the pool cuts train (``wikitext_documents``)
``ptb``        PTB *test*, ~150-word documents              ptb
               (``ptb_documents``)
=============  ===========================================  ===========================================

A text whose whitespace-normalised form equals a pool document's is left out (a handful of tweets repeat
across TweetEval splits), and so is a repeat within a domain; ``details`` counts both. Per domain, a stable
sample of ``max_texts_per_domain`` texts is drawn with ``common.SUBSET_SEED``: the same texts for every
learner, so two cells are compared text by text.

Each text (its first ``max_words`` words, original whitespace kept) is scored by the learner as one
continuation when it fits the learner's context, else cut into windows of whole words
(``perplexity.pack_words``), each window conditioned on the previous one (unscored), as the ``perplexity``
suite does. A text's NLL is the sum of its windows' token NLLs in nats; its *word count* is the number of
whitespace-separated words (``len(text.split())``) of the scored text. Metrics:

- ``word_perplexity_<domain>`` = exp(sum NLL / sum words) over the domain's texts;
- ``word_perplexity_macro`` = the geometric mean of the per-domain word perplexities (exp of the per-word
  NLL averaged over domains with equal weight). An arithmetic mean was decided by one domain: under the base's
  WikiText tokenizer tweet perplexities are ~10^5-10^6 and WikiText ~500, so every other domain vanished.

Each is an ``Estimate`` whose interval is a bootstrap over texts (BCa per domain; a percentile bootstrap
stratified by domain for the macro mean, see ``stats.units_ci``), computed from its ``Units`` (kind
"exp_ratio": values = NLL per text, weights = words per text, ids = ``<domain>:<dataset>:<row>`` style text
ids, groups = domain for the macro).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from dynacure.config import StrictModel
from dynacure.evaluation.base import Suite, SuiteResult
from dynacure.evaluation.common import N_BOOT, ProgressFn, batched_logprob, fixed_subset, parse_options
from dynacure.evaluation.perplexity import learner_context, pack_words, token_counter
from dynacure.io import pool
from dynacure.io import public_data as pdata
from dynacure.io.idset import id_digest
from dynacure.learners.base import Learner
from dynacure.stats import Estimate, Units, units_ci

log = logging.getLogger(__name__)

DOMAINS = ("tweets", "comments", "davidson", "dialogue", "wikitext2", "ptb")
# Which pool sources each domain's held-out text stands for (reports: what a dropped source costs).
DOMAIN_SOURCES: dict[str, tuple[str, ...]] = {
    "tweets": ("tweeteval_offensive", "tweeteval_hate"),
    "comments": ("jigsaw",),
    "davidson": ("davidson",),
    "dialogue": ("hh_rlhf_harmless", "hh_rlhf_helpful"),
    "wikitext2": ("wikitext2",),
    "ptb": ("ptb",),
}
MACRO = "word_perplexity_macro"
_WORD = re.compile(r"\S+\s*")


class DomainPerplexityOptions(StrictModel):
    data_dir: str | None = None
    domains: list[str] = Field(default_factory=lambda: list(DOMAINS), min_length=1)
    max_texts_per_domain: int | None = Field(200, ge=1)  # a stable sample, the same for every learner
    max_words: int | None = Field(256, ge=1)  # score at most this many words of each text (from its start)
    window_tokens: int | None = Field(None, ge=1)  # default: the learner's context length minus one
    batch_size: int = Field(32, ge=1)


@dataclass(frozen=True)
class HeldoutText:
    id: str
    domain: str
    text: str


def normalise(text: str) -> str:
    """The form texts are compared in against the pool: whitespace runs collapsed, ends stripped."""
    return " ".join(text.split())


def _raw_texts(domain: str, data_dir: str | None) -> tuple[Iterator[tuple[str, str]], list[Path]]:
    """(id, text) of every candidate held-out text of ``domain``, and the files they come from."""
    base = Path(data_dir) if data_dir else pdata.default_data_dir()
    if domain == "tweets":
        df = pdata.tweeteval("offensive", "test", data_dir)
        df = df[df["label"] == 0]
        files = [base / "tweeteval-offensive-hate" / "offensive_test.csv"]
        return ((f"tweets:{d}:{r}", t) for d, r, t in zip(df["dataset"], df["row"], df["text"],
                                                            strict=True)), files
    if domain == "comments":
        df = pdata.jigsaw("test", data_dir)
        df = df[df["label"] == 0]
        files = sorted((base / "jigsaw-toxic-comments-sample" / "data_pools").glob("test.*.csv"))
        return ((f"comments:{d}:{r}", t) for d, r, t in zip(df["dataset"], df["row"], df["text"],
                                                              strict=True)), files
    if domain == "davidson":
        df = pdata.davidson(data_dir)
        df = df[(df["cls"] == 2) & (df["part"] != "pool")]  # "neither", and never a pool row
        files = [base / "davidson-hate-offensive" / "labeled_data.csv"]
        return ((f"davidson:{d}:{r}", t) for d, r, t in zip(df["dataset"], df["row"], df["text"],
                                                              strict=True)), files
    if domain == "dialogue":
        frames = [pdata.hh_rlhf(s, half="eval", data_dir=data_dir) for s in pdata.HH_SUBSETS]
        files = [base / "hh-rlhf" / s / "test.jsonl.gz" for s in pdata.HH_SUBSETS]
        return ((f"dialogue:{s}:{r}", t) for df in frames
                for s, r, t in zip(df["subset"], df["row"], df["chosen"], strict=True)), files
    if domain == "wikitext2":
        docs = pool.wikitext_documents(pdata.wikitext2("test", data_dir))
        return ((f"wikitext2:test:{start}", text) for start, text, _ in docs), [
            base / "wikitext-2" / "wiki.test.tokens.gz"]
    if domain == "ptb":
        docs = pool.ptb_documents(pdata.ptb("test", data_dir))
        return ((f"ptb:test:{start}", text) for start, text, _ in docs), [base / "ptb" / "ptb.test.txt.gz"]
    raise ValueError(f"domain_perplexity: unknown domain {domain!r}; choose from {list(DOMAINS)}")


def pool_text_digests(data_dir: str | None) -> frozenset[int]:
    """64-bit digests of the normalised text of every raw-pool document (all sources), to keep pool text
    out of the held-out sets. Cached per data folder: every cell of an experiment evaluates on the same
    data, and the digests (~8 bytes + a set slot each) cost far less than holding the texts."""
    data = Path(data_dir) if data_dir else pdata.default_data_dir()
    return _pool_digests(str(data.resolve()))


@functools.lru_cache(maxsize=4)
def _pool_digests(data: str) -> frozenset[int]:
    return frozenset(id_digest(normalise(d.text)) for build in pool.POOL_SOURCES.values()
                     for d in build(Path(data)))


def heldout_texts(domains: list[str], data_dir: str | None, max_per_domain: int | None,
                  ) -> tuple[list[HeldoutText], dict[str, dict[str, int]], list[str]]:
    """The held-out texts of ``domains`` (stable sample per domain), counts per domain and data files."""
    in_pool = pool_text_digests(data_dir)
    out: list[HeldoutText] = []
    counts: dict[str, dict[str, int]] = {}
    files: list[str] = []
    for domain in domains:
        rows, paths = _raw_texts(domain, data_dir)
        files.extend(str(p.resolve()) for p in paths)
        seen: set[str] = set()
        cands: list[HeldoutText] = []
        n_pool = n_repeat = 0
        for tid, text in rows:
            key = normalise(str(text))
            if not key:
                continue
            if id_digest(key) in in_pool:
                n_pool += 1
                continue
            if key in seen:
                n_repeat += 1
                continue
            seen.add(key)
            cands.append(HeldoutText(tid, domain, str(text).strip()))
        if not cands:
            raise ValueError(f"domain_perplexity: no held-out text for domain {domain!r} in {files[-1]}")
        picked = [cands[i] for i in fixed_subset(len(cands), max_per_domain)]
        counts[domain] = {"candidates": len(cands), "texts": len(picked), "left_out_in_pool": n_pool,
                          "left_out_repeat": n_repeat}
        out.extend(picked)
    return out, counts, files


def text_windows(text: str, count: Callable[[list[str]], list[int]], window_tokens: int,
                 max_words: int | None) -> tuple[list[str], int]:
    """The first ``max_words`` words of ``text`` as windows of whole words (original whitespace kept, so
    the pieces joined give the scored text back), and the number of words scored."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if max_words is not None:
        spans = spans[:max_words]
    if not spans:
        return [], 0
    words = [text[a:b].rstrip() for a, b in spans]
    pieces = [text[spans[a][0]:spans[b - 1][1]] for a, b in pack_words(count(words), window_tokens)]
    pieces[-1] = pieces[-1].rstrip()
    return pieces, len(words)


class DomainPerplexitySuite(Suite):
    name: ClassVar[str] = "domain_perplexity"

    def __init__(self, progress: ProgressFn | None = None, **options: Any):
        self.opts: DomainPerplexityOptions = parse_options(DomainPerplexityOptions, options, self.name)
        unknown = [d for d in self.opts.domains if d not in DOMAINS]
        if unknown:
            raise ValueError(f"domain_perplexity: unknown domain(s) {unknown}; choose from {list(DOMAINS)}")
        self.domains = list(dict.fromkeys(self.opts.domains))
        self.progress = progress

    def run(self, learner: Learner, seed: int = 0) -> SuiteResult:
        ctx = learner_context(learner)
        window = self.opts.window_tokens or (ctx - 1 if ctx else 63)
        if ctx and window > ctx - 1:
            raise ValueError(f"domain_perplexity: window_tokens={window} does not fit the learner context "
                             f"{ctx}")
        texts, counts, files = heldout_texts(self.domains, self.opts.data_dir, self.opts.max_texts_per_domain)
        count = token_counter(learner)
        prefixes: list[str] = []
        conts: list[str] = []
        owner: list[int] = []  # text index of each window
        words = np.zeros(len(texts))
        for i, t in enumerate(texts):
            pieces, words[i] = text_windows(t.text, count, window, self.opts.max_words)
            prefixes.extend(["", *pieces[:-1]])
            conts.extend(pieces)
            owner.extend([i] * len(pieces))
        lp, ntok = batched_logprob(learner, prefixes, conts, batch_size=self.opts.batch_size,
                                   progress=self.progress, suite=self.name, store=self.checkpoint,
                                   key="items")
        own = np.asarray(owner, dtype=int)
        nll = np.bincount(own, weights=-lp, minlength=len(texts))
        tokens = np.bincount(own, weights=ntok, minlength=len(texts))
        ids = [t.id for t in texts]
        doms = np.array([t.domain for t in texts])
        metrics: dict[str, Estimate] = {}
        units: dict[str, Units] = {}
        details: dict[str, Any] = {"window_tokens": window, "max_words": self.opts.max_words,
                                   "word_count": "whitespace-separated words of the scored text",
                                   "data_files": list(dict.fromkeys(files)), "domains": {}}
        for domain in self.domains:
            m = doms == domain
            u = Units("exp_ratio", nll[m], words[m], ids=[ids[j] for j in np.flatnonzero(m)])
            key = f"word_perplexity_{domain}"
            units[key] = u
            metrics[key] = units_ci(u, seed, n_boot=N_BOOT)
            details["domains"][domain] = {
                **counts[domain], "words": int(words[m].sum()), "tokens": int(tokens[m].sum()),
                "windows": int(np.isin(own, np.flatnonzero(m)).sum()),
                "nll_per_token": float(nll[m].sum() / max(tokens[m].sum(), 1)),
                "pool_sources": list(DOMAIN_SOURCES[domain])}
        macro = Units("exp_ratio", nll, words, ids=ids, groups=doms.tolist())
        units[MACRO] = macro
        metrics[MACRO] = units_ci(macro, seed, n_boot=N_BOOT)
        log.info("domain_perplexity: %d texts over %d domains, macro word perplexity %.1f",
                 len(texts), len(self.domains), metrics[MACRO].value)
        return SuiteResult(self.name, metrics, None, details, units)
