"""Adaptivity: the reward changes in the middle of a run; does the learned policy follow, and how fast?

Setup (seed 000, objective 5): on the demo corpus (scored with ``profanity``, ``quality`` and the
demo-trained ``toxicity_ngram``) the closed loop runs ``steps_before`` steps with reward A, then the reward
switches to B for ``steps_after`` more steps, through the env's own API (``CurationEnv.doc_reward`` is
replaced; the agent keeps learning from the rewards it gets). Two switches are offered:

- ``weights``: the reward weights change (default: utility only -> safety first, 0.7 / 0 / 0.3);
- ``safety``: the safety definition gains a category (default: profanity only -> profanity + the toxicity
  classifier, which also catches identity attacks and toxic replies without swear words).

Tracked every step, on a fixed panel of pool documents: the toxic share (gold ``meta.toxic`` label) of the
policy's *expected* selection, i.e. token-weighted by the policy's keep probabilities, the metric B is
meant to lower. A static filter (top of the pool by reward A at the same budget, decided once) is applied
to the same panel; its metric cannot move. Re-adaptation steps = steps after the switch until the trailing
moving average has covered ``frac`` (90%) of the way from its pre-switch level to its final level.

Transfer: a policy learned with reward B in the loop with a ``nano`` learner is frozen and applied in the
loop with a larger learner (``tiny``); the larger learner's figures (toxic share of its training data,
training loss, held-out loss on clean and on toxic text) are compared with a policy learned from scratch on
the larger learner and with random selection at the same budget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from dynacure.config import StrictModel
from dynacure.io.atomic import atomic_path, write_json_atomic
from dynacure.io.jsonfile import read_versioned
from dynacure.selectors.reward import RewardColumns, RewardWeights, composite_reward

log = logging.getLogger(__name__)

ADAPT_FORMAT_VERSION = 1
RESULT_FILE = "adapt.json"
PLOT_FILE = "adaptivity.png"
SIGNALS = ("profanity", "quality", "toxicity_ngram")

Progress = Callable[[str, int, int], None]


class AdaptConfig(StrictModel):
    """Everything ``dynacure adapt`` varies."""

    format_version: int = ADAPT_FORMAT_VERSION
    n_docs: int = Field(1500, ge=100)
    toxic_share: float = Field(0.2, gt=0, lt=1)
    low_quality_share: float = Field(0.2, ge=0, lt=1)
    seed: int = 0
    algorithms: list[Literal["ppo", "reinforce", "bandit"]] = ["ppo", "bandit"]
    switch: Literal["weights", "safety"] = "weights"
    weights_before: RewardWeights = RewardWeights(safety=0.0, alignment=0.0, utility=1.0)
    weights_after: RewardWeights = RewardWeights(safety=0.7, alignment=0.0, utility=0.3)
    safety_before: list[str] = ["profanity__toxicity"]
    safety_after: list[str] = ["profanity__toxicity", "toxicity_ngram__toxicity"]
    steps_before: int = Field(120, ge=2)
    steps_after: int = Field(120, ge=2)
    # 0.75: wide enough that reward A (utility only) keeps toxic documents a safety reward would drop
    budget: float = Field(0.75, gt=0, lt=1)
    candidates: int = Field(32, ge=4)
    train_batch: int = Field(16, ge=1)
    use_learner: bool = True  # train a small GPT inside the loop (False: data reward only, seconds)
    learner_preset: Literal["nano", "tiny"] = "nano"
    probe_every: int = Field(16, ge=1)
    ppo: dict[str, Any] = {}  # PPO settings over the loop's defaults (dynacure.loop.config.PPOConfig)
    window: int = Field(10, ge=1)  # moving-average window for the re-adaptation measure
    frac: float = Field(0.9, gt=0, le=1)
    panel_size: int = Field(512, ge=16)
    transfer: bool = True
    # "base": the pre-trained base learner (`dynacure pretrain`, 5.3M parameters), fine-tuned in the loop
    transfer_to: Literal["nano", "tiny", "base"] = "tiny"
    transfer_steps: int = Field(120, ge=2)
    # which base "base" is: its BaseConfig fields (default: the `dynacure pretrain` defaults) and cache root
    base: dict[str, Any] = {}
    base_root: str | None = None
    base_lr: float = Field(5e-4, gt=0)  # fine-tuning LR of the base in the loop (the experiments' default)

    @model_validator(mode="after")
    def _check(self) -> AdaptConfig:
        if self.switch == "weights" and self.weights_before == self.weights_after:
            raise ValueError("switch 'weights' needs weights_before != weights_after")
        if self.switch == "safety" and sorted(self.safety_before) == sorted(self.safety_after):
            raise ValueError("switch 'safety' needs safety_before != safety_after")
        if self.window > min(self.steps_before, self.steps_after):
            raise ValueError(f"window ({self.window}) must not exceed steps_before/steps_after")
        if self.train_batch > self.candidates:
            raise ValueError(
                f"train_batch ({self.train_batch}) must not exceed candidates ({self.candidates})"
            )
        return self


# ---- the measure -----------------------------------------------------------------------------------------


def moving_average(x: np.ndarray | list[float], window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    x = np.asarray(x, dtype=np.float64)
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def readaptation_steps(
    series: np.ndarray | list[float],
    switch_at: int,
    window: int = 10,
    frac: float = 0.9,
    min_change: float = 1e-3,
) -> dict[str, Any]:
    """How many steps after ``switch_at`` (index of the first step under the new reward) the trailing
    moving average needs to cover ``frac`` of the way from its pre-switch level (mean of the ``window``
    steps before the switch) to its final level (mean of the last ``window`` steps).

    ``steps`` is None when the level moved by less than ``min_change`` (nothing to adapt to, or a policy
    that cannot move, such as a static filter) or never got there."""
    x = np.asarray(series, dtype=np.float64)
    if not 0 < switch_at < len(x):
        raise ValueError(f"switch_at={switch_at} must be inside the series (length {len(x)})")
    pre = float(np.mean(x[max(0, switch_at - window) : switch_at]))
    final = float(np.mean(x[-window:]))
    change = final - pre
    out: dict[str, Any] = {"pre": pre, "final": final, "change": change, "target": None, "steps": None}
    if abs(change) < min_change:
        return out
    target = pre + frac * change
    ma = moving_average(x, window)[switch_at:]
    hit = np.flatnonzero(ma >= target) if change > 0 else np.flatnonzero(ma <= target)
    out["target"] = target
    out["steps"] = int(hit[0]) + 1 if len(hit) else None  # the 1st post-switch step counts as 1
    return out


def expected_share(p: np.ndarray, n_tokens: np.ndarray, flag: np.ndarray) -> float:
    """Token share of the flagged documents in a selection with keep probabilities ``p``."""
    w = np.asarray(p, dtype=np.float64) * np.asarray(n_tokens, dtype=np.float64)
    return float((w * np.asarray(flag, dtype=np.float64)).sum() / max(w.sum(), 1e-12))


# ---- the pool --------------------------------------------------------------------------------------------


def scored_demo_pool(cfg: AdaptConfig, work: Path) -> pd.DataFrame:
    """The demo corpus with its attributes and gold labels (cached in ``work/pool.parquet``)."""
    cache = work / "pool.parquet"
    if cache.exists():
        pool = pd.read_parquet(cache)
        if len(pool) == cfg.n_docs:
            return pool
    from dynacure.io.demo_corpus import generate_demo_corpus
    from dynacure.io.document import count_tokens
    from dynacure.signals.base import get_signal
    from dynacure.signals.toxicity import train_demo_models

    models = work / "models"
    if not (models / "toxicity_ngram").exists():
        # disjoint generated data (another seed), as the demo experiment does
        train_demo_models(models, seed=cfg.seed + 1000)
    docs = generate_demo_corpus(
        n_docs=cfg.n_docs, toxic_share=cfg.toxic_share, low_quality_share=cfg.low_quality_share, seed=cfg.seed
    )
    texts = [d.text for d in docs]
    pool = pd.DataFrame(
        {
            "id": [d.id for d in docs],
            "source": [d.source for d in docs],
            "n_tokens": [count_tokens(t) for t in texts],
            "text": texts,
        }
    )
    for name in SIGNALS:
        sig = get_signal(name, **({"model_dir": str(models)} if name == "toxicity_ngram" else {}))
        for col, values in sig.score(texts).items():
            pool[f"{name}__{col}"] = np.asarray(values, dtype=np.float64)
    pool["gold_toxic"] = [int(d.meta.get("toxic", 0)) for d in docs]
    pool["gold_kind"] = [str(d.meta.get("kind", "")) for d in docs]
    work.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        pool.to_parquet(tmp, index=False)
    return pool


def policy_view(pool: pd.DataFrame) -> pd.DataFrame:
    """What the policy may see: attributes, length, source and text; never the gold labels."""
    return pool.drop(columns=[c for c in pool.columns if c.startswith("gold_")])


RewardSpec = tuple[RewardWeights, RewardColumns]  # what composite_reward and RAFT take


def reward_specs(cfg: AdaptConfig) -> tuple[RewardSpec, RewardSpec]:
    """The weights and columns of reward A and reward B (what ``composite_reward`` and RAFT take)."""
    if cfg.switch == "weights":
        cols = RewardColumns(toxicity=list(cfg.safety_after))
        return (cfg.weights_before, cols), (cfg.weights_after, cols)
    w = cfg.weights_after
    return ((w, RewardColumns(toxicity=list(cfg.safety_before))),
            (w, RewardColumns(toxicity=list(cfg.safety_after))))


def rewards(pool: pd.DataFrame, cfg: AdaptConfig) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Per-document reward A and reward B, with a description of each."""
    (wa, ca), (wb, cb) = reward_specs(cfg)
    a, b = composite_reward(pool, wa, ca), composite_reward(pool, wb, cb)
    if cfg.switch == "weights":
        return a, b, _wtext(wa), _wtext(wb)
    return (a, b, f"safety from {', '.join(cfg.safety_before)} ({_wtext(wa)})",
            f"safety from {', '.join(cfg.safety_after)} ({_wtext(wb)})")


