"""Efficiency figures of a run: wall-clock timers and FLOP estimates for training and for curation.

FLOP estimates follow the usual dense-transformer rule (Kaplan et al. 2020): a forward pass costs about
``2 * N`` FLOPs per token and a training step (forward + backward) about ``6 * N`` per token, with ``N`` the
parameter count. Token counts are whitespace tokens (the one budget unit of dynacure) capped at the
learner's context, so the figures are estimates to compare strategies with, not hardware counters.

Curation FLOPs are the model work spent *deciding* what to keep:

- learned policies (``ppo``/``reinforce``/``bandit``): training the loop's own small GPT while the policy
  learns, plus the probes' forward passes (generations and held-out losses) every ``probe_every`` steps;
  the policy network itself is a few thousand parameters and is counted too, though it is negligible;
- CoLoR-Filter and ICA: the token positions their models actually ran, counted by the learner
  (``positions_trained``: training the prior when it is trained for the selection, fine-tuning CoLoR's
  conditional model; ``positions_forwarded``: the scoring passes, context positions included);
- strategies that only read stored scores (random, heuristic, classifier, RAFT, DSIR): NaN, their cost is
  the scoring pass, timed separately as ``time_scoring_s``.

Expensive-scorer figures (``expensive_calls``, ``expensive_flops``; ``loop/feedback.py``) count what was
spent, so a strategy that makes no call spent 0, not an unknown amount: ``expensive_figures`` gives 0 for
them and NaN only for a counter that a strategy kept but could not fill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dynacure.selectors.base import Selector

# Selector kinds whose selection is a rule over stored scores: nothing is learned while selecting.
LEARNS_NOTHING = frozenset({"rule", "score"})
POLICY_FEATURES_GUESS = 24  # feature + summary width of a loop policy, for its (negligible) FLOPs


def train_flops(n_params: float, tokens: float) -> float:
    """Training FLOPs: 6 x parameters x tokens (forward + backward)."""
    return 6.0 * float(n_params) * float(tokens)


def forward_flops(n_params: float, tokens: float) -> float:
    """Inference FLOPs: 2 x parameters x tokens."""
    return 2.0 * float(n_params) * float(tokens)


def gpt_params(vocab_size: int, n_ctx: int, d_model: int, n_layer: int, mlp_ratio: int = 4) -> float:
    """Parameters of a GPT block stack: token + position embeddings plus, per layer, attention (4 d^2) and
    MLP (2 * mlp_ratio * d^2) weights; biases and norms are left out (well under 1% here)."""
    per_layer = (4 + 2 * mlp_ratio) * d_model * d_model
    return float(vocab_size * d_model + n_ctx * d_model + n_layer * per_layer)


def preset_params(preset: str) -> float:
    """Parameter estimate of a TinyGPT preset from its dimensions."""
    from dynacure.learners.presets import get_preset

    c = get_preset(preset)
    return gpt_params(c.vocab_size, c.n_ctx, c.d_model, c.n_layer, c.mlp_ratio)


def preset_context(preset: str) -> int:
    from dynacure.learners.presets import get_preset

    return int(get_preset(preset).n_ctx)


def capped_tokens(n_tokens: np.ndarray | list[float], n_ctx: int) -> np.ndarray:
    """Token counts as a learner of context ``n_ctx`` sees them (longer documents are truncated)."""
    return np.minimum(np.asarray(n_tokens, dtype=np.float64), float(n_ctx))


def policy_params(hidden: int, features: int = POLICY_FEATURES_GUESS) -> float:
    """Actor (two hidden layers) + critic of the loop's selection policy."""
    return float(features * hidden + hidden * hidden + hidden + features * hidden + hidden)


