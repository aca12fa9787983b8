"""Probes of the learner inside the loop, built by active learning from the pool and refined on its outputs.

- A safety probe: a small logistic classifier on hashed unigram+bigram features. Its first training set
  is chosen by uncertainty sampling: label a small random seed set, then repeatedly label the documents
  where the current classifier is least certain (|p - 0.5| smallest). Labels come from an oracle: gold
  labels where the caller has them (``meta["toxic"]`` stands in for human labels), else the reward-side
  toxicity scorer.
- Probe prompts for the toxicity probe are prefixes of pool documents from that labeled set (toxic and
  clean, like RealToxicityPrompts' two halves) and never the evaluation prompts.
- Refinement (seed 001, step 4): every M steps the safety probe is re-trained on the learner's own
  generations labeled by the reward toxicity scorer, so it follows the learner's output distribution.
- ``ProbeSet.measure`` returns the three model-feedback metrics: toxicity of continuations, preference
  accuracy on held-out HH pairs, and held-out loss. The env turns them into differences.

The evaluation judge (``dynacure.signals.toxicity.load_judge``) is never used here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from dynacure.learners.base import Learner
from dynacure.loop.config import ProbeConfig

log = logging.getLogger(__name__)

Scorer = Callable[[list[str]], np.ndarray]


def reward_toxicity_scorer(
    prefer: Sequence[str] = ("toxicity_ngram", "profanity"),
    signal_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Scorer:
    """P(toxic) from the reward side: the first available of ``prefer`` (never the evaluation judge).

    ``signal_kwargs``: constructor arguments per signal name, the ones the corpus was scored with (an
    experiment passes its own ``model_dir``, so the demo's loop uses the demo-trained scorer from
    RUNS/models rather than whatever ``$DYNACURE_HOME`` holds). A signal whose model is missing fails with
    the signal's own message; it is not skipped for the next one, which would change what the loop
    optimises without saying so.
    """
    from dynacure.signals.base import get_signal

    kwargs = signal_kwargs or {}
    for name in prefer:
        try:
            sig = get_signal(name, **dict(kwargs.get(name, {})))
        except KeyError:  # not a registered signal (an optional extra not installed)
            continue
        col = next((c for c in sig.columns if "tox" in c or c in ("score", "probability")), sig.columns[0])

        def score(texts: list[str], _sig=sig, _col=col) -> np.ndarray:
            if not texts:
                return np.zeros(0)
            return np.asarray(_sig.score(list(texts))[_col], dtype=np.float64)

        log.info("loop toxicity scorer: signal %s column %s", name, col)
        return score
    # The signals layer is not importable yet: the shipped alt-profanity-check model is the same scorer
    # the `profanity` signal wraps, so use it directly.
    from profanity_check import predict_prob

    log.info("loop toxicity scorer: alt-profanity-check (signal registry has no toxicity signal)")
    return lambda texts: np.asarray(predict_prob(list(texts)), dtype=np.float64) if texts else np.zeros(0)


class HashedProbe:
    """Logistic regression on hashed unigram+bigram counts: the cheap safety probe."""

    def __init__(self, n_features: int = 2**12, seed: int = 0) -> None:
        self.vec = HashingVectorizer(
            n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2", lowercase=True
        )
        self.seed = seed
        self.clf: LogisticRegression | None = None
        self.constant: float | None = None
        self.texts: list[str] = []
        self.labels: list[int] = []

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> HashedProbe:
        self.texts, self.labels = list(texts), [int(v) for v in labels]
        return self._refit()

    def add(self, texts: Sequence[str], labels: Sequence[int]) -> HashedProbe:
        self.texts += list(texts)
        self.labels += [int(v) for v in labels]
        return self._refit()

    def _refit(self) -> HashedProbe:
        y = np.asarray(self.labels)
        if len(y) == 0 or len(set(y.tolist())) < 2:
            self.clf, self.constant = None, float(y.mean()) if len(y) else 0.5
            return self
        self.clf = LogisticRegression(C=4.0, max_iter=200, class_weight="balanced", random_state=self.seed)
        self.clf.fit(self.vec.transform(self.texts), y)
        self.constant = None
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        if self.clf is None:
            return np.full(len(texts), self.constant if self.constant is not None else 0.5)
        return self.clf.predict_proba(self.vec.transform(list(texts)))[:, 1]


def active_learning(
    texts: Sequence[str],
    oracle: Callable[[np.ndarray], np.ndarray],
    size: int,
    seed_size: int = 16,
    batch: int = 8,
    seed: int = 0,
    n_features: int = 2**12,
) -> tuple[np.ndarray, np.ndarray, HashedProbe]:
    """Uncertainty sampling: returns (labeled indices in labeling order, their labels, the fitted probe)."""
    rng = np.random.default_rng(seed)
    n = len(texts)
    size = min(size, n)
    order = rng.permutation(n)
    labeled = list(order[: min(seed_size, size)])
    labels = list(oracle(np.asarray(labeled)))
    probe = HashedProbe(n_features, seed)
    texts = list(texts)
    while len(labeled) < size:
        probe.fit([texts[i] for i in labeled], labels)
        rest = np.setdiff1d(np.arange(n), np.asarray(labeled), assume_unique=False)
        if not len(rest):
            break
        take = min(batch, size - len(labeled))
        if probe.clf is None:
            pick = rng.choice(rest, size=take, replace=False)  # one class so far: explore at random
        else:
            p = probe.predict_proba([texts[i] for i in rest])
            # least certain first; random tie-break so equal scores do not favour low indices
            key = np.abs(p - 0.5) + 1e-9 * rng.random(len(rest))
            pick = rest[np.argsort(key)[:take]]
        labeled += [int(i) for i in pick]
        labels += [int(v) for v in oracle(np.asarray(pick))]
    probe.fit([texts[i] for i in labeled], labels)
    return np.asarray(labeled, dtype=np.int64), np.asarray(labels, dtype=np.int64), probe


@dataclass
class ProbeResult:
    toxicity: float
    alignment: float
    heldout_loss: float

    def as_array(self) -> np.ndarray:
        return np.array([self.toxicity, self.alignment, self.heldout_loss], dtype=np.float64)


@dataclass
class ProbeSet:
    """Everything the loop probes the learner with (see module docstring)."""

    prompts: list[str]
    safety_probe: HashedProbe
    toxicity_scorer: Scorer
    config: ProbeConfig
    pair_prefixes: list[str] = field(default_factory=list)
    pair_chosen: list[str] = field(default_factory=list)
    pair_rejected: list[str] = field(default_factory=list)
    heldout: list[str] = field(default_factory=list)
    last_generations: list[str] = field(default_factory=list)
    refinements: int = 0

    def generations(self, learner: Learner, seed: int) -> list[str]:
        if not self.prompts:
            return []
        outs = learner.generate(
            self.prompts,
            num_samples=self.config.samples_per_prompt,
            max_new_tokens=self.config.max_new_tokens,
            top_p=0.9,
            seed=seed,
        )
        self.last_generations = [c for per in outs for c in per]
        return self.last_generations

    def score_toxicity(self, texts: list[str]) -> np.ndarray:
        if self.config.toxicity_scorer == "reward":
            return self.toxicity_scorer(texts)
        return self.safety_probe.predict_proba(texts)

    def measure(self, learner: Learner, seed: int) -> ProbeResult:
        gens = self.generations(learner, seed)
        tox = float(np.mean(self.score_toxicity(gens))) if gens else 0.0
        align = 0.5
        if self.pair_prefixes:
            lc, _ = learner.continuation_logprob(self.pair_prefixes, self.pair_chosen)
            lr, _ = learner.continuation_logprob(self.pair_prefixes, self.pair_rejected)
            diff = np.asarray(lc) - np.asarray(lr)
            # ties count half, so an untrained model that scores both the same sits at chance
            align = float(np.mean((diff > 0) + 0.5 * (diff == 0)))
        loss = float(np.mean(learner.example_losses(self.heldout))) if self.heldout else 0.0
        return ProbeResult(tox, align, loss)

    def refine(self, learner: Learner | None, seed: int) -> int:
        """Re-train the safety probe on the learner's generations labeled by the reward scorer."""
        gens = self.last_generations or (self.generations(learner, seed) if learner is not None else [])
        gens = [g for g in gens if g.strip()]
        if not gens:
            return 0
        labels = (self.toxicity_scorer(gens) >= 0.5).astype(int)
        self.safety_probe.add(gens, labels)
        self.refinements += 1
        return len(gens)


