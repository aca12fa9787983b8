"""Probe set: active learning picks the most uncertain docs, sizes are respected, refinement is switchable."""

from __future__ import annotations

import numpy as np
import pytest

from dynacure.loop.config import LoopConfig, ProbeConfig
from dynacure.loop.env import CurationEnv
from dynacure.loop.probes import HashedProbe, active_learning, build_probes

TOXIC_WORDS = ["idiot", "stupid", "moron", "loser", "trash"]
CLEAN_WORDS = ["river", "bread", "garden", "music", "school"]


def _known_pool(seed=0):
    """60 clearly toxic, 60 clearly clean and 8 ambiguous docs (half toxic words, half clean ones)."""
    rng = np.random.default_rng(seed)
    texts, labels, ambiguous = [], [], []
    for i in range(128):
        if i < 60:
            words, y = list(rng.choice(TOXIC_WORDS, 6)), 1
        elif i < 120:
            words, y = list(rng.choice(CLEAN_WORDS, 6)), 0
        else:
            words, y = list(rng.choice(TOXIC_WORDS, 3)) + list(rng.choice(CLEAN_WORDS, 3)), 1
            ambiguous.append(i)
        texts.append(" ".join(words))
        labels.append(y)
    return texts, np.array(labels), set(ambiguous)


def test_uncertainty_sampling_picks_the_ambiguous_docs():
    texts, labels, ambiguous = _known_pool()
    calls = []

    def oracle(idx):
        calls.append(np.asarray(idx).tolist())
        return labels[idx]

    idx, lab, probe = active_learning(texts, oracle, size=24, seed_size=16, batch=8, seed=3)
    seed_set, picked = set(idx[:16].tolist()), idx[16:].tolist()
    assert len(idx) == 24 and len(set(idx.tolist())) == 24
    assert np.array_equal(lab, labels[idx])  # the oracle's labels, in labeling order
    assert calls[0] == idx[:16].tolist() and calls[1] == picked  # seed set first, then one batch of 8
    # known answer 1: every ambiguous doc not already in the random seed set is picked first
    assert ambiguous - seed_set <= set(picked)
    # known answer 2: the picks are exactly the 8 smallest |p - 0.5| of a probe fitted on the seed set
    ref = HashedProbe(2**12, seed=3).fit([texts[i] for i in idx[:16]], labels[idx[:16]])
    rest = np.setdiff1d(np.arange(len(texts)), idx[:16])
    p = ref.predict_proba([texts[i] for i in rest])
    assert set(picked) == set(rest[np.argsort(np.abs(p - 0.5))[:8]].tolist())
    # the ambiguous docs really are the uncertain ones: strictly closer to 0.5 than any clear doc
    amb = np.isin(rest, list(ambiguous))
    assert np.abs(p[amb] - 0.5).max() < np.abs(p[~amb] - 0.5).min()


def test_random_sampling_would_not_find_them():
    """Control: a same-size random sample finds far fewer ambiguous docs than uncertainty sampling."""
    texts, labels, ambiguous = _known_pool()
    idx, _, _ = active_learning(texts, lambda i: labels[i], size=24, seed_size=16, batch=8, seed=3)
    al_hits = len(ambiguous & set(idx.tolist()))
    rng = np.random.default_rng(0)
    random_hits = np.mean([len(ambiguous & set(rng.permutation(128)[:24].tolist())) for _ in range(200)])
    assert al_hits == len(ambiguous) and random_hits < 2.0


@pytest.mark.parametrize("size", [8, 20, 5000])
def test_probe_set_size_is_respected(pool, profanity_scorer, size):
    table, gold = pool
    sample = table.iloc[:150].reset_index(drop=True)
    cfg = ProbeConfig(probe_set_size=size, al_seed_size=4, al_batch=64, n_prompts=4, n_heldout=10, n_pairs=0)
    probes, train_mask = build_probes(sample, cfg, seed=0, labels=gold[:150], scorer=profanity_scorer)
    n = min(size, 150)
    assert len(probes.safety_probe.texts) == n
    # gold labels are the oracle: every labeled text carries its own gold label
    label_of = dict(zip(sample["text"], gold[:150], strict=True))
    assert [label_of[t] for t in probes.safety_probe.texts] == probes.safety_probe.labels
    assert len(probes.prompts) <= 4 and len(probes.heldout) == 10 and (~train_mask).sum() == 10
    texts = list(sample["text"])
    assert probes.prompts and all(any(t.startswith(p) for t in texts) for p in probes.prompts)


@pytest.mark.parametrize("refine", [True, False])
def test_refinement_switch(pool, nano, profanity_scorer, refine):
    table, gold = pool
    sample = table.iloc[:200].reset_index(drop=True)
    cfg = LoopConfig(
        candidates=16,
        train_batch=4,
        steps=4,
        probe_every=2,
        refine=refine,
        refine_every=2,
        probes={"probe_set_size": 16, "n_prompts": 3, "n_heldout": 8, "n_pairs": 0, "max_new_tokens": 6},
    )
    probes, mask = build_probes(sample, cfg.probes, seed=0, labels=gold[:200], scorer=profanity_scorer)
    before_texts = list(probes.safety_probe.texts)
    before_coef = probes.safety_probe.clf.coef_.copy()
    env = CurationEnv(sample, nano, cfg, probes=probes, train_mask=mask)
    env.reset(seed=0)
    infos = [env.step(np.full(16, 0.5))[4] for _ in range(4)]
    assert "probe" in infos[1] and "probe" in infos[3]  # probes measured either way
    if refine:
        assert probes.refinements == 2
        assert [("refined_on" in i) for i in infos] == [False, True, False, True]
        added = probes.safety_probe.texts[len(before_texts) :]
        assert len(added) == infos[1]["refined_on"] + infos[3]["refined_on"] > 0
        # the last texts added are the learner's own latest generations, labeled by the reward-side scorer
        gens = [g for g in probes.last_generations if g.strip()]
        assert added[-len(gens) :] == gens
        expected = (profanity_scorer(gens) >= 0.5).astype(int).tolist()
        assert probes.safety_probe.labels[-len(gens) :] == expected
        assert not np.array_equal(probes.safety_probe.clf.coef_, before_coef)
    else:
        assert probes.refinements == 0 and not any("refined_on" in i for i in infos)
        assert probes.safety_probe.texts == before_texts
        assert np.array_equal(probes.safety_probe.clf.coef_, before_coef)

