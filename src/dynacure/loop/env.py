"""``CurationEnv``: the closed loop as a gymnasium environment.

State: the features of a batch of B candidates drawn from the pool (``FeatureEncoder``) plus a summary of
the learner (recent training loss, last probe results, share of the run used, the budget multiplier and
the last selection-rate error). Action: a keep probability per candidate (``Box[0, 1]^B``). A step:

1. samples one Bernoulli per candidate from the probabilities (clipped to the exploration floor) with the
   env's own RNG; the mask is returned in ``info["mask"]`` so a policy can score its log-probability;
2. trims (random subset) or pads (resampling the kept ones) the kept documents to ``train_batch`` and
   trains the learner ``learner_steps`` optimiser steps on them;
3. reward = data reward - budget penalty (+ every K steps the model feedback):
   - data reward: mean composite reward of the kept documents, minus the candidate-batch mean when
     ``relative_data_reward`` (an action-independent control variate: same optimum, lower variance);
   - budget penalty: ``budget_penalty * (rate - budget)^2 + lambda * (rate - budget)`` on the realised
     token rate, with the multiplier ``lambda`` updated by dual ascent on the expected rate;
   - model feedback: ``-w_tox * d(toxicity) + w_align * d(alignment acc) - w_loss * d(held-out loss)``,
     each a difference after minus before (METHODS.md), from ``ProbeSet.measure``;
   - every M steps with ``refine`` on, the safety probe is re-trained on the learner's generations.
4. per-candidate credit (what PPO and REINFORCE learn from with ``credit="candidate"``): the data reward
   is a mean over the kept documents, so it splits into one term per candidate, ``(r_i - mean(r)) / K``
   (``K`` the expected number kept); the budget terms are linear in each mask at the expected rate, so a
   kept candidate also pays ``price * n_i / N`` with ``price = lambda + 2 * budget_penalty *
   (expected_rate - budget)`` (exact for the multiplier, first order for the quadratic). ``info`` carries
   that term for every candidate (``candidate_gains``: what it earns if kept), the realised one
   (``candidate_rewards = mask * candidate_gains``) and the clipped probabilities, so an agent can
   subtract each candidate's expected term ``p_i * gain_i`` as its baseline. What no candidate's action
   moves (the budget's constant part, the batch
   mean) is credited to no one, and the rate's variance term ``-budget_penalty * (rate - expected)^2`` is
   left out of the learning signal; the rest of the step's reward, ``reward - data_reward + penalty`` (the
   delayed model feedback, anything a wrapper adds), is shared by all candidates of the step.
   ``info["raft_reward"]`` is the mean reward of the batch's top candidates by reward at the same token
   budget (RAFT on that batch), the reference a learned policy is measured against.

``learner=None`` runs the data reward only (no training, no probes): the cheap pre-pass and the mode the
policy-dynamics tests use.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from dynacure.learners.base import Learner
from dynacure.loop.config import LoopConfig
from dynacure.loop.features import FeatureEncoder, token_counts
from dynacure.loop.probes import ProbeResult, ProbeSet

log = logging.getLogger(__name__)

SUMMARY_FIELDS = (
    "recent_loss",
    "probe_toxicity",
    "probe_alignment",
    "probe_heldout_loss",
    "run_used",
    "budget_multiplier",
    "rate_error",
)
ENV_STATE_VERSION = 1


def pool_rewards(pool: pd.DataFrame, config: LoopConfig) -> np.ndarray:
    """Per-document composite data reward (``dynacure.selectors.reward.composite_reward``)."""
    from dynacure.selectors.reward import composite_reward

    return composite_reward(pool, config.reward_weights())


class CurationEnv(gym.Env):
    """The curation MDP (see module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        pool: pd.DataFrame,
        learner: Learner | None,
        config: LoopConfig,
        *,
        encoder: FeatureEncoder | None = None,
        probes: ProbeSet | None = None,
        doc_reward: np.ndarray | None = None,
        train_mask: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.pool = pool.reset_index(drop=True)
        self.learner = learner
        self.probes = probes if learner is not None else None
        self.encoder = encoder or FeatureEncoder.fit(self.pool, config.state)
        self.features = self.encoder.transform(self.pool)
        self.n_tokens = np.maximum(token_counts(self.pool), 1.0)
        self.doc_reward = (
            pool_rewards(self.pool, config) if doc_reward is None else np.asarray(doc_reward, float)
        )
        if len(self.doc_reward) != len(self.pool):
            raise ValueError(f"doc_reward has {len(self.doc_reward)} values for {len(self.pool)} pool rows")
        mask = (
            np.ones(len(self.pool), dtype=bool) if train_mask is None else np.asarray(train_mask, dtype=bool)
        )
        self.trainable = np.flatnonzero(mask)
        if len(self.trainable) < config.candidates:
            raise ValueError(
                f"the loop pool has {len(self.trainable)} trainable documents, fewer than "
                f"candidates={config.candidates}"
            )
        self.texts = [str(t) for t in self.pool["text"]] if learner is not None else []
        b, f = config.candidates, self.encoder.dim
        self.observation_space = spaces.Dict(
            {
                "candidates": spaces.Box(
                    -5.0, 5.0, shape=(b, f), dtype=np.float32
                ),  # the encoder clips to this
                "summary": spaces.Box(-10.0, 10.0, shape=(len(SUMMARY_FIELDS),), dtype=np.float32),
            }
        )
        self.action_space = spaces.Box(0.0, 1.0, shape=(b,), dtype=np.float32)
        self._init_counters()

    # --- state -----------------------------------------------------------------------------------------
    def _init_counters(self) -> None:
        self.t = 0
        self.lam = 0.0
        self.ema_loss: float | None = None
        self.first_loss: float | None = None
        self.probe_before: ProbeResult | None = None
        self.first_heldout: float | None = None
        self.last_rate_error = 0.0
        self.rows = np.zeros(self.config.candidates, dtype=np.int64)

    def summary(self) -> np.ndarray:
        loss = 1.0 if self.ema_loss is None or not self.first_loss else self.ema_loss / self.first_loss
        pb = self.probe_before
        held = 1.0 if pb is None or not self.first_heldout else pb.heldout_loss / self.first_heldout
        s = np.array(
            [
                loss,
                0.0 if pb is None else pb.toxicity,
                0.5 if pb is None else pb.alignment,
                held,
                self.t / self.config.steps,
                self.lam,
                self.last_rate_error,
            ],
            dtype=np.float32,
        )
        return np.clip(s, -10.0, 10.0)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"candidates": self.features[self.rows], "summary": self.summary()}

    def _draw(self) -> None:
        self.rows = self.np_random.choice(self.trainable, size=self.config.candidates, replace=False)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=self.config.seed if seed is None else seed)
        self._init_counters()
        if self.learner is not None and self.probes is not None:
            self.probe_before = self.probes.measure(self.learner, seed=self.config.seed)
            self.first_heldout = self.probe_before.heldout_loss or None
        self._draw()
        return self._obs(), {"rows": self.rows.copy()}

    # --- dynamics --------------------------------------------------------------------------------------
    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        cfg = self.config
        p = np.asarray(action, dtype=np.float64).reshape(-1)
        if p.shape != (cfg.candidates,):
            raise ValueError(
                f"action must have one probability per candidate ({cfg.candidates}), got {p.shape}"
            )
        if not np.all(np.isfinite(p)):
            raise ValueError("action has non-finite probabilities")
        eps = cfg.exploration_floor
        p = np.clip(p, eps, 1 - eps)
        rows = self.rows
        mask = self.np_random.random(cfg.candidates) < p
        kept = rows[mask]
        nt = self.n_tokens[rows]
        rate = float(nt[mask].sum() / nt.sum())
        expected_rate = float((p * nt).sum() / nt.sum())

        r = self.doc_reward[rows]
        data_reward = float(r[mask].mean()) if mask.any() else 0.0
        if cfg.relative_data_reward:
            data_reward = data_reward - float(r.mean()) if mask.any() else 0.0
        err = rate - cfg.budget
        penalty = cfg.budget_penalty * err * err + self.lam * err
        gains = self._candidate_gains(r, p, nt, expected_rate)
        # dual ascent on the expected rate: unbiased for the realised rate, without its Bernoulli noise
        self.lam = float(np.clip(self.lam + cfg.lagrangian_lr * (expected_rate - cfg.budget), -10.0, 10.0))
        self.last_rate_error = expected_rate - cfg.budget

        info: dict[str, Any] = {
            "mask": mask.copy(),
            "rows": rows.copy(),
            "kept_rows": kept.copy(),
            "rate": rate,
            "expected_rate": expected_rate,
            "data_reward": data_reward,
            "penalty": penalty,
            "doc_rewards": r.copy(),
            "probabilities": p.copy(),
            "candidate_gains": gains,
            "candidate_rewards": np.where(mask, gains, 0.0),
            "raft_reward": self._raft_reward(r, nt),
            "feedback": 0.0,
            "lambda": self.lam,
        }
        loss = None
        if self.learner is not None and cfg.learner_steps > 0:
            batch = self._training_batch(kept, rows, p)
            texts = [self.texts[i] for i in batch]
            for _ in range(cfg.learner_steps):
                loss = float(self.learner.train_step(texts))
            self.ema_loss = loss if self.ema_loss is None else 0.8 * self.ema_loss + 0.2 * loss
            if self.first_loss is None:
                self.first_loss = loss
            info["loss"] = loss
        self.t += 1
        feedback = 0.0
        if self.learner is not None and self.probes is not None and self.t % cfg.probe_every == 0:
            feedback = self._feedback(info)
        info["feedback"] = feedback
        reward = data_reward - penalty + feedback
        info["reward"] = reward
        truncated = self.t >= cfg.steps
        self._draw()
        info["next_rows"] = self.rows.copy()
        return self._obs(), float(reward), False, truncated, info

    def _candidate_gains(
        self, r: np.ndarray, p: np.ndarray, nt: np.ndarray, expected_rate: float
    ) -> np.ndarray:
        """What each candidate earns if kept: its share of the data reward less its budget price
        (module docstring, item 4)."""
        cfg = self.config
        # the expected count, not the realised one: a candidate's own action must not move its divisor
        kept = max(float(p.sum()), 1.0)
        # the multiplier before this step's dual update: the one the step's penalty used
        price = self.lam + 2.0 * cfg.budget_penalty * (expected_rate - cfg.budget)
        return (r - float(r.mean())) / kept - price * nt / nt.sum()

    def _raft_reward(self, r: np.ndarray, nt: np.ndarray) -> float:
        from dynacure.selectors.budget import top_to_budget

        top = top_to_budget(r, np.maximum(np.rint(nt), 1).astype(np.int64), self.config.budget).keep
        return float(r[top].mean()) if top.any() else 0.0

    def _training_batch(self, kept: np.ndarray, rows: np.ndarray, p: np.ndarray) -> np.ndarray:
        size = self.config.train_batch
        if len(kept) == 0:
            return rows[[int(np.argmax(p))]]  # never train on nothing; the penalty already punishes this
        if len(kept) >= size:
            return self.np_random.choice(kept, size=size, replace=False)
        pad = self.np_random.choice(kept, size=size - len(kept), replace=True)
        return np.concatenate([kept, pad])

    def _feedback(self, info: dict[str, Any]) -> float:
        cfg = self.config
        assert self.learner is not None and self.probes is not None
        after = self.probes.measure(self.learner, seed=cfg.seed + self.t)
        before = self.probe_before or after
        d = after.as_array() - before.as_array()
        fb = -cfg.w_probe_toxicity * d[0] + cfg.w_probe_alignment * d[1] - cfg.w_probe_loss * d[2]
        info["probe"] = {
            "toxicity": after.toxicity,
            "alignment": after.alignment,
            "heldout_loss": after.heldout_loss,
            "delta": d.tolist(),
        }
        if cfg.refine and self.t % cfg.refine_every == 0:
            n = self.probes.refine(self.learner, seed=cfg.seed + self.t)
            # the probe changed: re-score the same generations so the next difference compares like with like
            gens = self.probes.last_generations
            if gens and cfg.probes.toxicity_scorer == "probe":
                after = ProbeResult(
                    float(np.mean(self.probes.score_toxicity(gens))), after.alignment, after.heldout_loss
                )
            info["refined_on"] = n
        self.probe_before = after
        return float(fb)

    # --- checkpointing ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able env state (the learner is saved separately)."""
        pb = self.probe_before
        out: dict[str, Any] = {
            "version": ENV_STATE_VERSION,
            "t": self.t,
            "lam": self.lam,
            "ema_loss": self.ema_loss,
            "first_loss": self.first_loss,
            "first_heldout": self.first_heldout,
            "last_rate_error": self.last_rate_error,
            "rows": self.rows.tolist(),
            "probe_before": None if pb is None else pb.as_array().tolist(),
            "rng": self.np_random.bit_generator.state,
        }
        if self.probes is not None:
            out["probes"] = {
                "texts": self.probes.safety_probe.texts,
                "labels": self.probes.safety_probe.labels,
                "last_generations": self.probes.last_generations,
                "refinements": self.probes.refinements,
            }
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != ENV_STATE_VERSION:
            raise ValueError(f"env checkpoint version {state.get('version')!r} is not {ENV_STATE_VERSION}")
        if self._np_random is None:
            super().reset(seed=0)
        self.t, self.lam = int(state["t"]), float(state["lam"])
        self.ema_loss, self.first_loss = state["ema_loss"], state["first_loss"]
        self.first_heldout, self.last_rate_error = state["first_heldout"], float(state["last_rate_error"])
        self.rows = np.asarray(state["rows"], dtype=np.int64)
        pb = state["probe_before"]
        self.probe_before = None if pb is None else ProbeResult(*[float(v) for v in pb])
        self.np_random.bit_generator.state = state["rng"]
        if self.probes is not None and "probes" in state:
            ps = state["probes"]
            self.probes.safety_probe.fit(ps["texts"], ps["labels"])
            self.probes.last_generations = list(ps["last_generations"])
            self.probes.refinements = int(ps["refinements"])

    def observation(self) -> dict[str, np.ndarray]:
        return self._obs()
