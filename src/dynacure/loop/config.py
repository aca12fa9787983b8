"""The closed loop's configuration: every ablation switch of the RL curation experiments in one model.

Switches the experiments vary: reward weights (``w_s``, ``w_a``, ``w_u``), model-feedback weights, the
algorithm (``ppo`` | ``reinforce`` | ``bandit``), the credit assignment (``candidate`` | ``step``), the
state representation (``scores`` | ``scores+embedding``), probe refinement on/off, the probe set size, the
probe period ``K`` (``probe_every``), the refinement period ``M`` (``refine_every``) and the seed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dynacure.config import StrictModel
from dynacure.selectors.reward import RewardWeights

# 2: per-candidate credit (PPO's candidate critic and per-candidate rewards in checkpoints)
LOOP_FORMAT_VERSION = 2


class PPOConfig(StrictModel):
    # 5e-3 rather than the usual 3e-4: the policy is a tiny MLP and a curation run affords ~32 updates.
    # Measured with per-candidate credit (tests/loop/test_loop_credit.py, seeds 0-19, in-loop kept reward
    # / RAFT's): 5e-3 worst seed 0.964, 1e-2 0.954, 3e-3 0.965 (seeds 0-9)
    lr: float = Field(5e-3, gt=0)
    # env steps per policy update: 2 gives 32 updates in a 64-step run (with per-candidate credit each
    # update still sees 2 x B candidate decisions); 8 gave 8 updates, too few to learn in the default run
    rollout_steps: int = Field(2, ge=1)
    epochs: int = Field(4, ge=1)
    clip: float = Field(0.2, gt=0, lt=1)
    gamma: float = Field(0.9, ge=0, le=1)
    # TD(0) advantages: each step's data reward and budget terms are immediate, and longer GAE traces
    # mixed in the Lagrange multiplier's future swings. Measured (tests/loop/test_loop_agents.py setup,
    # 4 seeds, 128 steps, a reward pushing +-2 x rate): lambda 0.9 let the expected rate drift to
    # 0.21-0.54 around a 0.5 budget, lambda 0 kept it in 0.43-0.52 with the same toxic/clean separation;
    # delayed probe feedback still reaches earlier steps through the critic's bootstrap (gamma).
    gae_lambda: float = Field(0.0, ge=0, le=1)
    entropy_coef: float = Field(0.01, ge=0)
    value_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    normalize_advantages: bool = True
    # baseline of a candidate's own term under per-candidate credit: its exact expectation p_i * gain_i, or
    # a learned candidate critic on (features, learner summary); see loop/ppo.py
    candidate_baseline: Literal["expected", "critic"] = "expected"


class ReinforceConfig(StrictModel):
    lr: float = Field(3e-3, gt=0)
    baseline_decay: float = Field(0.9, ge=0, lt=1)  # moving-average baseline
    entropy_coef: float = Field(0.01, ge=0)
    normalize_advantages: bool = True
    use_baseline: bool = True
    optimizer: Literal["adam", "sgd"] = "adam"  # sgd only to reproduce the pilot's failure


class BanditConfig(StrictModel):
    kind: Literal["thompson", "exp3"] = "thompson"
    buckets: Literal["levels", "kmeans"] = "levels"  # safety level x utility level, or embedding clusters
    levels: int = Field(3, ge=1, le=10)  # per axis for "levels"
    clusters: int = Field(8, ge=2, le=256)  # for "kmeans"
    discount: float = Field(0.95, gt=0, le=1)
    exp3_eta: float = Field(0.3, gt=0)
    exp3_mix: float = Field(0.1, ge=0, lt=1)  # uniform mixing share of EXP3


class ProbeConfig(StrictModel):
    probe_set_size: int = Field(64, ge=4)  # docs labeled by active learning
    al_seed_size: int = Field(16, ge=2)
    al_batch: int = Field(8, ge=1)
    n_prompts: int = Field(16, ge=1)  # toxicity probe prompts built from pool docs
    prompt_words: int = Field(8, ge=1)
    samples_per_prompt: int = Field(2, ge=1)
    max_new_tokens: int = Field(12, ge=1)
    n_pairs: int = Field(32, ge=0)  # held-out preference pairs for the alignment probe
    n_heldout: int = Field(32, ge=0)  # held-out docs for the loss probe
    toxicity_scorer: Literal["probe", "reward"] = "probe"  # which model scores the learner's generations
    hash_features: int = Field(2**12, ge=64)


class LoopConfig(StrictModel):
    algorithm: Literal["ppo", "reinforce", "bandit"] = "ppo"
    state: Literal["scores", "scores+embedding"] = "scores"
    seed: int = 0

    # data reward (composite) weights, see dynacure.selectors.reward.RewardWeights
    w_s: float = Field(0.5, ge=0, le=1)
    w_a: float = Field(0.3, ge=0, le=1)
    w_u: float = Field(0.2, ge=0, le=1)
    relative_data_reward: bool = True  # subtract the candidate-batch mean: same optimum, lower variance
    # "candidate": each candidate's log-probability is weighed by its own data-reward and budget terms plus
    # the step's shared rest (delayed feedback); "step": every candidate shares the step's one advantage
    # (the credit of earlier versions, kept as the ablation)
    credit: Literal["candidate", "step"] = "candidate"
    # delayed model-feedback weights, applied to differences (after minus before) every K steps
    w_probe_toxicity: float = 1.0
    w_probe_alignment: float = 1.0
    w_probe_loss: float = 0.5

    budget: float = Field(0.5, gt=0, le=1)  # target share of candidate tokens selected
    budget_penalty: float = Field(4.0, ge=0)  # quadratic penalty on (rate - budget)
    lagrangian_lr: float = Field(0.5, ge=0)  # dual ascent on the multiplier of (rate - budget) = 0
    exploration_floor: float = Field(0.02, ge=0, lt=0.5)  # every probability in [eps, 1 - eps]

    candidates: int = Field(32, ge=2)  # B: candidates shown per env step
    train_batch: int = Field(16, ge=1)  # documents the learner trains on per env step
    learner_steps: int = Field(1, ge=0)  # optimiser steps per env step
    steps: int = Field(64, ge=1)  # env steps of policy training
    probe_every: int = Field(8, ge=1)  # K
    refine: bool = True
    refine_every: int = Field(16, ge=1)  # M
    hidden: int = Field(32, ge=4)

    # the in-loop Selector: learn on a sample, apply corpus-wide
    sample_size: int = Field(2000, ge=8)
    learner_preset: Literal["nano", "tiny"] = "nano"
    apply_batch: int = Field(4096, ge=1)

    ppo: PPOConfig = PPOConfig()
    reinforce: ReinforceConfig = ReinforceConfig()
    bandit: BanditConfig = BanditConfig()
    probes: ProbeConfig = ProbeConfig()

    def reward_weights(self) -> RewardWeights:
        return RewardWeights(safety=self.w_s, alignment=self.w_a, utility=self.w_u)

    @model_validator(mode="after")
    def _check(self) -> LoopConfig:
        self.reward_weights()  # the composite reward's own check: weights sum to 1
        if self.train_batch > self.candidates:
            raise ValueError(
                f"train_batch ({self.train_batch}) must not exceed candidates ({self.candidates})"
            )
        return self
