"""The demo experiment: the whole loop on the built-in generated corpus, sized to finish in minutes on
2 CPU cores with nothing but the package installed (no ../shared/data, no downloads).

generate corpus -> score (profanity + quality + a demo-trained reward scorer) -> B0 random, B1 heuristic,
B2 classifier and a learned RL policy -> a nano learner per strategy at equal tokens -> toxicity probe with
a demo judge trained on disjoint generated data + perplexity on held-out clean generated text -> report.
"""

from __future__ import annotations

from typing import Any

from dynacure.experiments.config import ExperimentConfig, experiment_config_from_dict

# The learned policy's loop, kept small: the policy learns on a sample of the pool, then is applied to all.
POLICY_PARAMS: dict[str, dict[str, Any]] = {
    "ppo": {"steps": 96, "sample_size": 800, "probe_every": 8, "refine": False, "use_pairs": False},
    "bandit": {"steps": 96, "sample_size": 800, "probe_every": 8, "refine": False, "use_pairs": False},
}

# Sizes measured on 2 CPU cores (one torch thread): about 90 s of CPU for the whole demo. 150k learner
# tokens per strategy take held-out perplexity from ~1800 (20k tokens) to ~40, so the strategies' models
# differ by their data rather than by noise; 50 prompts x 8 samples give toxicity intervals of about
# +/-0.1; 48 policy steps left the PPO policy keeping a third of the toxic documents, 96 drop them all.
DEMO_DOCS = 2000
DEMO_TOKENS = 150_000


def demo_config(n_docs: int = DEMO_DOCS, policy: str = "ppo", seed: int = 0, max_tokens: int = DEMO_TOKENS,
                prompts: int = 50, samples: int = 8, policy_steps: int | None = None) -> ExperimentConfig:
    """The demo experiment; ``policy_steps`` overrides the policy's loop steps (default in POLICY_PARAMS)."""
    if policy not in POLICY_PARAMS:
        raise ValueError(f"demo policy must be one of {sorted(POLICY_PARAMS)}, not {policy!r}")
    pparams = dict(POLICY_PARAMS[policy])
    if policy_steps is not None:
        pparams["steps"] = policy_steps
    data = {
        "name": "demo",
        "seeds": [seed],
        "budgets": [0.5],
        "target_size": 100,
        "workers": 1,
        "corpus": {"kind": "demo", "demo": {"n_docs": n_docs, "toxic_share": 0.15, "low_quality_share": 0.2,
                                            "seed": seed}},
        "scoring": {"signals": ["profanity", "quality", "toxicity_ngram"], "demo_models": True},
        "strategies": [
            {"name": "random", "label": "B0 random"},
            {"name": "heuristic", "label": "B1 heuristic"},
            {"name": "classifier", "label": "B2 classifier"},
            {"name": policy, "label": f"RL {policy}", "params": pparams},
        ],
        "weights": [{"name": "safety-first", "safety": 0.7, "alignment": 0.0, "utility": 0.3}],
        "learner": {"preset": "nano", "max_tokens": max_tokens},
        "evaluation": {"suites": ["toxicity", "perplexity"], "max_prompts": prompts, "samples": samples,
                       "max_new_tokens": 16},
    }
    return experiment_config_from_dict(data, origin="demo")


def smoke_config(n_docs: int = 240, strategies: tuple[str, ...] = ("random", "heuristic"),
                 max_tokens: int = 2000) -> ExperimentConfig:
    """The smallest real experiment (seconds on one core): used by the tests and the browser check."""
    data = {
        "name": "smoke",
        "seeds": [0],
        "budgets": [0.5],
        "target_size": 20,
        "workers": 1,
        "corpus": {"kind": "demo", "demo": {"n_docs": n_docs, "toxic_share": 0.2, "low_quality_share": 0.2,
                                            "seed": 0}},
        "scoring": {"signals": ["profanity", "quality", "toxicity_ngram"], "demo_models": True},
        "strategies": [{"name": s, **({"params": {"steps": 8, "sample_size": 120, "probe_every": 4,
                                                  "refine": False, "use_pairs": False, "candidates": 16,
                                                  "train_batch": 8}}
                                      if s in POLICY_PARAMS else {})} for s in strategies],
        "weights": [{"name": "safety-first", "safety": 0.7, "alignment": 0.0, "utility": 0.3}],
        "learner": {"preset": "nano", "max_tokens": max_tokens},
        "evaluation": {"suites": ["toxicity", "perplexity"], "max_prompts": 4, "samples": 2,
                       "max_new_tokens": 8, "options": {"perplexity": {"max_tokens": 1500}}},
    }
    return experiment_config_from_dict(data, origin="smoke")
