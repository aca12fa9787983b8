"""Runs a policy in the ``CurationEnv`` for a number of steps, with checkpoints that resume exactly.

A checkpoint is a folder ``step-NNNNNN`` holding the agent's tensors plus torch's RNG state
(``agent.safetensors``), a JSON state (env counters and RNG, agent scalars, the history so far) and the
learner (``learner/``, its own ``save``/``restore``); ``latest.json``, written last and atomically, names
the complete one, so a crash mid-write leaves the previous checkpoint in force. Resuming from it gives the
same policy, learner and history as a run that was never interrupted.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned
from dynacure.loop.bandit import BucketBandit
from dynacure.loop.config import LOOP_FORMAT_VERSION, LoopConfig
from dynacure.loop.env import SUMMARY_FIELDS, CurationEnv
from dynacure.loop.ppo import PPOAgent
from dynacure.loop.reinforce import ReinforceAgent

log = logging.getLogger(__name__)

Agent = PPOAgent | ReinforceAgent | BucketBandit


def make_agent(env: CurationEnv, config: LoopConfig) -> Agent:
    """The agent of ``config.algorithm`` for ``env`` (the bandit's buckets are fitted on the env's pool)."""
    if config.algorithm == "ppo":
        return PPOAgent(env.encoder.dim, len(SUMMARY_FIELDS), config)
    if config.algorithm == "reinforce":
        return ReinforceAgent(env.encoder.dim, len(SUMMARY_FIELDS), config)
    return BucketBandit.for_pool(env.pool, config)


class LoopTrainer:
    """Steps ``agent`` in ``env``; ``run`` resumes from ``checkpoint_dir`` when a checkpoint is there."""

    def __init__(
        self,
        env: CurationEnv,
        agent: Agent,
        config: LoopConfig,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        progress: Any = None,
    ) -> None:
        self.env, self.agent, self.config = env, agent, config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.progress = progress  # optional callable(step, total)
        self.resumed_from = 0  # the checkpoint step the last ``run`` resumed from (0: it started afresh)

    def run(self, steps: int | None = None, resume: bool = True) -> list[dict[str, Any]]:
        total = steps if steps is not None else self.config.steps
        if resume and self.checkpoint_dir is not None and (self.checkpoint_dir / "latest.json").exists():
            self.load_checkpoint()
            self.resumed_from = self.step
            obs, info = self.env.observation(), {"rows": self.env.rows.copy()}
        else:
            obs, info = self.env.reset(seed=self.config.seed)
            self.step, self.history = 0, []
        while self.step < total:
            probs = self.agent.act(obs, info)
            next_obs, reward, terminated, truncated, sinfo = self.env.step(probs)
            done = terminated or truncated or self.step + 1 >= total
            stats = self.agent.observe(obs, sinfo, reward, next_obs, done)
            self.history.append(self._record(sinfo, reward, probs, stats))
            obs, info = next_obs, {"rows": sinfo["next_rows"]}
            self.step += 1
            if self.progress is not None:
                self.progress(self.step, total)
            if (
                self.checkpoint_dir is not None
                and self.checkpoint_every
                and self.step % self.checkpoint_every == 0
            ):
                self.save_checkpoint()
        return self.history

    def _record(
        self, info: dict[str, Any], reward: float, probs: np.ndarray, stats: dict[str, float] | None
    ) -> dict[str, Any]:
        mask = info["mask"]
        rec: dict[str, Any] = {
            "step": self.step + 1,
            "reward": float(reward),
            "data_reward": info["data_reward"],
            "penalty": info["penalty"],
            "feedback": info["feedback"],
            "rate": info["rate"],
            "expected_rate": info["expected_rate"],
            "lambda": info["lambda"],
            "mean_p": float(np.mean(probs)),
            "n_kept": int(mask.sum()),
            "kept_reward": float(info["doc_rewards"][mask].mean()) if mask.any() else None,
            # RAFT on the same batch at the same token budget: what a policy's kept_reward is measured against
            "raft_kept_reward": info["raft_reward"],
        }
        if "loss" in info:
            rec["loss"] = info["loss"]
        if "probe" in info:
            rec.update({f"probe_{k}": v for k, v in info["probe"].items() if k != "delta"})
        if "refined_on" in info:
            rec["refined_on"] = info["refined_on"]
        if stats:
            rec.update({f"agent_{k}": v for k, v in stats.items()})
        return rec

    # --- checkpoints -----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        assert self.checkpoint_dir is not None
        root = self.checkpoint_dir
        name = f"step-{self.step:06d}"
        d = root / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        tensors, meta = self.agent.state()
        tensors = {k: v for k, v in tensors.items() if isinstance(v, torch.Tensor)}
        tensors["torch_rng"] = torch.get_rng_state()
        with atomic_path(d / "agent.safetensors") as tmp:
            save_file(tensors, str(tmp))
        if self.env.learner is not None:
            self.env.learner.save(d / "learner")
        write_json_atomic(
            d / "state.json",
            {
                "format_version": LOOP_FORMAT_VERSION,
                "step": self.step,
                "algorithm": self.config.algorithm,
                "config": self.config.model_dump(),
                "env": self.env.state_dict(),
                "agent": meta,
                "history": self.history,
                "numpy_global": _np_global_state(),
            },
        )
        write_json_atomic(
            root / "latest.json", {"format_version": LOOP_FORMAT_VERSION, "step": self.step, "dir": name}
        )
        for old in root.glob("step-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old)
        return d

    def load_checkpoint(self) -> None:
        assert self.checkpoint_dir is not None
        latest = _read_json(self.checkpoint_dir / "latest.json")
        d = self.checkpoint_dir / latest["dir"]
        state = _read_json(d / "state.json")
        if state.get("algorithm") != self.config.algorithm:
            raise ValueError(
                f"{d}: checkpoint is for algorithm {state.get('algorithm')!r}, not {self.config.algorithm!r}"
            )
        tensors = load_file(str(d / "agent.safetensors"))
        torch_rng = tensors.pop("torch_rng")
        self.agent.load_state(tensors, state["agent"])
        self.env.load_state_dict(state["env"])
        if self.env.learner is not None:
            restore = getattr(self.env.learner, "restore", None)
            if restore is None:
                raise ValueError(
                    f"{d}: the learner {type(self.env.learner).__name__} cannot restore a checkpoint"
                )
            restore(d / "learner")
        torch.set_rng_state(torch_rng)
        np.random.set_state(_np_global_from(state["numpy_global"]))
        self.history = list(state["history"])
        self.step = int(state["step"])
        log.info("resumed the loop at step %d from %s", self.step, d)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return read_versioned(path, LOOP_FORMAT_VERSION, what="checkpoint")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing checkpoint file") from None


def _np_global_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "kind": kind,
        "keys": np.asarray(keys).tolist(),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _np_global_from(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["kind"], np.asarray(d["keys"], dtype=np.uint32), d["pos"], d["has_gauss"], d["cached"])
