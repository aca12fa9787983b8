"""The re-adaptation measure on series with known answers, and a switch run on a small synthetic pool where
reward A prefers toxic documents and reward B drops them."""

import json

import numpy as np
import pandas as pd
import pytest

from dynacure.experiments.adaptivity import (
    AdaptConfig,
    expected_share,
    moving_average,
    plot_adaptivity,
    read_result,
    readaptation_steps,
    rewards,
    run_switch,
    static_filter,
)


def test_moving_average_is_trailing():
    assert moving_average([1, 2, 3, 4], 2).tolist() == [1.0, 1.5, 2.5, 3.5]


def test_readaptation_steps_on_a_linear_descent():
    # 50 steps at 0.2, then -0.01 per step for 20 steps down to 0.0, then flat: 90% of the way is 0.02,
    # first reached at the 18th step after the switch
    x = [0.2] * 50 + [0.2 - 0.01 * k for k in range(1, 21)] + [0.0] * 30
    m = readaptation_steps(x, switch_at=50, window=1, frac=0.9)
    assert m["pre"] == pytest.approx(0.2) and m["final"] == pytest.approx(0.0)
    assert m["target"] == pytest.approx(0.02)
    assert m["steps"] == 18


def test_readaptation_steps_upward_and_with_smoothing():
    x = [0.0] * 10 + [1.0] * 10
    assert readaptation_steps(x, 10, window=1)["steps"] == 1
    # trailing mean of 4: 0.25, 0.5, 0.75, 1.0 after the switch; 0.9 reached at the 4th step
    assert readaptation_steps(x, 10, window=4)["steps"] == 4


def test_static_series_never_readapts():
    m = readaptation_steps([0.3] * 40, 20, window=5)
    assert m["steps"] is None and m["change"] == 0.0
    with pytest.raises(ValueError):
        readaptation_steps([0.1] * 10, 0)


def test_expected_share_token_weighted():
    assert expected_share(np.array([1.0, 0.5]), np.array([10, 20]), np.array([1, 0])) == pytest.approx(0.5)


def _synthetic_pool(n=400, seed=0):
    """Toxic documents (a quarter) have high utility: reward A (utility only) prefers them, B (safety) not."""
    rng = np.random.default_rng(seed)
    toxic = rng.random(n) < 0.25
    return pd.DataFrame(
        {
            "id": [f"d{i}" for i in range(n)],
            "source": "s",
            "n_tokens": rng.integers(20, 60, n),
            "text": ["w " * 5] * n,
            "profanity__toxicity": np.where(toxic, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.1, n)),
            "toxicity_ngram__toxicity": np.where(toxic, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.1, n)),
            "quality__score": np.where(toxic, rng.uniform(0.85, 1.0, n), rng.uniform(0.3, 0.8, n)),
            "gold_toxic": toxic.astype(int),
        }
    )


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny policy nets: threads only add contention on a shared CPU
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("algorithm", "seed"), [("bandit", 1), ("ppo", 0)])
def test_policy_readapts_after_the_switch_and_static_filter_does_not(algorithm, seed, one_thread):
    pool = _synthetic_pool()
    cfg = AdaptConfig(
        n_docs=400,
        algorithms=[algorithm],
        steps_before=60,
        steps_after=120,
        budget=0.5,
        candidates=32,
        train_batch=8,
        use_learner=False,
        transfer=False,
        window=10,
        panel_size=200,
        seed=seed,
        # the PPO settings this test was calibrated with, independent of the loop's tuned defaults
        ppo={"lr": 1e-2, "gae_lambda": 0.9, "rollout_steps": 8},
    )
    a, b, _, _ = rewards(pool, cfg)
    panel = np.arange(200)
    run = run_switch(pool, cfg, algorithm, a, b, panel)
    series = np.asarray(run["series"]["panel_toxic_share"])
    assert len(series) == 180 and len(run["series"]["kept_toxic_share"]) == 180
    m = run["readaptation"]
    # under A the policy's expected selection is at least as toxic as the pool (25%), richer than it once
    # learned; under B it falls far below it within the run
    assert m["pre"] > 0.27 and m["final"] < 0.1 and m["final"] < m["pre"] - 0.15
    assert m["steps"] is not None and 1 <= m["steps"] <= 120
    st = static_filter(pool, cfg, a, b, panel)
    flat = st["series"]["panel_toxic_share"]
    assert len(set(flat)) == 1 and st["readaptation"]["steps"] is None
    assert st["toxic_share_if_refit_on_b"] < 0.05 < flat[0]