def _wtext(w: RewardWeights) -> str:
    return f"w_s={w.safety:g}, w_a={w.alignment:g}, w_u={w.utility:g}"


# ---- one run with a switch -------------------------------------------------------------------------------


def _loop_config(cfg: AdaptConfig, algorithm: str, steps: int, preset: str, seed: int) -> Any:
    from dynacure.loop.config import LoopConfig

    w = cfg.weights_after
    return LoopConfig(
        algorithm=algorithm,
        seed=seed,
        w_s=w.safety,
        w_a=w.alignment,
        w_u=w.utility,
        budget=cfg.budget,
        candidates=cfg.candidates,
        train_batch=cfg.train_batch,
        steps=steps,
        probe_every=cfg.probe_every,
        refine=False,
        learner_preset=preset if preset in ("nano", "tiny") else "nano",  # "base" is built by _make_env
        sample_size=cfg.n_docs,
        probes={
            "n_prompts": 8,
            "samples_per_prompt": 2,
            "max_new_tokens": 10,
            "n_pairs": 0,
            "n_heldout": 32,
            "probe_set_size": 32,
            "al_seed_size": 8,
        },
        ppo=cfg.ppo,
    )


def _make_env(
    view: pd.DataFrame,
    gold: np.ndarray,
    cfg: AdaptConfig,
    lcfg: Any,
    doc_reward: np.ndarray,
    preset: str | None,
    seed: int,
) -> Any:
    from dynacure.loop.env import CurationEnv

    learner = probes = train_mask = None
    if preset is not None:
        from dynacure.learners.factory import LearnerSpec, build_learner
        from dynacure.loop.probes import build_probes, reward_toxicity_scorer

        spec = LearnerSpec(preset=preset)
        if preset == "base":
            from dynacure.learners.pretrain import BaseConfig, find_base

            # the same fine-tuning start as an experiment cell's (experiments.runner.FINETUNE_WARMUP)
            spec = LearnerSpec(base=find_base(BaseConfig(**cfg.base), root=cfg.base_root),
                               overrides={"lr": cfg.base_lr, "warmup_steps": 10})
        learner = build_learner(spec, seed, texts=view["text"].tolist())
        probes, train_mask = build_probes(
            view, lcfg.probes, seed=seed, labels=gold, scorer=reward_toxicity_scorer(("profanity",))
        )
    return CurationEnv(view, learner, lcfg, probes=probes, doc_reward=doc_reward, train_mask=train_mask)


