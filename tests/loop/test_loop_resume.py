"""Checkpoints resume exactly; saved policies load back to the same probabilities; versions are checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dynacure.loop.config import LoopConfig
from dynacure.loop.env import CurationEnv
from dynacure.loop.policy import load_policy
from dynacure.loop.trainer import LoopTrainer, make_agent

# the crash falls between checkpoints 12 and 16; PPO runs 8-step rollouts here (the default is 2) so the
# checkpoint at 12 holds a half-filled rollout buffer
N, CRASH_AT, EVERY = 24, 14, 4


class Crash(RuntimeError):
    pass


def _build(table, cfg, learner=None):
    env = CurationEnv(table, learner, cfg)
    return env, make_agent(env, cfg)


def _agent_state(agent):
    tensors, meta = agent.state()
    return tensors, json.loads(json.dumps(meta))


def _crash_at(step):
    def progress(done, total):
        if done == step:
            raise Crash(f"killed at step {done}")

    return progress


@pytest.mark.parametrize("alg", ("ppo", "ppo-critic", "ppo-step", "reinforce", "bandit"))
def test_resume_after_crash_equals_uninterrupted_run(pool, tmp_path, alg):
    table, _ = pool
    # ppo-critic: the learned candidate baseline (its own tensors); ppo-step: the shared-advantage credit
    extra = {
        "ppo": {"ppo": {"rollout_steps": 8}},
        "ppo-critic": {"ppo": {"rollout_steps": 8, "candidate_baseline": "critic"}},
        "ppo-step": {"ppo": {"rollout_steps": 8}, "credit": "step"},
    }.get(alg, {})
    alg = alg.split("-")[0]
    cfg = LoopConfig(algorithm=alg, candidates=16, train_batch=8, steps=N, seed=5, **extra)

    env, agent = _build(table, cfg)
    ref_hist = LoopTrainer(env, agent, cfg).run()
    ref_tensors, ref_meta = _agent_state(agent)

    ckpt = tmp_path / "ckpt"
    env1, agent1 = _build(table, cfg)
    with pytest.raises(Crash):
        LoopTrainer(env1, agent1, cfg, ckpt, EVERY, progress=_crash_at(CRASH_AT)).run()
    assert json.loads((ckpt / "latest.json").read_text())["step"] == 12
    del env1, agent1  # the crashed process's objects are gone
    torch.manual_seed(1234)  # a fresh process has other global RNG states: the checkpoint must restore them
    np.random.seed(4321)

    env2, agent2 = _build(table, cfg)
    trainer = LoopTrainer(env2, agent2, cfg, ckpt, EVERY)
    hist = trainer.run()
    assert hist == ref_hist
    tensors, meta = _agent_state(agent2)
    assert tensors.keys() == ref_tensors.keys()
    for k in tensors:
        assert torch.equal(tensors[k], ref_tensors[k]), k
    assert meta == ref_meta
    if alg != "bandit":
        for a, b in zip(agent.policy.parameters(), agent2.policy.parameters(), strict=True):
            assert torch.equal(a, b)
    assert np.array_equal(env.rows, env2.rows) and env.lam == env2.lam


def test_resume_with_learner_restores_the_learner(pool, nano, tmp_path):
    from dynacure.learners.tiny_gpt import TinyGPT

    table, _ = pool
    sample = table.iloc[:200].reset_index(drop=True)
    cfg = LoopConfig(algorithm="ppo", candidates=16, train_batch=4, steps=6, seed=1)
    texts = list(table["text"][:200])

    env, agent = _build(sample, cfg, TinyGPT.create(texts, preset="nano", seed=0))
    ref_hist = LoopTrainer(env, agent, cfg).run()

    ckpt = tmp_path / "ckpt"
    env1, agent1 = _build(sample, cfg, TinyGPT.create(texts, preset="nano", seed=0))
    with pytest.raises(Crash):
        LoopTrainer(env1, agent1, cfg, ckpt, 2, progress=_crash_at(5)).run()
    del env1, agent1
    # the resumed learner starts from another init: only the checkpoint can make it equal
    env2, agent2 = _build(sample, cfg, TinyGPT.create(texts, preset="nano", seed=99))
    hist = LoopTrainer(env2, agent2, cfg, ckpt, 2).run()
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in ref_hist], rel=1e-6)
    assert [h["reward"] for h in hist] == [h["reward"] for h in ref_hist]
    sd_ref, sd = env.learner._module().state_dict(), env2.learner._module().state_dict()
    for k in sd_ref:
        assert torch.allclose(sd_ref[k], sd[k], atol=1e-6), k
    for a, b in zip(agent.policy.parameters(), agent2.policy.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_checkpoint_of_another_algorithm_or_version_is_refused(pool, tmp_path):
    table, _ = pool
    cfg = LoopConfig(algorithm="ppo", candidates=16, train_batch=8, steps=4, seed=0)
    ckpt = tmp_path / "ckpt"
    env, agent = _build(table, cfg)
    LoopTrainer(env, agent, cfg, ckpt, 2).run()
    other = cfg.model_copy(update={"algorithm": "reinforce"})
    env_r, agent_r = _build(table, other)
    with pytest.raises(ValueError, match="algorithm 'ppo'"):
        LoopTrainer(env_r, agent_r, other, ckpt, 2).run()
    latest = ckpt / "latest.json"
    latest.write_text(json.dumps({**json.loads(latest.read_text()), "format_version": 99}))
    with pytest.raises(ValueError, match=r"latest\.json.*format_version 99"):
        LoopTrainer(*_build(table, cfg), cfg, ckpt, 2).run()


@pytest.mark.parametrize("alg", ("ppo", "reinforce", "bandit"))
def test_policy_save_load_round_trip(pool, tmp_path, alg):
    table, _ = pool
    cfg = LoopConfig(algorithm=alg, candidates=16, train_batch=8, steps=16, seed=2)
    env, agent = _build(table, cfg)
    LoopTrainer(env, agent, cfg).run()
    out = agent.save_policy(tmp_path / "pol", env.encoder, env.summary())
    loaded = load_policy(out)
    if alg == "bandit":
        before = agent.probabilities(table)
    else:
        before = agent.probabilities(env.encoder.transform(table), env.summary())
        assert (out / "policy.safetensors").exists()
    after = loaded.probabilities(table)
    assert np.array_equal(before, after)
    assert before.std() > 0  # a trained policy, not a constant
    header = json.loads((out / "policy.json").read_text())
    assert header["format_version"] == 1 and header["algorithm"] == alg


def test_policy_of_another_format_version_fails_naming_the_file(pool, tmp_path):
    table, _ = pool
    cfg = LoopConfig(algorithm="ppo", candidates=16, train_batch=8, steps=2, seed=0)
    env, agent = _build(table, cfg)
    out = agent.save_policy(tmp_path / "pol", env.encoder, env.summary())
    header_path = out / "policy.json"
    header_path.write_text(json.dumps({**json.loads(header_path.read_text()), "format_version": 2}))
    with pytest.raises(ValueError, match=rf"{header_path}.*format_version 2 is not supported"):
        load_policy(out)
    header_path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{header_path}: not valid JSON"):
        load_policy(out)
    with pytest.raises(FileNotFoundError, match="policy.json"):
        load_policy(tmp_path / "nowhere")