def test_result_file_and_plot_round_trip(tmp_path):
    res = {
        "format_version": 1,
        "switch": {"at_step": 3, "reward_a": "A", "reward_b": "B", "kind": "weights"},
        "config": {"window": 2, "frac": 0.9},
        "metric": "m",
        "policies": {
            "ppo": {
                "series": {"panel_toxic_share": [0.5, 0.5, 0.5, 0.3, 0.1, 0.1]},
                "readaptation": readaptation_steps([0.5, 0.5, 0.5, 0.3, 0.1, 0.1], 3, 2),
                "seconds_per_step": 0.1,
            }
        },
        "static_filter": {
            "series": {"panel_toxic_share": [0.4] * 6},
            "readaptation": readaptation_steps([0.4] * 6, 3, 2),
        },
    }
    (tmp_path / "adapt.json").write_text(json.dumps(res))
    png = plot_adaptivity(res, tmp_path / "adaptivity.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_result(tmp_path)["policies"]["ppo"]["readaptation"]["steps"] == 3
    (tmp_path / "adapt.json").write_text(json.dumps({**res, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version"):
        read_result(tmp_path)


def test_config_refuses_a_switch_that_changes_nothing():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="weights_before != weights_after"):
        AdaptConfig(
            weights_before={"safety": 0.5, "alignment": 0.3, "utility": 0.2},
            weights_after={"safety": 0.5, "alignment": 0.3, "utility": 0.2},
        )


def test_cli_adapt_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from dynacure.cli.main import app

    r = CliRunner().invoke(app, ["adapt", "--out", str(tmp_path / "o"), "--switch", "nonsense"])
    assert r.exit_code == 2 and "switch" in r.output
    r = CliRunner().invoke(app, ["adapt", "--out", str(tmp_path / "o"), "--weights-after", "0.5,0.5,0.5"])
    assert r.exit_code == 2 and "sum to 1" in r.output


def test_a_policy_learned_on_nano_transfers_to_the_pretrained_base(shared_data, tmp_path, one_thread):
    """``--transfer-to base``: the frozen nano policy and a policy learned on the base both run in the loop
    with the pre-trained base (a small nano base here) fine-tuned on what they select."""
    from dynacure.experiments.adaptivity import run_transfer
    from dynacure.learners.pretrain import BaseConfig, build_base, read_base

    # 24 packed steps of 16 x 64 tokens: held-out loss ~6.75 (12k tokens, 12 steps: ~7.0, not below 7)
    small = {"preset": "nano", "max_tokens": 24_000, "eval_every": 6, "eval_words": 1000,
             "tokenizer_docs": 300, "test_words": 1000}
    base = build_base(BaseConfig(**small), shared_data, root=tmp_path, progress=False)
    pool = _synthetic_pool()
    cfg = AdaptConfig(n_docs=400, budget=0.5, candidates=16, train_batch=8, transfer_steps=6, probe_every=3,
                      transfer_to="base", base=small, base_root=str(tmp_path), seed=0)
    _, b, _, _ = rewards(pool, cfg)
    rows = run_transfer(pool, cfg, b)["learners"]
    on_base = [r for r in rows if r["learner"] == "base"]
    assert sorted(r["policy"] for r in on_base) == sorted(
        ["learned on nano (6 steps), frozen", "learned on base from scratch", "random"])
    assert {r["learner_params"] for r in on_base} == {read_base(base)["n_parameters"]}
    for r in on_base:  # the base already models English: its held-out losses are finite and well below ln V
        assert 0 < r["heldout_clean_loss"] < 7 and r["steps"] == 6