def _panel_probs(agent: Any, env: Any, panel: pd.DataFrame) -> np.ndarray:
    if hasattr(agent, "policy"):
        return agent.probabilities(env.encoder.transform(panel), env.summary())
    return agent.probabilities(panel)


def run_switch(
    pool: pd.DataFrame,
    cfg: AdaptConfig,
    algorithm: str,
    reward_a: np.ndarray,
    reward_b: np.ndarray,
    panel_idx: np.ndarray,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the loop ``steps_before`` steps on reward A, switch the env to reward B, run ``steps_after``
    more; per step the panel metric, the realised toxic share and B-reward of the kept batch, and timing."""
    from dynacure.loop.trainer import make_agent

    total = cfg.steps_before + cfg.steps_after
    view = policy_view(pool)
    gold = pool["gold_toxic"].to_numpy()
    lcfg = _loop_config(cfg, algorithm, total, cfg.learner_preset, cfg.seed)
    env = _make_env(
        view, gold, cfg, lcfg, reward_a, cfg.learner_preset if cfg.use_learner else None, cfg.seed
    )
    agent = make_agent(env, lcfg)
    panel = view.iloc[panel_idx].reset_index(drop=True)
    panel_tok = panel["n_tokens"].to_numpy(dtype=float)
    panel_gold = gold[panel_idx]
    rec: dict[str, list[float]] = {
        k: []
        for k in ("panel_toxic_share", "kept_toxic_share", "kept_reward_b", "batch_reward_b", "rate", "loss")
    }
    obs, info = env.reset(seed=lcfg.seed)
    t0 = time.perf_counter()
    for step in range(total):
        if step == cfg.steps_before:
            env.doc_reward = np.asarray(reward_b, dtype=np.float64)  # the switch: same env, new reward
        probs = agent.act(obs, info)
        nxt, reward, term, trunc, sinfo = env.step(probs)
        agent.observe(obs, sinfo, reward, nxt, term or trunc or step + 1 >= total)
        obs, info = nxt, {"rows": sinfo["next_rows"]}
        mask, rows = sinfo["mask"], sinfo["rows"]
        kept = rows[mask]
        rec["panel_toxic_share"].append(
            expected_share(_panel_probs(agent, env, panel), panel_tok, panel_gold)
        )
        rec["kept_toxic_share"].append(float(gold[kept].mean()) if len(kept) else math.nan)
        rec["kept_reward_b"].append(float(reward_b[kept].mean()) if len(kept) else math.nan)
        rec["batch_reward_b"].append(float(reward_b[rows].mean()))
        rec["rate"].append(float(sinfo["rate"]))
        rec["loss"].append(float(sinfo.get("loss", math.nan)))
        if progress:
            progress(f"{algorithm}: step", step + 1, total)
    seconds = time.perf_counter() - t0
    measure = readaptation_steps(rec["panel_toxic_share"], cfg.steps_before, cfg.window, cfg.frac)
    kept_measure = readaptation_steps(_ffill(rec["kept_toxic_share"]), cfg.steps_before, cfg.window, cfg.frac)
    return {
        "algorithm": algorithm,
        "series": rec,
        "readaptation": measure,
        "readaptation_kept_batches": kept_measure,
        "seconds": seconds,
        "seconds_per_step": seconds / total,
        "agent": agent,  # the learned policy, for the transfer (not written to JSON)
    }


def _ffill(x: list[float]) -> np.ndarray:
    s = pd.Series(x, dtype=float).ffill().fillna(0.0)
    return s.to_numpy()


def _raft_keep(pool: pd.DataFrame, cfg: AdaptConfig, spec: RewardSpec, reward: np.ndarray) -> np.ndarray:
    """RAFT's decisions at the budget through the pipeline's select step (top of the pool by ``spec``'s
    reward), after checking that its reward is the ``reward`` the caller measures with."""
    from dynacure.pipeline.select import SelectStep
    from dynacure.selectors.base import SelectionContext
    from dynacure.selectors.raft import RaftSelector

    raft = RaftSelector(weights=spec[0], columns=spec[1])
    sel = SelectStep(raft, SelectionContext(budget=cfg.budget, seed=cfg.seed)).run(policy_view(pool))
    if raft.last_reward is None or not np.allclose(raft.last_reward, reward, equal_nan=True):
        raise ValueError("static filter: the reward handed in is not the configured reward")
    return np.asarray(sel.keep, dtype=bool)


def static_filter(
    pool: pd.DataFrame, cfg: AdaptConfig, reward_a: np.ndarray, reward_b: np.ndarray, panel_idx: np.ndarray
) -> dict[str, Any]:
    """Top of the pool by reward A at the budget (RAFT, decided once through the select step ``dynacure
    curate`` uses): its panel metric is the same at every step, before and after the switch."""
    spec_a, spec_b = reward_specs(cfg)
    nt = pool["n_tokens"].to_numpy()
    keep = _raft_keep(pool, cfg, spec_a, reward_a)
    gold = pool["gold_toxic"].to_numpy()
    share = expected_share(keep[panel_idx].astype(float), nt[panel_idx], gold[panel_idx])
    total = cfg.steps_before + cfg.steps_after
    series = [share] * total
    oracle_b = _raft_keep(pool, cfg, spec_b, reward_b)
    return {
        "series": {"panel_toxic_share": series},
        "toxic_share_pool_selection": expected_share(keep.astype(float), nt, gold),
        "toxic_share_if_refit_on_b": expected_share(oracle_b.astype(float), nt, gold),
        "readaptation": readaptation_steps(series, cfg.steps_before, cfg.window, cfg.frac),
    }


# ---- transfer to a larger learner ------------------------------------------------------------------------


class _FrozenRandom:
    """Random selection at the budget (every candidate kept with probability = budget)."""

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return np.full(obs["candidates"].shape[0], self.budget)

    def observe(self, *args: Any) -> None:
        return None


class _Frozen:
    """A learned agent that acts but no longer learns (the transferred policy)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.agent.act(obs, info)

    def observe(self, *args: Any) -> None:
        return None


def _heldout_sets(cfg: AdaptConfig) -> tuple[list[str], list[str]]:
    """Clean and toxic held-out texts from another seed of the demo generator (not in the pool)."""
    from dynacure.io.demo_corpus import generate_demo_corpus

    docs = generate_demo_corpus(n_docs=400, toxic_share=0.3, low_quality_share=0.0, seed=cfg.seed + 10_007)
    clean = [d.text for d in docs if not d.meta.get("toxic")][:64]
    toxic = [d.text for d in docs if d.meta.get("toxic")][:64]
    return clean, toxic


def run_learner(
    pool: pd.DataFrame,
    cfg: AdaptConfig,
    preset: str,
    agent_kind: str,
    reward: np.ndarray,
    steps: int,
    heldout: tuple[list[str], list[str]],
    agent: Any = None,
    algorithm: str = "ppo",
) -> tuple[dict[str, Any], Any, Any]:
    """``steps`` loop steps with a fresh learner of ``preset``; ``agent_kind`` is ``learn`` (a fresh agent
    that learns), ``frozen`` (``agent`` applied without learning) or ``random``."""
    from dynacure.loop.trainer import make_agent

    view = policy_view(pool)
    gold = pool["gold_toxic"].to_numpy()
    lcfg = _loop_config(cfg, algorithm, steps, preset, cfg.seed)
    env = _make_env(view, gold, cfg, lcfg, reward, preset, cfg.seed)
    if agent_kind == "learn":
        actor = make_agent(env, lcfg)
    elif agent_kind == "frozen":
        if agent is None:
            raise ValueError("a frozen run needs the agent to apply")
        actor = _Frozen(agent)
    else:
        actor = _FrozenRandom(cfg.budget)
    obs, info = env.reset(seed=lcfg.seed)
    tox, losses = [], []
    t0 = time.perf_counter()
    for step in range(steps):
        probs = actor.act(obs, info)
        nxt, r, term, trunc, sinfo = env.step(probs)
        actor.observe(obs, sinfo, r, nxt, term or trunc or step + 1 >= steps)
        obs, info = nxt, {"rows": sinfo["next_rows"]}
        kept = sinfo["rows"][sinfo["mask"]]
        tox.append(float(gold[kept].mean()) if len(kept) else math.nan)
        losses.append(float(sinfo.get("loss", math.nan)))
    seconds = time.perf_counter() - t0
    clean, toxic = heldout
    learner = env.learner
    k = max(1, steps // 5)
    figures = {
        "learner": preset,
        "learner_params": int(learner.num_parameters()),
        "policy": agent_kind,
        "steps": steps,
        "toxic_share_selected": float(np.nanmean(tox)),
        "toxic_share_selected_last_fifth": float(np.nanmean(tox[-k:])),
        "train_loss_last_fifth": float(np.nanmean(losses[-k:])),
        "heldout_clean_loss": float(np.mean(learner.example_losses(clean))),
        "heldout_toxic_loss": float(np.mean(learner.example_losses(toxic))),
        "seconds": seconds,
    }
    return figures, actor, env


def run_transfer(
    pool: pd.DataFrame,
    cfg: AdaptConfig,
    reward_b: np.ndarray,
    source_agent: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Freeze a policy learned with the ``learner_preset`` learner (``source_agent``: the PPO agent of the
    switch run, which learned reward B after the switch; None: learn one here for ``transfer_steps``) and
    apply it with fresh learners of both sizes; compare with a policy learned from scratch on the larger
    learner and with random selection, all under reward B at the same budget and number of steps."""
    heldout = _heldout_sets(cfg)
    steps = cfg.transfer_steps
    small, large = cfg.learner_preset, cfg.transfer_to
    origin = "switch run" if source_agent is not None else f"{steps} steps"
    rows = []
    if source_agent is None:
        figs, source_agent, _ = run_learner(pool, cfg, small, "learn", reward_b, steps, heldout)
        figs["policy"] = f"learned on {small}"
        rows.append(figs)
    plan = [(small, "frozen"), (large, "frozen"), (large, "learn"), (large, "random"), (small, "random")]
    for i, (preset, kind) in enumerate(plan):
        if progress:
            progress(f"transfer: {preset} / {kind}", i, len(plan))
        figs, _, _ = run_learner(pool, cfg, preset, kind, reward_b, steps, heldout, agent=source_agent)
        figs["policy"] = {
            "learn": f"learned on {preset} from scratch",
            "random": "random",
            "frozen": f"learned on {small} ({origin}), frozen",
        }[kind]
        rows.append(figs)
    return {"learners": rows, "algorithm": "ppo", "steps": steps, "reward": "B", "source": origin}


# ---- the whole experiment --------------------------------------------------------------------------------


def run_adaptivity(cfg: AdaptConfig, out_dir: str | Path, progress: Progress | None = None) -> dict[str, Any]:
    """Run the switch experiment (every algorithm + the static filter) and the transfer; write
    ``OUT/adapt.json`` and ``OUT/adaptivity.png``; returns the result."""
    from dynacure.runinfo import seed_everything, write_run_info

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    pool = scored_demo_pool(cfg, out / "work")
    reward_a, reward_b, desc_a, desc_b = rewards(pool, cfg)
    rng = np.random.default_rng(cfg.seed + 17)
    panel_idx = np.sort(rng.choice(len(pool), size=min(cfg.panel_size, len(pool)), replace=False))
    runs = {}
    agents = {}
    for algo in cfg.algorithms:
        runs[algo] = run_switch(pool, cfg, algo, reward_a, reward_b, panel_idx, progress)
        agents[algo] = runs[algo].pop("agent")
    static = static_filter(pool, cfg, reward_a, reward_b, panel_idx)
    transfer = None
    if cfg.transfer and cfg.use_learner:
        transfer = run_transfer(pool, cfg, reward_b, agents.get("ppo"), progress)
    result = {
        "format_version": ADAPT_FORMAT_VERSION,
        "config": cfg.model_dump(),
        "switch": {"kind": cfg.switch, "at_step": cfg.steps_before, "reward_a": desc_a, "reward_b": desc_b},
        "pool": {
            "n_docs": len(pool),
            "toxic_share": float(pool["gold_toxic"].mean()),
            "panel_size": len(panel_idx),
        },
        "metric": "toxic share (gold label) of the policy's expected selection on a fixed panel, "
        "token-weighted",
        "policies": runs,
        "static_filter": static,
        "transfer": transfer,
        "seconds": time.perf_counter() - t0,
    }
    write_json_atomic(out / RESULT_FILE, _jsonable(result))
    plot_adaptivity(result, out / PLOT_FILE)
    write_run_info(out, "adapt", cfg.model_dump(), cfg.seed)
    return result


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


def read_result(path: str | Path) -> dict[str, Any]:
    """``adapt.json`` of a finished run (a folder or the file), with its format version checked."""
    p = Path(path)
    p = p / RESULT_FILE if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{p}: no adaptivity result (run `dynacure adapt --out DIR`)")
    return read_versioned(p, ADAPT_FORMAT_VERSION)


def plot_adaptivity(result: dict[str, Any], path: str | Path) -> Path:
    """The panel metric per step for every policy and the static filter, the switch and the measured
    re-adaptation point of each policy; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw = result["switch"]["at_step"]
    window = result["config"]["window"]
    fig, ax = plt.subplots(figsize=(8.0, 4.6))
    colors = plt.get_cmap("tab10")
    marks: list[tuple[int, str, int]] = []
    for i, (algo, run) in enumerate(result["policies"].items()):
        y = np.asarray([np.nan if v is None else v for v in run["series"]["panel_toxic_share"]], dtype=float)
        x = np.arange(1, len(y) + 1)
        ax.plot(x, y, color=colors(i), alpha=0.3, lw=1)
        ax.plot(
            x,
            moving_average(np.nan_to_num(y), window),
            color=colors(i),
            lw=2,
            label=f"learned policy ({algo})",
        )
        steps = run["readaptation"]["steps"]
        if steps is not None:
            ax.axvline(sw + steps, color=colors(i), ls=":", lw=1.2)
            marks.append((i, algo, steps))
    st = result["static_filter"]["series"]["panel_toxic_share"]
    ax.plot(np.arange(1, len(st) + 1), st, color="black", ls="--", lw=1.5, label="static filter (reward A)")
    lo, hi = ax.get_ylim()
    for k, (i, algo, steps) in enumerate(marks):  # stacked labels, so close re-adaptation points stay legible
        ax.text(
            sw + 2,
            hi - (0.3 + 0.07 * k) * (hi - lo),
            f"{algo}: re-adapted in {steps} steps",
            color=colors(i),
            fontsize=8,
            ha="left",
        )
    ax.axvline(sw + 0.5, color="grey", lw=1)
    ax.text(sw + 1, ax.get_ylim()[0], " reward switch", color="grey", fontsize=8, va="bottom")
    ax.set_xlabel("loop step")
    ax.set_ylabel("toxic share of the expected selection (lower is better under B)")
    ax.set_title(f"A: {result['switch']['reward_a']}\nB: {result['switch']['reward_b']}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return p
