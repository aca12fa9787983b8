"""PPO actor-critic over per-candidate keep probabilities.

Each env step is one transition; its action is the Bernoulli keep mask over the B candidates. The ratio is
taken per candidate (factorised policy), clipped, and every candidate of a step shares the step's
advantage (GAE over the rollout, from the critic on the batch summary). Stabilisers the pilot showed are
needed: Adam, normalised advantages, a value baseline, an entropy bonus, the exploration floor in the
policy, and the budget penalty in the env's reward.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dynacure.loop.config import LoopConfig
from dynacure.loop.policy import NeuralAgent, SelectionPolicy


class PPOAgent(NeuralAgent):
    algorithm = "ppo"

    def __init__(self, feature_dim: int, summary_dim: int, config: LoopConfig) -> None:
        c = config.ppo
        super().__init__(
            feature_dim,
            summary_dim,
            config.hidden,
            config.exploration_floor,
            config.budget,
            c.lr,
            config.seed,
        )
        self.cfg = c
        self.buffer: list[dict[str, np.ndarray | float]] = []

    def observe(
        self,
        obs: dict[str, np.ndarray],
        info: dict[str, Any],
        reward: float,
        next_obs: dict[str, np.ndarray],
        done: bool,
    ) -> dict[str, float] | None:
        self.buffer.append(
            {
                "cand": obs["candidates"],
                "summary": obs["summary"],
                "mask": info["mask"].astype(np.float32),
                "reward": float(reward),
                "done": float(done),
            }
        )
        if len(self.buffer) >= self.cfg.rollout_steps or done:
            stats = self.update(next_obs, done)
            self.buffer = []
            return stats
        return None

    def update(self, next_obs: dict[str, np.ndarray], done: bool) -> dict[str, float]:
        c = self.cfg
        pol: SelectionPolicy = self.policy
        cand = torch.from_numpy(np.stack([b["cand"] for b in self.buffer]))
        summ = torch.from_numpy(np.stack([b["summary"] for b in self.buffer]))
        mask = torch.from_numpy(np.stack([b["mask"] for b in self.buffer]))
        rewards = np.array([b["reward"] for b in self.buffer], dtype=np.float64)
        dones = np.array([b["done"] for b in self.buffer], dtype=np.float64)
        with torch.no_grad():
            old_logp = pol.log_prob(pol.probs(cand, summ), mask)
            values = pol.value(cand, summ).numpy().astype(np.float64)
            nxt = (
                0.0
                if done
                else float(
                    pol.value(torch.from_numpy(next_obs["candidates"]), torch.from_numpy(next_obs["summary"]))
                )
            )
        adv = np.zeros_like(rewards)
        gae = 0.0
        for t in reversed(range(len(rewards))):
            v_next = nxt if t == len(rewards) - 1 else values[t + 1]
            nonterminal = 1.0 - dones[t]
            delta = rewards[t] + c.gamma * v_next * nonterminal - values[t]
            gae = delta + c.gamma * c.gae_lambda * nonterminal * gae
            adv[t] = gae
        returns = torch.from_numpy((adv + values).astype(np.float32))
        a = adv
        if c.normalize_advantages and len(a) > 1:
            a = (a - a.mean()) / (a.std() + 1e-8)
        adv_t = torch.from_numpy(a.astype(np.float32)).unsqueeze(-1)
        stats: dict[str, float] = {}
        for _ in range(c.epochs):
            p = pol.probs(cand, summ)
            logp = pol.log_prob(p, mask)
            ratio = torch.exp(logp - old_logp)
            surr = torch.minimum(ratio * adv_t, torch.clamp(ratio, 1 - c.clip, 1 + c.clip) * adv_t)
            policy_loss = -surr.mean()
            value_loss = ((pol.value(cand, summ) - returns) ** 2).mean()
            entropy = pol.entropy(p).mean()
            loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), c.max_grad_norm)
            self.opt.step()
            stats = {
                "policy_loss": policy_loss.item(),
                "value_loss": value_loss.item(),
                "entropy": entropy.item(),
                "mean_p": p.mean().item(),
            }
        self.updates += 1
        return stats

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        t, meta = super().state()
        meta["buffer"] = [
            {
                "cand": b["cand"].tolist(),
                "summary": b["summary"].tolist(),  # type: ignore[union-attr]
                "mask": b["mask"].tolist(),
                "reward": b["reward"],
                "done": b["done"],
            }  # type: ignore
            for b in self.buffer
        ]
        return t, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        self.buffer = [
            {
                "cand": np.asarray(b["cand"], dtype=np.float32),
                "summary": np.asarray(b["summary"], dtype=np.float32),
                "mask": np.asarray(b["mask"], dtype=np.float32),
                "reward": float(b["reward"]),
                "done": float(b["done"]),
            }
            for b in meta["buffer"]
        ]
