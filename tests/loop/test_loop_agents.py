"""PPO, REINFORCE and the bucket bandit: they learn the rewarded kind and never collapse.

Data-reward-only env (no learner), the synthetic pool, 96 steps of 32 candidates. Tolerances:

- learning: clean docs must get a mean keep probability at least 0.15 above toxic docs (measured at 128
  steps over seeds 0-3: PPO 0.47-0.68, REINFORCE 0.54-0.64, bandit 0.33-0.36);
- budget: the mean expected token rate of the last 32 steps within 0.12 of the budget. The budget term's
  own noise is small (an expected rate, no Bernoulli noise); what moves it is the policy chasing the
  Lagrange multiplier, measured at 0.43-0.57 around 0.5 under a +-2 x rate push, while without the
  budget terms the same push drives the rate to 0.86-0.90 or 0.10-0.16 in 64 steps with a 0.05 floor
  (the negative control below);
- floor: every probability inside [floor, 1 - floor] by construction, checked on the whole pool.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynacure.loop.config import LoopConfig
from dynacure.loop.env import CurationEnv
from dynacure.loop.trainer import LoopTrainer, make_agent

ALGS = ("ppo", "reinforce", "bandit")
STEPS = 96
TAIL = 32


class PushEnv(CurationEnv):
    """The env plus ``push * rate`` in the reward: > 0 rewards selecting everything, < 0 nothing."""

    push = 0.0

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        r = r + self.push * info["rate"]
        info["reward"] = r
        return obs, r, term, trunc, info


def _run(table, alg, seed=0, doc_reward=None, push=0.0, steps=STEPS, **kw):
    cfg = LoopConfig(algorithm=alg, candidates=32, train_batch=8, steps=steps, seed=seed, **kw)
    env = PushEnv(table, None, cfg, doc_reward=doc_reward)
    env.push = push
    agent = make_agent(env, cfg)
    kept: list[np.ndarray] = []
    trainer = LoopTrainer(env, agent, cfg)
    # keep the realised masks of the last steps: what the policy actually selected
    orig_step = env.step

    def step(action):
        out = orig_step(action)
        if env.t > steps - TAIL:
            kept.append(out[4]["kept_rows"])
        return out

    env.step = step  # type: ignore[method-assign]
    hist = trainer.run()
    if hasattr(agent, "policy"):
        p = agent.probabilities(env.features, env.summary())
    else:
        p = agent.probabilities(table)
    rate = float(np.mean([h["expected_rate"] for h in hist[-TAIL:]]))
    return p, rate, np.concatenate(kept), cfg


def _check_floor(p, cfg):
    eps = cfg.exploration_floor
    assert p.min() >= eps - 1e-9 and p.max() <= 1 - eps + 1e-9


@pytest.fixture(scope="module")
def pool400():
    from synthetic import synthetic_pool

    return synthetic_pool(400, toxic_share=0.3, seed=0)


@pytest.mark.parametrize("alg", ALGS)
def test_learns_to_prefer_the_rewarded_kind(pool400, alg):
    table, gold = pool400
    p, rate, kept, cfg = _run(table, alg, steps=128)
    margin = p[gold == 0].mean() - p[gold == 1].mean()
    assert margin > 0.15, f"{alg}: clean-toxic keep-probability margin {margin:.3f}"
    assert abs(rate - cfg.budget) < 0.12
    _check_floor(p, cfg)
    # the realised selections of the last steps follow: toxic docs are under-represented among the kept
    assert gold[kept].mean() < 0.3 * 0.8


@pytest.mark.parametrize("alg", ALGS)
def test_budget_holds_against_rewards_for_everything_and_nothing(pool400, alg):
    table, _ = pool400
    sources = table["source"].to_numpy()
    for push in (2.0, -2.0):
        # flat data reward: only the push says anything about what to select
        p, rate, kept, cfg = _run(table, alg, doc_reward=np.zeros(len(table)), push=push)
        assert abs(rate - cfg.budget) < 0.12, f"{alg} push {push}: rate {rate:.3f}"
        _check_floor(p, cfg)
        # a flat reward gives no kind a reason to win: every source keeps a fair share of the kept docs
        shares = [(sources[kept] == s).mean() for s in ("books", "forum", "web")]
        assert min(shares) > 0.2, f"{alg} push {push}: source shares {shares}"


@pytest.mark.parametrize("alg", ("ppo", "reinforce"))
def test_without_budget_terms_the_push_wins_but_the_floor_holds(pool400, alg):
    """Negative control: the budget penalty and multiplier are what hold the rate; the floor still bounds."""
    table, _ = pool400
    flat = np.zeros(len(table))
    off = dict(budget_penalty=0.0, lagrangian_lr=0.0, exploration_floor=0.05)
    p_all, rate_all, _, cfg = _run(table, alg, doc_reward=flat, push=2.0, steps=64, **off)
    p_none, rate_none, kept_none, _ = _run(table, alg, doc_reward=flat, push=-2.0, steps=64, **off)
    assert rate_all > 0.75 and rate_none < 0.25  # the push is strong enough to matter
    _check_floor(p_all, cfg)
    _check_floor(p_none, cfg)
    assert rate_all <= 1 - cfg.exploration_floor + 1e-9 and rate_none >= cfg.exploration_floor - 1e-9
    assert len(kept_none) > 0  # even the "select nothing" policy keeps exploring


@pytest.mark.parametrize("alg", ALGS)
def test_mildly_better_kind_does_not_take_over(pool400, alg):
    """Clean docs mildly better (0.05, a tenth of the composite reward's spread): toxic ones stay selected.

    The kind is the toxic label because every agent can see it (the bandit's buckets are safety x utility
    levels, not sources)."""
    table, gold = pool400
    p, rate, kept, cfg = _run(table, alg, doc_reward=0.05 * (gold == 0))
    toxic_share = float(gold[kept].mean())
    assert toxic_share > 0.1, f"{alg}: toxic share of the kept docs {toxic_share:.3f} (pool 0.3)"
    assert abs(rate - cfg.budget) < 0.12
    _check_floor(p, cfg)


@pytest.mark.parametrize("alg", ALGS)
def test_floor_keeps_the_losing_kind_alive_under_a_strong_reward(pool400, alg):
    table, gold = pool400
    # clean docs (70% of the pool) alone could fill a 0.2 budget: only the floor keeps toxic ones in play
    p, rate, kept, cfg = _run(table, alg, doc_reward=1.0 * (gold == 0), exploration_floor=0.05, budget=0.2)
    _check_floor(p, cfg)
    assert p[gold == 0].mean() > 1.5 * p[gold == 1].mean()  # it did learn the strong preference
    assert gold[kept].sum() > 0  # and still keeps exploring the other kind
    assert abs(rate - cfg.budget) < 0.12
