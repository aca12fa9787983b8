"""The bucket bandit: the cheap, robust policy that acts on groups of documents instead of single ones.

Documents fall into buckets, either safety level x utility level (quantile levels fitted on the loop
sample) or k-means clusters of the embedding. Each bucket is an arm:

- discounted Thompson sampling: a Beta posterior per bucket; every step all posteriors decay towards the
  prior by ``discount`` (so the bandit tracks a learner whose needs change), a bucket's reward is squashed
  to [0, 1] against the running reward scale and counted as a Bernoulli trial;
- discounted EXP3: exponential weights on discounted importance-weighted rewards, mixed with uniform.

Per-candidate keep probabilities are the bucket's weight scaled so the expected token rate equals the
budget, then clipped to the exploration floor: every bucket keeps mass, and the budget holds by
construction. The online data mixing lesson (METHODS.md): group-level rewards are dense and low-variance.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dynacure.loop.config import BanditConfig, LoopConfig
from dynacure.loop.features import EMBEDDING_COLUMN, UTILITY_COLUMNS, first_present, safety_column

log = logging.getLogger(__name__)


class Bucketer:
    """Assigns each row of a table to a bucket id in ``[0, n_buckets)``."""

    def __init__(
        self,
        kind: str,
        safety_col: str | None = None,
        utility_col: str | None = None,
        safety_edges: list[float] | None = None,
        utility_edges: list[float] | None = None,
        centroids: np.ndarray | None = None,
    ) -> None:
        self.kind = kind
        self.safety_col, self.utility_col = safety_col, utility_col
        self.safety_edges, self.utility_edges = list(safety_edges or []), list(utility_edges or [])
        self.centroids = centroids

    @classmethod
    def fit(cls, table: pd.DataFrame, cfg: BanditConfig, seed: int = 0) -> Bucketer:
        if cfg.buckets == "kmeans":
            if EMBEDDING_COLUMN not in table.columns:
                raise ValueError(f"bandit buckets 'kmeans' need the column {EMBEDDING_COLUMN!r}")
            from sklearn.cluster import KMeans

            e = np.stack([np.asarray(v, dtype=np.float64) for v in table[EMBEDDING_COLUMN]])
            k = min(cfg.clusters, len(e))
            km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(e)
            return cls("kmeans", centroids=km.cluster_centers_)
        s_col, u_col = safety_column(table.columns), first_present(table.columns, UTILITY_COLUMNS)
        qs = np.linspace(0, 1, cfg.levels + 1)[1:-1]

        def edges(col: str | None) -> list[float]:
            if col is None or cfg.levels == 1:
                return []
            return sorted(set(np.quantile(pd.to_numeric(table[col]).to_numpy(dtype=float), qs).tolist()))

        if s_col is None and u_col is None:
            log.warning("bandit: no safety or utility column; one bucket only")
        return cls("levels", s_col, u_col, edges(s_col), edges(u_col))

    @property
    def n_buckets(self) -> int:
        if self.kind == "kmeans":
            assert self.centroids is not None
            return len(self.centroids)
        return (len(self.safety_edges) + 1) * (len(self.utility_edges) + 1)

    def assign(self, table: pd.DataFrame) -> np.ndarray:
        if self.kind == "kmeans":
            assert self.centroids is not None
            e = np.stack([np.asarray(v, dtype=np.float64) for v in table[EMBEDDING_COLUMN]])
            d = ((e[:, None, :] - self.centroids[None, :, :]) ** 2).sum(-1)
            return d.argmin(axis=1).astype(np.int64)
        n = len(table)
        s = np.zeros(n, dtype=np.int64)
        u = np.zeros(n, dtype=np.int64)
        if self.safety_col is not None:
            s = np.searchsorted(
                self.safety_edges, pd.to_numeric(table[self.safety_col]).to_numpy(float), side="right"
            )
        if self.utility_col is not None:
            u = np.searchsorted(
                self.utility_edges, pd.to_numeric(table[self.utility_col]).to_numpy(float), side="right"
            )
        return (s * (len(self.utility_edges) + 1) + u).astype(np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "safety_col": self.safety_col,
            "utility_col": self.utility_col,
            "safety_edges": self.safety_edges,
            "utility_edges": self.utility_edges,
            "centroids": None if self.centroids is None else self.centroids.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Bucketer:
        return cls(
            d["kind"],
            d["safety_col"],
            d["utility_col"],
            d["safety_edges"],
            d["utility_edges"],
            None if d["centroids"] is None else np.asarray(d["centroids"], dtype=np.float64),
        )


def scale_to_budget(weights: np.ndarray, n_tokens: np.ndarray, budget: float, floor: float) -> np.ndarray:
    """Probabilities ``clip(c * w, floor, 1 - floor)`` with ``c`` chosen (bisection) so the expected token
    share is the budget (as close as the floor allows)."""
    w = np.maximum(np.asarray(weights, dtype=np.float64), 1e-12)
    nt = np.asarray(n_tokens, dtype=np.float64)
    total = nt.sum()

    def rate(c: float) -> float:
        return float((np.clip(c * w, floor, 1 - floor) * nt).sum() / total)

    lo, hi = 0.0, 1.0
    while rate(hi) < budget and hi < 1e12:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if rate(mid) < budget:
            lo = mid
        else:
            hi = mid
    return np.clip(hi * w, floor, 1 - floor)


class BucketBandit:
    """Discounted Thompson sampling or EXP3 over buckets (see module docstring)."""

    algorithm = "bandit"
    kind = "bandit"

    def __init__(
        self, bucketer: Bucketer, cfg: BanditConfig, budget: float, floor: float, seed: int = 0
    ) -> None:
        self.bucketer, self.cfg, self.budget, self.floor = bucketer, cfg, budget, floor
        k = bucketer.n_buckets
        self.alpha = np.ones(k)
        self.beta = np.ones(k)
        self.s = np.zeros(k)  # EXP3 discounted reward sums
        self.r_mean, self.r_var = 0.0, 1.0
        self.rng = np.random.default_rng(seed + 104729)
        self.pool_buckets: np.ndarray | None = None
        self.pool_tokens: np.ndarray | None = None
        self.updates = 0
        self._last_weights: np.ndarray | None = None

    @classmethod
    def for_pool(cls, pool: pd.DataFrame, config: LoopConfig) -> BucketBandit:
        b = cls(
            Bucketer.fit(pool, config.bandit, config.seed),
            config.bandit,
            config.budget,
            config.exploration_floor,
            config.seed,
        )
        b.attach(pool)
        return b

    def attach(self, pool: pd.DataFrame) -> None:
        from dynacure.loop.features import token_counts

        self.pool_buckets = self.bucketer.assign(pool.reset_index(drop=True))
        self.pool_tokens = np.maximum(token_counts(pool), 1.0)

    # --- weights ---------------------------------------------------------------------------------------
    def exp3_probs(self) -> np.ndarray:
        k = len(self.s)
        z = self.cfg.exp3_eta * (self.s - self.s.max())
        w = np.exp(z) / np.exp(z).sum()
        return (1 - self.cfg.exp3_mix) * w + self.cfg.exp3_mix / k

    def bucket_weights(self, sample: bool = True) -> np.ndarray:
        if self.cfg.kind == "exp3":
            return self.exp3_probs()
        if sample:
            return self.rng.beta(self.alpha, self.beta)
        return self.alpha / (self.alpha + self.beta)

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        assert self.pool_buckets is not None and self.pool_tokens is not None, "call attach(pool) first"
        rows = np.asarray(info["rows"] if "next_rows" not in info else info["next_rows"])
        w = self.bucket_weights(sample=True)
        self._last_weights = w
        return scale_to_budget(w[self.pool_buckets[rows]], self.pool_tokens[rows], self.budget, self.floor)

    def observe(
        self,
        obs: dict[str, np.ndarray],
        info: dict[str, Any],
        reward: float,
        next_obs: dict[str, np.ndarray],
        done: bool,
    ) -> dict[str, float]:
        assert self.pool_buckets is not None
        rows, mask = np.asarray(info["rows"]), np.asarray(info["mask"], dtype=bool)
        buckets = self.pool_buckets[rows]
        doc_r = np.asarray(info["doc_rewards"], dtype=np.float64)
        base = float(doc_r.mean())
        # discount every arm each step: old evidence fades, so the bandit can follow the learner
        g = self.cfg.discount
        self.alpha = 1 + g * (self.alpha - 1)
        self.beta = 1 + g * (self.beta - 1)
        self.s *= g
        shared = float(info.get("feedback", 0.0))
        played = np.unique(buckets[mask])
        probs = self.exp3_probs()
        for b in played:
            r = float(doc_r[mask & (buckets == b)].mean()) - base + shared
            self.r_mean = 0.99 * self.r_mean + 0.01 * r
            self.r_var = 0.99 * self.r_var + 0.01 * (r - self.r_mean) ** 2
            x = 1 / (1 + np.exp(-(r - self.r_mean) / (np.sqrt(self.r_var) + 1e-8)))
            if self.cfg.kind == "thompson":
                success = float(self.rng.random() < x)
                self.alpha[b] += success
                self.beta[b] += 1 - success
            else:
                self.s[b] += x / probs[b]
        self.updates += 1
        return {"buckets_played": float(len(played))}

    # --- application and persistence ------------------------------------------------------------------
    def probabilities(self, table: pd.DataFrame) -> np.ndarray:
        """Keep probability per row of ``table`` from the posterior means, scaled to the budget."""
        from dynacure.loop.features import token_counts

        w = self.bucket_weights(sample=False)
        return scale_to_budget(
            w[self.bucketer.assign(table)], np.maximum(token_counts(table), 1.0), self.budget, self.floor
        )

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {
            "alpha": self.alpha.tolist(),
            "beta": self.beta.tolist(),
            "s": self.s.tolist(),
            "r_mean": self.r_mean,
            "r_var": self.r_var,
            "rng": self.rng.bit_generator.state,
            "updates": self.updates,
        }

    def load_state(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        self.alpha, self.beta, self.s = (
            np.asarray(meta[k], dtype=np.float64) for k in ("alpha", "beta", "s")
        )
        self.r_mean, self.r_var = float(meta["r_mean"]), float(meta["r_var"])
        self.rng.bit_generator.state = meta["rng"]
        self.updates = int(meta["updates"])

    def to_json(self) -> dict[str, Any]:
        from dynacure.loop.policy_format import POLICY_FORMAT_VERSION

        return {
            "format_version": POLICY_FORMAT_VERSION,
            "kind": "bandit",
            "algorithm": "bandit",
            "bucketer": self.bucketer.to_json(),
            "bandit": self.cfg.model_dump(),
            "budget": self.budget,
            "floor": self.floor,
            "state": self.state()[1],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BucketBandit:
        b = cls(
            Bucketer.from_json(d["bucketer"]),
            BanditConfig.model_validate(d["bandit"]),
            float(d["budget"]),
            float(d["floor"]),
        )
        b.load_state({}, d["state"])
        return b

    def save_policy(
        self, path: Any, encoder: Any = None, summary: Any = None, extra: dict[str, Any] | None = None
    ) -> Any:
        from pathlib import Path

        from dynacure.io.atomic import write_json_atomic
        from dynacure.loop.policy_format import HEADER_FILE

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / HEADER_FILE, {**self.to_json(), **(extra or {})})
        return out

    def bucket_mass(self, table: pd.DataFrame) -> np.ndarray:
        """Share of the expected selected tokens that falls in each bucket."""
        from dynacure.loop.features import token_counts

        p = self.probabilities(table)
        nt = np.maximum(token_counts(table), 1.0)
        mass = np.bincount(self.bucketer.assign(table), weights=p * nt, minlength=self.bucketer.n_buckets)
        return mass / mass.sum()