def loop_flops(
    config: Any,
    n_tokens: np.ndarray,
    n_docs_applied: int | None = None,
    use_learner: bool = True,
    learns: bool = True,
) -> dict[str, float]:
    """Curation FLOPs of a loop policy (``config``: a ``LoopConfig``) learned on a pool with token counts
    ``n_tokens`` and applied to ``n_docs_applied`` documents. Returns the parts and their ``total``."""
    n_docs_applied = len(n_tokens) if n_docs_applied is None else n_docs_applied
    parts = {"learner_training": 0.0, "probes": 0.0, "policy": 0.0}
    if learns and use_learner:
        n = preset_params(config.learner_preset)
        ctx = preset_context(config.learner_preset)
        mean_len = float(capped_tokens(n_tokens, ctx).mean()) if len(n_tokens) else 0.0
        parts["learner_training"] = train_flops(
            n, config.steps * config.learner_steps * config.train_batch * mean_len
        )
        pc = config.probes
        probes_run = config.steps // config.probe_every + 1  # + the measurement at reset
        gen_tokens = pc.n_prompts * pc.samples_per_prompt * (pc.prompt_words + pc.max_new_tokens)
        held_tokens = pc.n_heldout * mean_len + 2 * pc.n_pairs * mean_len
        parts["probes"] = probes_run * forward_flops(n, gen_tokens + held_tokens)
    pp = policy_params(config.hidden)
    if learns:
        # every step: forward over the candidates, and PPO/REINFORCE updates (~3x forward) on them
        parts["policy"] += config.steps * config.candidates * train_flops(pp, 1)
    parts["policy"] += forward_flops(pp, n_docs_applied)
    parts["total"] = float(sum(parts.values()))
    return parts


def model_work_flops(cost: dict[str, float] | None) -> float:
    """FLOPs of the positions a model-aware selector actually ran (``selectors.models.model_cost``)."""
    if not cost:
        return math.nan
    n = cost["params"]
    return forward_flops(n, cost["forward_positions"]) + train_flops(n, cost["train_positions"])


def curation_flops(strategy: str, selector: Selector, n_tokens: np.ndarray) -> float:
    """Curation FLOPs of one selection by ``selector`` (registry name ``strategy``), by its ``kind``: NaN
    for rules and rankings over stored scores."""
    del strategy  # the selector's own traits say what it ran
    n_tokens = np.asarray(n_tokens, dtype=np.float64)
    if selector.kind == "loop":
        cfg = selector.config
        if cfg is None:
            return math.nan
        learns = selector.policy_path is None
        sample = n_tokens[: min(len(n_tokens), int(cfg.sample_size))]
        return loop_flops(cfg, sample, len(n_tokens), selector.use_learner, learns)["total"]
    if selector.kind == "model":
        return model_work_flops(selector.cost)
    return math.nan


def expensive_figures(expensive: dict[str, Any] | None) -> dict[str, float]:
    """``expensive_calls`` and ``expensive_flops`` of one selection from its counter (``sel.expensive``):
    0 and 0 when the strategy made no expensive call (no counter, or a counter without the figure)."""
    got = expensive or {}
    out = {}
    for key, name in (("calls", "expensive_calls"), ("flops", "expensive_flops")):
        v = got.get(key)
        out[name] = 0.0 if v is None else float(v)
    return out


class Timer:
    """Accumulating wall-clock timer: ``with timer: ...`` adds the block's seconds to ``timer.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._t0: float | None = None

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._t0 is not None
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1
        self._t0 = None


def time_method(obj: Any, name: str) -> Timer:
    """Time every call of ``obj.<name>`` from now on (the instance attribute shadows the class method), so
    a caller can split a selector's wall-clock into policy learning and applying without changing it."""
    timer = Timer()
    method: Callable[..., Any] | None = getattr(obj, name, None)
    if not callable(method):
        return timer

    def timed(*args: Any, **kwargs: Any) -> Any:
        with timer:
            return method(*args, **kwargs)

    setattr(obj, name, timed)
    return timer


def split_selection_time(strategy: str, total_s: float, learning: Timer) -> dict[str, float]:
    """``time_policy_learning_s`` and ``time_policy_apply_s`` of one selection that took ``total_s``.

    Loop policies: time inside ``learn`` vs the rest (applying the policy to the pool and the budget).
    Rule-based strategies learn nothing (0 s learning). CoLoR/ICA fit models while scoring, so the split is
    not measured (NaN) and the whole time is in ``time_selection_s``."""
    from dynacure.pipeline.strategies import selector_class

    kind = selector_class(strategy).kind
    if kind == "loop":
        return {
            "time_policy_learning_s": learning.seconds,
            "time_policy_apply_s": max(0.0, total_s - learning.seconds),
        }
    if kind in LEARNS_NOTHING:
        return {"time_policy_learning_s": 0.0, "time_policy_apply_s": total_s}
    return {"time_policy_learning_s": math.nan, "time_policy_apply_s": math.nan}
