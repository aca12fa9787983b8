"""REINFORCE with a moving-average baseline: the ablation of PPO (no critic, no clipping, one update a step).

With ``credit="candidate"`` (default) each candidate's log-probability is weighed by its own advantage, as
DVRL does per sample: its own data-reward and budget term less its expected value under the policy
(``p_i * gain_i``, env docstring item 4), plus the step's shared rest (delayed model feedback) less its
moving average. ``credit="step"`` weighs every candidate by the step reward less its moving average.

With ``use_baseline=False``, ``normalize_advantages=False``, ``optimizer="sgd"`` and the env's budget
penalty, multiplier and floor at zero it is the naive per-document REINFORCE of the pilot, which
collapses; the tests use that setting as the negative control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dynacure.loop.config import LoopConfig
from dynacure.loop.policy import NeuralAgent


class ReinforceAgent(NeuralAgent):
    algorithm = "reinforce"

    def __init__(self, feature_dim: int, summary_dim: int, config: LoopConfig) -> None:
        c = config.reinforce
        super().__init__(
            feature_dim,
            summary_dim,
            config.hidden,
            config.exploration_floor,
            config.budget,
            c.lr,
            config.seed,
            optimizer=c.optimizer,
        )
        self.cfg = c
        self.credit = config.credit
        self.baseline: float | None = None
        self.var = 1.0

    def observe(
        self,
        obs: dict[str, np.ndarray],
        info: dict[str, Any],
        reward: float,
        next_obs: dict[str, np.ndarray],
        done: bool,
    ) -> dict[str, float]:
        c = self.cfg
        mask_np = np.asarray(info["mask"], dtype=bool)
        if self.credit == "candidate":
            gains = np.asarray(info["candidate_gains"], dtype=np.float64)
            own = np.where(mask_np, gains, 0.0)
            if c.use_baseline:
                own = own - np.asarray(info["probabilities"], dtype=np.float64) * gains
            # the part of the reward no candidate's own term credits (delayed feedback, wrapper terms)
            tracked = float(reward) - float(info["data_reward"]) + float(info["penalty"])
        else:
            own = np.zeros(len(mask_np))
            tracked = float(reward)
        shared = tracked
        if c.use_baseline:
            if self.baseline is None:
                self.baseline = tracked
            shared = tracked - self.baseline
        adv = own + shared
        if c.normalize_advantages:
            # running scale of the advantage: a per-step update has no batch to normalise over
            self.var = c.baseline_decay * self.var + (1 - c.baseline_decay) * float(np.mean(adv * adv))
            adv = adv / (np.sqrt(self.var) + 1e-8)
        cand = torch.from_numpy(obs["candidates"])
        summ = torch.from_numpy(obs["summary"])
        mask = torch.from_numpy(mask_np.astype(np.float32))
        p = self.policy.probs(cand, summ)
        logp = self.policy.log_prob(p, mask)
        entropy = self.policy.entropy(p).mean()
        loss = -(torch.from_numpy(adv.astype(np.float32)) * logp).sum() - c.entropy_coef * entropy
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if c.use_baseline:
            assert self.baseline is not None
            self.baseline = c.baseline_decay * self.baseline + (1 - c.baseline_decay) * tracked
        self.updates += 1
        return {"advantage": float(np.mean(adv)), "entropy": entropy.item(), "mean_p": p.mean().item()}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        t, meta = super().state()
        meta.update(baseline=self.baseline, var=self.var)
        return t, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        self.baseline, self.var = meta["baseline"], float(meta["var"])
