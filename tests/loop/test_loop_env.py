"""CurationEnv: step semantics with known answers, budget penalty, probes as differences, gym contract."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dynacure.loop.config import LoopConfig
from dynacure.loop.env import SUMMARY_FIELDS, CurationEnv
from dynacure.loop.probes import build_probes
from dynacure.selectors.reward import composite_reward


def test_step_known_answer(pool):
    table, _ = pool
    cfg = LoopConfig(
        candidates=20, train_batch=10, exploration_floor=0.0, budget_penalty=2.0, lagrangian_lr=0.0, steps=5
    )
    env = CurationEnv(table, None, cfg)
    obs, info = env.reset(seed=3)
    assert obs["candidates"].shape == (20, env.encoder.dim)
    assert obs["summary"].shape == (len(SUMMARY_FIELDS),)
    rows = info["rows"]
    r = composite_reward(table, cfg.reward_weights())[rows]
    top = np.argsort(-r)[:10]
    action = np.zeros(20)
    action[top] = 1.0
    _, reward, term, trunc, sinfo = env.step(action)
    assert sinfo["mask"].sum() == 10 and set(np.flatnonzero(sinfo["mask"])) == set(top)
    nt = table["n_tokens"].to_numpy()[rows]
    rate = nt[top].sum() / nt.sum()
    assert sinfo["rate"] == pytest.approx(rate)
    assert sinfo["data_reward"] == pytest.approx(r[top].mean() - r.mean())
    assert sinfo["data_reward"] > 0
    assert sinfo["penalty"] == pytest.approx(2.0 * (rate - 0.5) ** 2)
    assert reward == pytest.approx(sinfo["data_reward"] - sinfo["penalty"])
    assert not term and not trunc
    for _ in range(4):
        *_, trunc, _ = env.step(action)
    assert trunc  # steps=5


def test_floor_clips_and_bad_action(pool):
    table, _ = pool
    env = CurationEnv(table, None, LoopConfig(candidates=200, train_batch=10, exploration_floor=0.1, steps=3))
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(200))  # all-zero wish: the floor still keeps ~10%
    assert 5 <= info["mask"].sum() <= 40
    assert info["expected_rate"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="one probability per candidate"):
        env.step(np.zeros(3))


def test_lagrange_multiplier_pushes_towards_budget(pool):
    table, _ = pool
    env = CurationEnv(table, None, LoopConfig(candidates=20, train_batch=10, lagrangian_lr=0.5, steps=10))
    env.reset(seed=0)
    for _ in range(4):
        env.step(np.full(20, 0.9))
    assert env.lam > 0  # over budget: selecting costs more
    _, _, _, _, info = env.step(np.full(20, 0.9))
    assert info["penalty"] > 0


def test_gym_contract(pool):
    table, _ = pool
    check_env(CurationEnv(table, None, LoopConfig(steps=10)), skip_render_check=True)


def test_learner_probes_differences_and_refinement(pool, nano, profanity_scorer, monkeypatch):
    table, gold = pool
    sample = table.iloc[:200].reset_index(drop=True)
    import dynacure.signals.toxicity as tox_mod

    def _no_judge(*a, **k):
        raise AssertionError("the evaluation judge must never be used in the loop")

    monkeypatch.setattr(tox_mod, "load_judge", _no_judge, raising=False)
    cfg = LoopConfig(
        candidates=16,
        train_batch=8,
        steps=4,
        probe_every=2,
        refine=True,
        refine_every=2,
        probes={"probe_set_size": 16, "n_prompts": 4, "n_heldout": 8, "n_pairs": 4, "max_new_tokens": 6},
    )
    pairs = sample.iloc[:4].assign(
        prefix="Human: hi\n\nAssistant:", chosen_reply=" hello friend", rejected_reply=" shut up idiot"
    )
    probes, train_mask = build_probes(
        sample, cfg.probes, seed=0, labels=gold[:200], pairs=pairs, scorer=profanity_scorer
    )
    assert (~train_mask).sum() >= 8  # held-out docs are not trained on
    env = CurationEnv(sample, nano, cfg, probes=probes, train_mask=train_mask)
    env.reset(seed=0)
    before = env.probe_before
    n_probe_texts = len(probes.safety_probe.texts)
    infos = [env.step(np.full(16, 0.5))[4] for _ in range(4)]
    assert "loss" in infos[0] and np.isfinite(infos[0]["loss"])
    assert infos[0]["feedback"] == 0.0 and "probe" in infos[1]
    d = infos[1]["probe"]["delta"]
    assert d[2] == pytest.approx(infos[1]["probe"]["heldout_loss"] - before.heldout_loss)
    assert d[2] < 0  # two steps of training lower the held-out loss
    expected = -cfg.w_probe_toxicity * d[0] + cfg.w_probe_alignment * d[1] - cfg.w_probe_loss * d[2]
    assert infos[1]["feedback"] == pytest.approx(expected)
    assert infos[1]["reward"] == pytest.approx(infos[1]["data_reward"] - infos[1]["penalty"] + expected)
    assert infos[1]["refined_on"] > 0 and len(probes.safety_probe.texts) > n_probe_texts
    assert 0.0 <= infos[3]["probe"]["alignment"] <= 1.0