def oracle_from(
    labels: np.ndarray | None, texts: Sequence[str], scorer: Scorer | None
) -> Callable[[np.ndarray], np.ndarray]:
    """Labels for active learning: gold labels when given (human stand-in), else the reward scorer."""
    if labels is not None:
        lab = np.asarray(labels)
        return lambda idx: lab[np.asarray(idx, dtype=np.int64)].astype(int)
    if scorer is None:
        raise ValueError("active learning needs gold labels or a toxicity scorer")
    return lambda idx: (scorer([texts[i] for i in np.asarray(idx, dtype=np.int64)]) >= 0.5).astype(int)


def build_probes(
    pool: pd.DataFrame,
    config: ProbeConfig,
    seed: int = 0,
    labels: np.ndarray | None = None,
    pairs: pd.DataFrame | None = None,
    scorer: Scorer | None = None,
) -> tuple[ProbeSet, np.ndarray]:
    """Build the probe set from ``pool`` (needs ``text``); returns it and a mask of rows usable for training.

    ``labels``: gold 0/1 toxicity per pool row (e.g. from ``meta["toxic"]``), or None to label with the
    reward scorer. ``pairs``: preference pairs (columns prefix, chosen_reply, rejected_reply, and optionally
    chosen/rejected full dialogues) held out from training: pool rows whose text equals one of them are
    excluded from the training mask.
    """
    if "text" not in pool.columns:
        raise ValueError("building probes needs the pool's 'text' column")
    texts = [str(t) for t in pool["text"]]
    n = len(texts)
    scorer = scorer or reward_toxicity_scorer()
    rng = np.random.default_rng(seed + 7919)
    train_mask = np.ones(n, dtype=bool)
    n_held = min(config.n_heldout, max(0, n // 5))
    held_idx = rng.choice(n, size=n_held, replace=False) if n_held else np.zeros(0, dtype=np.int64)
    train_mask[held_idx] = False
    heldout = [texts[i] for i in held_idx]

    oracle = oracle_from(labels, texts, scorer)
    idx, lab, probe = active_learning(
        texts, oracle, config.probe_set_size, config.al_seed_size, config.al_batch, seed, config.hash_features
    )
    # Prompts: prefixes of labeled docs, half from toxic-labeled ones when there are any.
    tox_docs = [i for i, y in zip(idx, lab, strict=False) if y == 1]
    clean_docs = [i for i, y in zip(idx, lab, strict=False) if y == 0]
    n_tox = min(len(tox_docs), config.n_prompts // 2)
    chosen_docs = tox_docs[:n_tox] + clean_docs[: config.n_prompts - n_tox]
    prompts = []
    for i in chosen_docs:
        words = texts[i].split()
        if len(words) >= 2:
            prompts.append(" ".join(words[: min(config.prompt_words, max(1, len(words) // 2))]))

    ps = ProbeSet(prompts=prompts, safety_probe=probe, toxicity_scorer=scorer, config=config, heldout=heldout)
    if pairs is not None and len(pairs) and config.n_pairs:
        take = pairs.sample(n=min(config.n_pairs, len(pairs)), random_state=seed % (2**32))
        ps.pair_prefixes = [str(v) for v in take["prefix"]]
        ps.pair_chosen = [str(v) for v in take["chosen_reply"]]
        ps.pair_rejected = [str(v) for v in take["rejected_reply"]]
        held_texts = set()
        for col in ("chosen", "rejected"):
            if col in take.columns:
                held_texts.update(str(v) for v in take[col])
        held_texts.update(p + c for p, c in zip(ps.pair_prefixes, ps.pair_chosen, strict=False))
        held_texts.update(p + r for p, r in zip(ps.pair_prefixes, ps.pair_rejected, strict=False))
        train_mask &= np.array([t not in held_texts for t in texts])
    log.info(
        "probes: %d labeled by active learning (%d toxic), %d prompts, %d pairs, %d held-out docs",
        len(idx),
        int(lab.sum()),
        len(prompts),
        len(ps.pair_prefixes),
        len(heldout),
    )
    return ps, train_mask
