"""FLOP estimates on known sizes, the timers, and the learning/applying split of a selection."""

import math
import time

import numpy as np
import pytest

from dynacure.experiments import efficiency as eff
from dynacure.loop.config import LoopConfig


def test_train_and_forward_flops_formula():
    assert eff.train_flops(1_000_000, 1000) == 6e9
    assert eff.forward_flops(1_000_000, 1000) == 2e9


def test_gpt_params_known_dimensions():
    # embeddings 100*8 + 10*8, per layer (4 + 2*4) * 8^2 = 768, two layers
    assert eff.gpt_params(vocab_size=100, n_ctx=10, d_model=8, n_layer=2) == 800 + 80 + 2 * 768


def test_gpt_params_matches_a_real_tiny_gpt():
    from dynacure.learners.tiny_gpt import TinyGPT

    learner = TinyGPT.create(["the cat sat on the mat with a hat"] * 40, preset="nano", seed=0)
    c = learner.config
    est = eff.gpt_params(learner.tokenizer.vocab_size, c.n_ctx, c.d_model, c.n_layer, c.mlp_ratio)
    # biases and layer norms are left out of the estimate: within 3% of the real count
    assert est == pytest.approx(learner.num_parameters(), rel=0.03)


def test_loop_flops_learner_part_is_6_n_tokens():
    cfg = LoopConfig(
        algorithm="ppo", steps=10, learner_steps=1, train_batch=4, candidates=8, learner_preset="nano"
    )
    n_tokens = np.full(50, 100.0)  # capped at the nano context of 64
    parts = eff.loop_flops(cfg, n_tokens)
    assert parts["learner_training"] == 6 * eff.preset_params("nano") * 10 * 4 * 64
    assert parts["probes"] > 0 and parts["policy"] > 0
    assert parts["total"] == pytest.approx(parts["learner_training"] + parts["probes"] + parts["policy"])
    no_learner = eff.loop_flops(cfg, n_tokens, use_learner=False)
    assert no_learner["learner_training"] == 0 and no_learner["probes"] == 0
    applied_only = eff.loop_flops(cfg, n_tokens, n_docs_applied=1000, learns=False)
    assert applied_only["total"] == eff.forward_flops(eff.policy_params(cfg.hidden), 1000)


def test_model_work_flops_known_answer():
    cost = {"params": 1000.0, "forward_positions": 74.0, "train_positions": 60.0}
    assert eff.model_work_flops(cost) == 2 * 1000 * 74 + 6 * 1000 * 60
    assert math.isnan(eff.model_work_flops(None))


def test_curation_flops_nan_for_rules_and_finite_for_loop():
    from dynacure.pipeline.strategies import get_selector

    nt = np.full(20, 30.0)
    assert math.isnan(eff.curation_flops("random", get_selector("random"), nt))
    bandit = get_selector("bandit", steps=4, candidates=8, train_batch=4, sample_size=20)
    assert eff.curation_flops("bandit", bandit, nt) > 0
    color = get_selector("color")
    assert math.isnan(eff.curation_flops("color", color, nt))  # nothing run yet
    color.cost = {"params": 10.0, "forward_positions": 5.0, "train_positions": 1.0}
    assert eff.curation_flops("color", color, nt) == 2 * 10 * 5 + 6 * 10 * 1


class _Slow:
    def learn(self, x):
        time.sleep(0.05)
        return x

    def select(self):
        out = self.learn(1)
        time.sleep(0.02)
        return out


def test_time_method_splits_learning_from_applying():
    s = _Slow()
    timer = eff.time_method(s, "learn")
    t0 = time.perf_counter()
    assert s.select() == 1
    total = time.perf_counter() - t0
    assert timer.calls == 1 and 0.05 <= timer.seconds < total
    split = eff.split_selection_time("ppo", total, timer)
    assert split["time_policy_learning_s"] == timer.seconds
    assert split["time_policy_apply_s"] == pytest.approx(total - timer.seconds)
    assert eff.split_selection_time("heuristic", 1.5, eff.Timer()) == {
        "time_policy_learning_s": 0.0,
        "time_policy_apply_s": 1.5,
    }
    assert math.isnan(eff.split_selection_time("color", 1.0, eff.Timer())["time_policy_learning_s"])
    assert eff.time_method(s, "missing").seconds == 0.0  # no such method: nothing wrapped


def test_results_table_carries_the_efficiency_columns(tmp_path):
    import json

    from dynacure.experiments.results import EFFICIENCY_COLUMNS, RESULTS_FORMAT_VERSION, collect_results

    cell = tmp_path / "cells" / "c1"
    cell.mkdir(parents=True)
    effd = {c: float(i) for i, c in enumerate(EFFICIENCY_COLUMNS)}
    (cell / "metrics.json").write_text(
        json.dumps(
            {
                "format_version": RESULTS_FORMAT_VERSION,
                "cell": {
                    "strategy": "s",
                    "strategy_name": "random",
                    "seed": 0,
                    "budget": 0.5,
                    "weights_name": "w",
                },
                "suites": {"toxicity": {"metrics": {"p": {"value": 0.1, "low": 0.0, "high": 0.2, "n": 3}}}},
                "efficiency": effd,
            }
        )
    )
    (cell / "run.json").write_text("{}")
    (cell / "DONE").write_text("")
    df = collect_results(tmp_path)
    for c in ("time_policy_learning_s", "time_policy_apply_s", "curation_flops", "train_flops"):
        assert df[c].iloc[0] == effd[c]
