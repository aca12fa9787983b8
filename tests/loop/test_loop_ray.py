"""Ray Data application of a saved policy: the same probabilities and decisions as the local one."""

from __future__ import annotations

import numpy as np
import pytest

from dynacure.loop.config import LoopConfig
from dynacure.loop.env import CurationEnv
from dynacure.loop.trainer import LoopTrainer, make_agent
from dynacure.selectors.base import SelectionContext

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'dynacure[ray]')")


def _saved_policy(table, alg, path):
    cfg = LoopConfig(algorithm=alg, candidates=16, train_batch=8, steps=24, seed=4)
    env = CurationEnv(table, None, cfg)
    agent = make_agent(env, cfg)
    LoopTrainer(env, agent, cfg).run()
    return agent.save_policy(path, env.encoder, env.summary())


def test_ray_apply_equals_local_apply(pool, tmp_path):
    from dynacure.loop.policy import apply_policy_batch
    from dynacure.loop.selectors import BanditSelector, PPOSelector

    table, _ = pool  # 600 rows
    ctx = SelectionContext(budget=0.4, seed=0)
    for alg, cls in (("ppo", PPOSelector), ("bandit", BanditSelector)):
        path = _saved_policy(table, alg, tmp_path / alg)
        # batches of 128 rows: the bandit scales per batch, so this also checks the batch boundaries
        parts = [apply_policy_batch(path, table.iloc[i : i + 128]) for i in range(0, 600, 128)]
        local = np.concatenate(parts)
        assert local.std() > 0
        sel_local = cls(policy_path=str(path), apply_batch=128).select(table, ctx)
        sel_ray = cls(policy_path=str(path), apply_batch=128, engine="ray").select(table, ctx)
        assert np.array_equal(sel_local.probability, local)
        assert np.array_equal(sel_ray.probability, local), alg  # bit for bit, in input order
        assert sel_local.manifest().equals(sel_ray.manifest()), alg
        assert 0 < sel_local.keep.sum() < len(table)


def test_ray_engine_with_a_just_learned_policy(pool):
    from dynacure.loop.selectors import ReinforceSelector

    table, _ = pool
    ctx = SelectionContext(budget=0.5, seed=1)
    kw = dict(use_learner=False, steps=16, candidates=16, train_batch=8, sample_size=300, apply_batch=256)
    local = ReinforceSelector(**kw).select(table, ctx)
    via_ray = ReinforceSelector(engine="ray", **kw).select(table, ctx)
    assert local.manifest().equals(via_ray.manifest())


def test_ray_apply_errors(tmp_path, pool):
    from dynacure.loop.ray_apply import policy_probabilities_ray
    from dynacure.loop.selectors import PPOSelector

    table, _ = pool
    with pytest.raises(FileNotFoundError, match="policy.json"):
        policy_probabilities_ray(tmp_path, table)
    with pytest.raises(ValueError, match="engine must be"):
        PPOSelector(engine="spark")
