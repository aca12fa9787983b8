"""Per-candidate credit: PPO and REINFORCE reach RAFT's kept reward in the default run, in every seed.

The table's composite data reward separates two kinds of documents perfectly (clean 0.625-0.725, toxic
0.275-0.375, 30% toxic); the loop runs the default 64 steps of 32 candidates without a learner (the point
is the policy). RAFT is the top of the same reward at the same token budget (``selectors/raft.py``), on the
same candidate batches in the loop and on the whole table corpus-wide.

Measured with these defaults, in-loop kept reward / RAFT's over the last 16 steps: PPO 0.964-0.992 over
seeds 0-19, REINFORCE 0.966-0.988; with ``credit="step"`` (every candidate shares the step's advantage)
PPO 0.875-0.940 and REINFORCE 0.864-0.913 over seeds 0-4; the previous defaults (step credit, 8-step
rollouts, lr 1e-2) 0.874-0.964. The ceiling is below 1 because the exploration floor keeps a few toxic
documents in play and the Bernoulli masks keep a random subset of the clean ones where RAFT keeps the best.
Every step's expected keep rate stayed in [0.24, 0.81] around the 0.5 budget, the last 16 steps' mean in
[0.44, 0.56]; corpus-wide the selection's mean reward was >= 0.98 of RAFT's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynacure.loop.selectors import PPOSelector, ReinforceSelector
from dynacure.selectors.base import SelectionContext
from dynacure.selectors.raft import RaftSelector
from dynacure.selectors.reward import composite_reward

SEEDS = (0, 1, 2, 3, 4)
BUDGET = 0.5
TAIL = 16  # the last quarter of the default 64 steps
BAND = (0.1, 0.9)  # DVRL's keep-rate band: outside it the policy is collapsing to none / all
SELECTORS = {"ppo": PPOSelector, "reinforce": ReinforceSelector}


def separated_table(n: int = 600, seed: int = 0, toxic_share: float = 0.3) -> tuple[pd.DataFrame, np.ndarray]:
    """Two kinds whose composite reward (default weights 0.5/0.3/0.2) never overlaps; (table, toxic)."""
    rng = np.random.default_rng(seed + 555)
    toxic = rng.random(n) < toxic_share
    n_tokens = rng.integers(8, 40, n)
    table = pd.DataFrame(
        {
            "id": [f"d{i:05d}" for i in range(n)],
            "text": [" ".join(["word"] * int(k)) for k in n_tokens],
            "source": rng.choice(["web", "forum", "books"], n),
            "n_tokens": n_tokens,
            "toxicity_ngram__toxicity": np.where(toxic, rng.uniform(0.8, 0.9, n), rng.uniform(0.1, 0.2, n)),
            "alignment__score": rng.uniform(0.45, 0.55, n),
            "quality__score": rng.uniform(0.45, 0.55, n),
        }
    )
    return table, toxic


_RUNS: dict[str, tuple] = {}


def _select(alg: str, seed: int, **config):
    """One loop selection on the table of ``seed`` (cached: the ablation reuses the main test's runs)."""
    key = repr((alg, seed, sorted(config.items())))
    if key not in _RUNS:
        table, toxic = separated_table(seed=seed)
        selector = SELECTORS[alg](use_learner=False, use_pairs=False, **config)
        sel = selector.select(table, SelectionContext(budget=BUDGET, seed=seed))
        _RUNS[key] = (table, toxic, selector, sel)
    return _RUNS[key]


def _in_loop_ratio(history: list[dict]) -> float:
    tail = history[-TAIL:]
    return float(np.mean([h["kept_reward"] for h in tail]) / np.mean([h["raft_kept_reward"] for h in tail]))


def test_the_table_separates_the_two_kinds_perfectly():
    table, toxic = separated_table()
    r = composite_reward(table)
    assert r[~toxic].min() > r[toxic].max() + 0.2


@pytest.mark.parametrize("alg", ("ppo", "reinforce"))
def test_reaches_raft_kept_reward_in_every_seed_without_collapsing(alg):
    for seed in SEEDS:
        table, toxic, selector, sel = _select(alg, seed)
        hist = selector.history
        assert len(hist) == 64  # the default run length
        ratio = _in_loop_ratio(hist)
        assert ratio >= 0.95, f"{alg} seed {seed}: in-loop kept reward {ratio:.3f} of RAFT's"

        # corpus-wide: the learned policy's selection against RAFT's on the whole table, same budget
        reward = composite_reward(table)
        raft = RaftSelector().select(table, SelectionContext(budget=BUDGET, seed=seed))
        corpus = reward[sel.keep].mean() / reward[raft.keep].mean()
        assert corpus >= 0.95, f"{alg} seed {seed}: corpus kept reward {corpus:.3f} of RAFT's"
        nt = table["n_tokens"].to_numpy()
        assert nt[sel.keep].sum() <= BUDGET * nt.sum()
        assert toxic[sel.keep].mean() < 0.05

        # never collapses to all or none: every step inside the band, the end near the budget
        rates = np.array([h["expected_rate"] for h in hist])
        span = f"{rates.min():.2f}-{rates.max():.2f}"
        assert rates.min() >= BAND[0] and rates.max() <= BAND[1], f"{alg} seed {seed}: rates {span}"
        assert abs(rates[-TAIL:].mean() - BUDGET) < 0.1
        assert all(h["n_kept"] > 0 for h in hist)


@pytest.mark.parametrize("alg", ("ppo", "reinforce"))
def test_shared_step_credit_is_the_weaker_ablation(alg):
    """The same runs with every candidate sharing the step's advantage miss the target in some seed and
    fall clearly behind on average (measured: PPO 0.917 vs 0.979, REINFORCE 0.884 vs 0.978)."""
    step = [_in_loop_ratio(_select(alg, s, credit="step")[2].history) for s in SEEDS]
    cand = [_in_loop_ratio(_select(alg, s)[2].history) for s in SEEDS]
    assert min(step) < 0.95 and np.mean(cand) > np.mean(step) + 0.03, (step, cand)


def test_learned_candidate_critic_learns_the_kinds_apart():
    """The learned candidate baseline (``ppo.candidate_baseline = "critic"``) instead of the exact one."""
    table, toxic, selector, sel = _select("ppo", 0, ppo={"candidate_baseline": "critic"})
    assert _in_loop_ratio(selector.history) >= 0.9
    assert toxic[sel.keep].mean() < 0.05
    assert selector.learned_agent.cand_critic is not None
