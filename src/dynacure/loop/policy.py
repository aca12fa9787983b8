"""The learned selection policy: a shared per-candidate MLP (actor) plus a batch-level value head (critic).

The actor scores every candidate from its own features and the learner summary, and maps the logit to a
probability held inside the exploration floor ``[eps, 1 - eps]`` so no document is ever certain to be
dropped or kept. The action is one Bernoulli per candidate. The critic sees the mean-pooled candidate
features plus the learner summary. Policies are saved as safetensors weights + a JSON header
(``format_version``, sizes, the fitted feature encoder and the learner summary to apply them with).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned
from dynacure.loop.features import FeatureEncoder
from dynacure.loop.policy_format import HEADER_FILE, POLICY_FORMAT_VERSION

WEIGHTS_FILE = "policy.safetensors"


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class SelectionPolicy(nn.Module):
    """Actor-critic over per-candidate keep probabilities (see module docstring)."""

    def __init__(
        self,
        feature_dim: int,
        summary_dim: int,
        hidden: int = 32,
        floor: float = 0.02,
        init_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.feature_dim, self.summary_dim, self.hidden = feature_dim, summary_dim, hidden
        self.floor = floor
        self.actor = nn.Sequential(
            nn.Linear(feature_dim + summary_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        self.critic = nn.Sequential(
            nn.Linear(feature_dim + summary_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        with torch.no_grad():
            # start near the budget so the first rollouts are already feasible
            last = self.actor[-1]
            assert isinstance(last, nn.Linear)
            last.weight.mul_(0.1)
            target = (init_rate - floor) / max(1e-6, 1 - 2 * floor)
            last.bias.fill_(_logit(target))

    def _inputs(self, cand: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        s = summary.unsqueeze(-2).expand(*cand.shape[:-1], summary.shape[-1])
        return torch.cat([cand, s], dim=-1)

    def logits(self, cand: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        return self.actor(self._inputs(cand, summary)).squeeze(-1)

    def probs(self, cand: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        return self.floor + (1 - 2 * self.floor) * torch.sigmoid(self.logits(cand, summary))

    def value(self, cand: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        pooled = cand.mean(dim=-2)
        return self.critic(torch.cat([pooled, summary], dim=-1)).squeeze(-1)

    @staticmethod
    def log_prob(p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-candidate Bernoulli log-probability of ``mask`` under ``p``."""
        return mask * torch.log(p) + (1 - mask) * torch.log1p(-p)

    @staticmethod
    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * torch.log(p) + (1 - p) * torch.log1p(-p))


