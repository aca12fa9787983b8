"""The learned policies as selection strategies: ``ppo``, ``reinforce`` and ``bandit``.

``select`` learns the policy in the closed loop on a sample of the candidate table (a learner trained while
the policy learns, probes built from the sample), then applies it to the whole table in batches. The loop's
learner: with ``learner=None`` (default) a copy of the learner handed in through ``SelectionContext.learner``
(``curate --learner``, a TinyGPT or a local Hugging Face causal LM), so the caller's model is not consumed,
else a fresh small GPT of ``learner_preset``; ``learner="own"`` always the small GPT; ``learner=
"experiment"`` requires one handed in, either a ``learner_factory`` the experiment runner sets (a fresh
learner of the experiment's kind, no copy needed) or ``ctx.learner``. A learner handed in gets its LR
schedule set to end with the loop. Then the policy maps each document's features to a keep probability,
and the selectors' budget helper turns the probabilities into decisions at the token budget: by default the
documents of highest probability (deterministic, so a corpus-wide application on Ray gives the same
decisions), or ``decision="sample"`` for Gumbel sampling in proportion to the probability (measured on the
demo corpus: sampling let 5% toxic documents through where the top probabilities let 0% through). With
``policy_path`` a saved policy is applied without learning. ``loop.policy.apply_policy_batch`` is
the same application for one batch, the function a Ray Data ``map_batches`` stage calls; ``engine="ray"``
applies the policy that way (``dynacure.loop.ray_apply``), saving a just-learned policy to a temporary
folder first, with the same batches and so the same probabilities and decisions as the local application.
With ``expensive_signal`` the loop works on the cheap scores only (that signal's columns are dropped before
anything reads the table) and, once the policy is learned, spends ``query_share`` of the table in counted
calls of the expensive scorer that correct the policy's ranking (``loop/feedback.py``; ``feedback_stats``
holds the calls, seconds and FLOPs).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from dynacure.config import validate_config
from dynacure.learners.base import Learner
from dynacure.loop.config import LoopConfig
from dynacure.loop.policy import load_policy
from dynacure.selectors import register_selector
from dynacure.selectors.base import Selection, SelectionContext, Selector, SelectorKind
from dynacure.selectors.budget import keep_reasons, sample_to_budget, top_to_budget, unit_weights
from dynacure.selectors.common import check_table, table_ids

log = logging.getLogger(__name__)


def _loop_config(
    algorithm: str, config: LoopConfig | dict[str, Any] | None, overrides: dict[str, Any]
) -> LoopConfig:
    base = config.model_dump() if isinstance(config, LoopConfig) else dict(config or {})
    base.update(overrides)
    base["algorithm"] = algorithm
    return validate_config(base, LoopConfig, origin=f"selector {algorithm!r}")


def preference_pairs(seed: int = 0, data_dir: str | Path | None = None) -> pd.DataFrame | None:
    """Pool-half HH-RLHF pairs for the alignment probe (never the eval half); None when the data is absent.

    ``data_dir`` None reads the default data folder (``$DYNACURE_DATA`` or ../shared/data).
    """
    try:
        from dynacure.io.public_data import hh_rlhf

        frames = [hh_rlhf(sub, half="pool", data_dir=data_dir) for sub in ("harmless-base", "helpful-base")]
    except (FileNotFoundError, OSError) as exc:
        log.info("no HH-RLHF pairs for the alignment probe: %s", exc)
        return None
    return pd.concat(frames, ignore_index=True)


class LoopSelector(Selector):
    """Learn a curation policy in the loop on a sample, then apply it to the whole table."""

    algorithm: ClassVar[str]
    kind: ClassVar[SelectorKind] = "loop"
    needs_text = True
    uses_reward: ClassVar[bool] = True
    # the attributes ``curate`` scores when no stored attribute tables are given (the composite reward's)
    default_signals: ClassVar[tuple[str, ...]] = ("toxicity_ngram", "alignment", "quality")

    def __init__(
        self,
        config: LoopConfig | dict[str, Any] | None = None,
        policy_path: str | None = None,
        save_policy_to: str | None = None,
        decision: Literal["sample", "top"] = "top",
        use_learner: bool = True,
        use_pairs: bool = True,
        checkpoint_dir: str | None = None,
        toxicity_signal: str | None = None,
        engine: Literal["local", "ray"] = "local",
        signals: list[str] | tuple[str, ...] | None = None,
        weights: Any = None,
        signal_kwargs: dict[str, dict[str, Any]] | None = None,
        data_dir: str | None = None,
        learner: Literal["own", "experiment"] | None = None,
        expensive_signal: str | None = None,
        query_share: float = 0.04,
        query_rounds: int = 4,
        **overrides: Any,
    ) -> None:
        if weights is not None:  # `curate --weights`: the composite reward's weights as w_s/w_a/w_u
            from dynacure.selectors.reward import RewardWeights

            rw = weights if isinstance(weights, RewardWeights) else RewardWeights.parse(str(weights))
            overrides = {**overrides, "w_s": rw.safety, "w_a": rw.alignment, "w_u": rw.utility}
        self.config = _loop_config(self.algorithm, config, overrides)
        if decision not in ("sample", "top"):
            raise ValueError(f"decision must be 'sample' or 'top', got {decision!r}")
        if engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
        self.engine = engine
        if signals is not None and (
            isinstance(signals, str) or not all(isinstance(v, str) for v in signals)
        ):
            raise ValueError(f"signals must be a list of signal names, got {signals!r}")
        self.signals = tuple(signals) if signals is not None else self.default_signals
        self.policy_path, self.save_policy_to = policy_path, save_policy_to
        self.decision, self.use_learner, self.use_pairs = decision, use_learner, use_pairs
        self.checkpoint_dir = checkpoint_dir
        self.toxicity_signal = toxicity_signal  # None: toxicity_ngram, else profanity
        if signal_kwargs is not None and not (
            isinstance(signal_kwargs, dict) and all(isinstance(v, dict) for v in signal_kwargs.values())
        ):
            raise ValueError(f"signal_kwargs must map signal names to keyword tables, got {signal_kwargs!r}")
        # The loop's reward-side toxicity scorer is built with the arguments the corpus was scored with
        # (an experiment passes its own model folder), so it scores with the same model as the attributes.
        self.signal_kwargs = {k: dict(v) for k, v in (signal_kwargs or {}).items()}
        self.data_dir = data_dir  # where the alignment probe's HH-RLHF pairs are read (use_pairs)
        if learner not in (None, "own", "experiment"):
            raise ValueError(f"learner must be 'own' or 'experiment' (or unset), got {learner!r}")
        self.learner_source = learner
        # The expensive scorer the loop may query (loop/feedback.py): its columns, if the table has them,
        # are hidden from the policy and the reward; ``query_share`` of the table's documents are scored by
        # it, in ``query_rounds`` rounds, after the policy is learned (0: the loop without it).
        if expensive_signal is not None and not isinstance(expensive_signal, str):
            raise ValueError(f"expensive_signal must be a signal name, got {expensive_signal!r}")
        if not 0.0 <= float(query_share) <= 1.0:
            raise ValueError(f"query_share must be in [0, 1], got {query_share!r}")
        if int(query_rounds) < 1:
            raise ValueError(f"query_rounds must be >= 1, got {query_rounds!r}")
        if expensive_signal is not None and decision != "top":
            raise ValueError("expensive_signal needs decision='top' (the queries correct a ranking)")
        self.expensive_signal = expensive_signal
        self.query_share, self.query_rounds = float(query_share), int(query_rounds)
        self.feedback_stats: dict[str, Any] | None = None  # the expensive calls of the last select
        # set by the experiment runner for learner="experiment": a fresh learner of the experiment's kind
        self.learner_factory: Callable[[], Learner] | None = None
        self.loop_learner: Learner | None = None  # the learner the loop trained and probed (after select)
        self.cost: dict[str, float] | None = None  # its work in the loop (selectors.models.model_cost)
        self.history: list[dict[str, Any]] = []
        self.resumed_from_step = 0  # the policy checkpoint step the last learn resumed from (checkpoint_dir)
        self.probabilities_fn: Callable[[pd.DataFrame], np.ndarray] | None = None
        self.learned_agent: Any = None
        self.learned_env: Any = None

    def params(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(),
            "policy_path": self.policy_path,
            "decision": self.decision,
            "use_learner": self.use_learner,
            "engine": self.engine,
            "signals": list(self.signals),
            "signal_kwargs": self.signal_kwargs,
            "use_pairs": self.use_pairs,
            "learner": self.learner_source,
            "expensive_signal": self.expensive_signal,
            "query_share": self.query_share if self.expensive_signal else None,
            "query_rounds": self.query_rounds if self.expensive_signal else None,
        }

    @property
    def dropped_columns(self) -> list[str]:
        """Attribute columns the learned policy's features left out (no value in the loop sample)."""
        env = self.learned_env
        return list(env.encoder.dropped) if env is not None else []

    def _loop_learner(self, sample: pd.DataFrame, seed: int, given: Learner | None) -> Learner:
        """The learner the loop trains and probes (module docstring): never ``given`` itself."""
        cfg = self.config
        if self.learner_source == "experiment" and self.learner_factory is None and given is None:
            raise ValueError(
                f"{self.name}: learner='experiment' needs a learner handed in (an experiment's, or curate "
                "--learner); none was given"
            )
        if self.learner_source != "own" and (self.learner_factory is not None or given is not None):
            if self.learner_factory is not None:
                learner = self.learner_factory()
            else:
                from dynacure.selectors.models import clone_learner

                assert given is not None
                learner = clone_learner(given)
            if hasattr(learner, "set_schedule"):
                # the cosine horizon ends with the loop, else a short run never leaves warm-up / high LR
                learner.set_schedule(int(getattr(learner, "step", 0)) + cfg.steps * cfg.learner_steps)
            log.info("%s: the loop trains and probes a %s", self.name, type(learner).__name__)
            return learner
        from dynacure.learners.factory import LearnerSpec, build_learner

        return build_learner(LearnerSpec(preset=cfg.learner_preset), seed, texts=sample["text"].tolist())

    def learn(
        self, sample: pd.DataFrame, seed: int, learner: Learner | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Callable[[pd.DataFrame], np.ndarray]:
        """Run the loop on ``sample``; returns the learned policy as a table -> probabilities function.

        ``learner``: the one handed in (``SelectionContext.learner``); the loop trains a copy of it.
        ``progress(step, total)`` after each policy step (``SelectionContext.progress``)."""
        from dynacure.loop.env import CurationEnv
        from dynacure.loop.probes import build_probes, reward_toxicity_scorer
        from dynacure.loop.trainer import LoopTrainer, make_agent
        from dynacure.selectors.models import model_cost, work_done

        cfg = self.config
        given = learner
        learner = probes = train_mask = None
        start = (0, 0)
        if self.use_learner:
            learner = self._loop_learner(sample, seed, given)
            start = work_done(learner)
            pairs = (
                preference_pairs(seed, self.data_dir) if self.use_pairs and cfg.probes.n_pairs else None
            )
            scorer = reward_toxicity_scorer(
                (self.toxicity_signal,) if self.toxicity_signal else ("toxicity_ngram", "profanity"),
                self.signal_kwargs,
            )
            probes, train_mask = build_probes(sample, cfg.probes, seed=seed, pairs=pairs, scorer=scorer)
        env = CurationEnv(sample, learner, cfg, probes=probes, train_mask=train_mask)
        agent = make_agent(env, cfg)
        trainer = LoopTrainer(
            env,
            agent,
            cfg,
            checkpoint_dir=self.checkpoint_dir,
            checkpoint_every=max(1, cfg.steps // 4) if self.checkpoint_dir else 0,
            progress=progress,
        )
        self.history = trainer.run()
        self.resumed_from_step = trainer.resumed_from
        self.learned_agent, self.learned_env = agent, env
        self.loop_learner = learner
        if learner is not None:
            done = work_done(learner)
            self.cost = model_cost(learner, done[0] - start[0], done[1] - start[1])
            module = getattr(learner, "_module", None)
            if np.isnan(self.cost["params"]) and callable(module):  # a learner without num_parameters()
                self.cost["params"] = float(sum(p.numel() for p in module().parameters()))
        if self.save_policy_to:
            agent.save_policy(self.save_policy_to, env.encoder, env.summary(), {"budget": cfg.budget})
        if hasattr(agent, "policy"):
            encoder, summary = env.encoder, env.summary()
            return lambda t: agent.probabilities(encoder.transform(t), summary)  # type: ignore[union-attr]
        return agent.probabilities  # type: ignore[union-attr,return-value]

    def select(self, table: pd.DataFrame, ctx: SelectionContext) -> Selection:
        check_table(table, ("id", "n_tokens") + (("text",) if self.policy_path is None else ()))
        hidden: list[str] = []
        if self.expensive_signal:
            # the policy and its reward see only the cheap scores; the expensive one is reached by queries
            prefix = f"{self.expensive_signal}__"
            hidden = [c for c in table.columns if isinstance(c, str) and c.startswith(prefix)]
            table = table.drop(columns=hidden)
        self.config = self.config.model_copy(update={"budget": float(ctx.budget), "seed": int(ctx.seed)})
        if self.policy_path is not None:
            fn = load_policy(self.policy_path).probabilities
        else:
            n = min(self.config.sample_size, len(table))
            sample = table.sample(n=n, random_state=ctx.seed % (2**32)).reset_index(drop=True)
            fn = self.learn(sample, ctx.seed, ctx.learner, ctx.progress)
        self.probabilities_fn = fn
        step = self.config.apply_batch
        if self.engine == "ray":
            p = self._apply_ray(table)
        else:
            p = (
                np.concatenate([fn(table.iloc[i : i + step]) for i in range(0, len(table), step)])
                if len(table)
                else np.zeros(0)
            )
        nt = table["n_tokens"].to_numpy(dtype=np.int64)
        score = p
        if self.expensive_signal:
            score = self._query_expensive(table, p, ctx, hidden)
        if self.decision == "top":
            res = top_to_budget(score, nt, ctx.budget)
        else:
            res = sample_to_budget(np.log(np.maximum(p, 1e-12)), nt, ctx.budget, seed=ctx.seed)
        reason = keep_reasons(res.keep, "kept")
        return Selection(
            ids=table_ids(table),
            probability=p,
            weight=unit_weights(len(table)),
            keep=res.keep,
            reason=reason,
        )

    def _query_expensive(
        self, table: pd.DataFrame, p: np.ndarray, ctx: SelectionContext, hidden: list[str]
    ) -> np.ndarray:
        """The policy's ranking corrected by active queries of the expensive scorer (loop/feedback.py)."""
        from dynacure.loop.features import FeatureEncoder
        from dynacure.loop.feedback import CountingScorer, active_queries, policy_reward_scale
        from dynacure.selectors.reward import RewardWeights, composite_reward, reward_components

        check_table(table, ("id", "n_tokens", "text"))
        weights = self.config.reward_weights()
        n_queries = int(round(self.query_share * len(table)))
        stats: dict[str, Any] = {"signal": self.expensive_signal, "hidden_columns": hidden,
                                 "n_documents": len(table), "calls": 0.0, "seconds": 0.0, "flops": 0.0,
                                 "rounds": []}
        if n_queries == 0 or weights.safety == 0:
            self.feedback_stats = stats
            return p
        assert self.expensive_signal is not None
        scorer = CountingScorer.for_signal(self.expensive_signal,
                                           self.signal_kwargs.get(self.expensive_signal))
        reward = composite_reward(table, weights)
        safety_only = RewardWeights(safety=1.0, alignment=0.0, utility=0.0)
        cheap = 1.0 - reward_components(table, safety_only)["safety"]
        features = FeatureEncoder.fit(table, "scores").transform(table)
        res = active_queries(
            policy_reward_scale(p, reward), cheap, features, table["text"].astype(str).tolist(),
            table["n_tokens"].to_numpy(dtype=np.int64), float(ctx.budget), weights.safety, scorer,
            n_queries, rounds=self.query_rounds, seed=int(ctx.seed),
        )
        stats.update(scorer.stats())
        stats["share"] = stats["calls"] / max(len(table), 1)
        stats["rounds"] = res.rounds
        self.feedback_stats = stats
        return res.score

    def _apply_ray(self, table: pd.DataFrame) -> np.ndarray:
        from dynacure.loop.ray_apply import policy_probabilities_ray

        step = self.config.apply_batch
        if self.policy_path is not None:
            return policy_probabilities_ray(self.policy_path, table, step)
        if self.save_policy_to:
            return policy_probabilities_ray(self.save_policy_to, table, step)
        # a just-learned policy reaches the Ray workers the way a saved one does: through its files
        with tempfile.TemporaryDirectory(prefix="dynacure-policy-") as tmp:
            env = self.learned_env
            self.learned_agent.save_policy(tmp, env.encoder, env.summary(), {"budget": self.config.budget})
            return policy_probabilities_ray(tmp, table, step)


@register_selector("ppo")
class PPOSelector(LoopSelector):
    name = "ppo"
    algorithm = "ppo"


@register_selector("reinforce")
class ReinforceSelector(LoopSelector):
    name = "reinforce"
    algorithm = "reinforce"


@register_selector("bandit")
class BanditSelector(LoopSelector):
    name = "bandit"
    algorithm = "bandit"


def register(registry: dict[str, Any]) -> None:
    """Add the loop strategies to a name -> factory mapping (for registries other than the selectors')."""
    registry.update({"ppo": PPOSelector, "reinforce": ReinforceSelector, "bandit": BanditSelector})