def candidate_critic(feature_dim: int, summary_dim: int, hidden: int, seed: int) -> nn.Module:
    """A per-candidate value head on (candidate features, learner summary): the baseline of each candidate's
    own reward term under per-candidate credit. Initialised from ``seed`` alone (the global torch RNG is
    left as it was), so adding it changes neither the actor's initialisation nor later draws."""
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed + 7919)
    net = nn.Sequential(nn.Linear(feature_dim + summary_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    torch.set_rng_state(gen_state)
    return net


class NeuralPolicyFile:
    """A saved neural policy applied to tables: features -> keep probability (no learner needed)."""

    kind = "neural"

    def __init__(
        self, policy: SelectionPolicy, encoder: FeatureEncoder, summary: np.ndarray, header: dict[str, Any]
    ) -> None:
        self.policy, self.encoder, self.summary, self.header = policy, encoder, summary, header

    def probabilities(self, table: pd.DataFrame) -> np.ndarray:
        x = torch.from_numpy(self.encoder.transform(table))
        s = torch.from_numpy(self.summary.astype(np.float32))
        with torch.no_grad():
            p = self.policy.probs(x, s)
        return p.numpy().astype(np.float64)


def save_neural_policy(
    path: str | Path,
    policy: SelectionPolicy,
    encoder: FeatureEncoder,
    summary: np.ndarray,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``path/policy.safetensors`` and ``path/policy.json`` atomically."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in policy.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    header = {
        "format_version": POLICY_FORMAT_VERSION,
        "kind": "neural",
        "feature_dim": policy.feature_dim,
        "summary_dim": policy.summary_dim,
        "hidden": policy.hidden,
        "floor": policy.floor,
        "encoder": encoder.to_json(),
        "summary": [float(v) for v in summary],
        **(extra or {}),
    }
    write_json_atomic(out / HEADER_FILE, header)
    return out


def read_header(path: str | Path) -> dict[str, Any]:
    p = Path(path) / HEADER_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: no policy header (is {path} a dynacure policy folder?)")
    return read_versioned(p, POLICY_FORMAT_VERSION, what="policy")


def load_policy(path: str | Path) -> Any:
    """Load a saved policy (neural or bandit) as an object with ``probabilities(table)``."""
    header = read_header(path)
    kind = header.get("kind")
    if kind == "neural":
        policy = SelectionPolicy(
            header["feature_dim"], header["summary_dim"], header["hidden"], header["floor"]
        )
        policy.load_state_dict(load_file(str(Path(path) / WEIGHTS_FILE)))
        policy.eval()
        return NeuralPolicyFile(
            policy,
            FeatureEncoder.from_json(header["encoder"]),
            np.asarray(header["summary"], dtype=np.float64),
            header,
        )
    if kind == "bandit":
        from dynacure.loop.bandit import BucketBandit

        return BucketBandit.from_json(header)
    raise ValueError(f"{Path(path) / HEADER_FILE}: unknown policy kind {kind!r}")


def optimizer_tensors(
    opt: torch.optim.Optimizer, prefix: str = "opt"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state_dict into tensors (safetensors) and JSON (hyper-parameters, scalars)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}.{pid}.{k}"] = v.detach().contiguous().clone()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = "opt"
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        _, pid, k = key.split(".", 2)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class NeuralAgent:
    """Common parts of the PPO and REINFORCE agents: the policy, its optimiser, acting, checkpoint state."""

    algorithm = "neural"

    def __init__(
        self,
        feature_dim: int,
        summary_dim: int,
        hidden: int,
        floor: float,
        budget: float,
        lr: float,
        seed: int,
        optimizer: str = "adam",
    ) -> None:
        gen_state = torch.get_rng_state()
        torch.manual_seed(seed)  # the policy's init depends on the seed only, not on what ran before
        self.policy = SelectionPolicy(feature_dim, summary_dim, hidden, floor, init_rate=budget)
        torch.set_rng_state(gen_state)
        params = list(self.policy.parameters())
        self.opt: torch.optim.Optimizer = (
            torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
        )
        self.updates = 0

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray:
        with torch.no_grad():
            p = self.policy.probs(torch.from_numpy(obs["candidates"]), torch.from_numpy(obs["summary"]))
        return p.numpy().astype(np.float64)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Checkpoint state: tensors (policy, optimiser) and JSON scalars; subclasses extend both."""
        t = {f"policy.{k}": v.detach().contiguous().clone() for k, v in self.policy.state_dict().items()}
        ot, meta = optimizer_tensors(self.opt)
        t.update(ot)
        return t, {"updates": self.updates, "optimizer": meta}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.policy.load_state_dict(
            {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
        )
        load_optimizer_tensors(self.opt, tensors, meta["optimizer"])
        self.updates = int(meta["updates"])

    def save_policy(
        self,
        path: str | Path,
        encoder: FeatureEncoder,
        summary: np.ndarray,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        return save_neural_policy(
            path, self.policy, encoder, summary, {"algorithm": self.algorithm, **(extra or {})}
        )

    def probabilities(self, features: np.ndarray, summary: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return (
                self.policy.probs(
                    torch.from_numpy(features.astype(np.float32)),
                    torch.from_numpy(summary.astype(np.float32)),
                )
                .numpy()
                .astype(np.float64)
            )


@lru_cache(maxsize=8)
def _cached_policy(path: str, mtime: float) -> Any:
    return load_policy(path)


def apply_policy_batch(policy_path: str | Path, table: pd.DataFrame) -> np.ndarray:
    """Keep probabilities of a saved policy for one batch (a pandas table with the attribute columns)."""
    header = Path(policy_path) / "policy.json"
    if not header.exists():
        raise FileNotFoundError(f"{header}: no saved policy")
    return _cached_policy(str(Path(policy_path).resolve()), header.stat().st_mtime).probabilities(table)
