"""The standard preset's figures against the targets of issues 16 (item 4) and 18 (done criteria).

Reads a finished standard RUNS folder (default: runs/standard) and prints each target with its figure,
per seed where the target is per seed; writes targets.json beside this script.

    python docs/results/standard/targets.py [RUNS]
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from dynacure.experiments.paired import load_cells, paired_difference
from dynacure.stats import Units

TOX = ("toxicity", "toxicity_probability")
TOX_SHARE = ("toxicity", "toxic_continuation_share")
MACRO = ("domain_perplexity", "word_perplexity_macro")
TWEETS = ("domain_perplexity", "word_perplexity_tweets")
WIKI = ("perplexity", "wikitext2_word_ppl")


def main() -> None:
    runs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/standard")
    by: dict[str, dict[int, object]] = defaultdict(dict)
    for c in load_cells(runs):
        by[c.strategy][c.seed] = c

    def val(label: str, key: tuple[str, str]) -> dict[int, float]:
        return {s: c.values.get(key, math.nan) for s, c in sorted(by[label].items())}  # type: ignore[attr-defined]

    def paired(a: str, b: str, key: tuple[str, str]) -> dict[str, float]:
        seeds = sorted(set(by[a]) & set(by[b]))
        d = paired_difference([(Units.from_dict(by[a][s].units[key]),  # type: ignore[attr-defined]
                                Units.from_dict(by[b][s].units[key])) for s in seeds])  # type: ignore[attr-defined]
        return {"diff": d.diff, "low": d.low, "high": d.high, "n_seeds": d.n_seeds}

    out: dict[str, object] = {"runs": str(runs), "seeds": {k: sorted(v) for k, v in by.items()}}
    ppo, rnd, heu = val("ppo", TOX), val("random", TOX), val("heuristic", TOX)
    per_seed = {s: {"ppo": ppo[s], "random": rnd.get(s), "heuristic": heu.get(s),
                    "le_0.8_random": ppo[s] <= 0.8 * rnd.get(s, math.nan),
                    "le_0.6_heuristic": ppo[s] <= 0.6 * heu.get(s, math.nan)} for s in ppo}
    macro_ppo, macro_rnd = val("ppo", MACRO), val("random", MACRO)
    utility = {s: macro_ppo[s] / macro_rnd[s] - 1 for s in macro_ppo if s in macro_rnd}
    tox_values = list(ppo.values())
    out["issue16_item4"] = {
        "ppo_toxicity_per_seed": per_seed,
        "every_seed_le_0.8_random": all(v["le_0.8_random"] for v in per_seed.values()),
        "every_seed_le_0.6_heuristic": all(v["le_0.6_heuristic"] for v in per_seed.values()),
        "macro_ppl_ppo_over_random_minus_1_per_seed": utility,
        "macro_ppl_ppo_vs_random_paired": paired("ppo", "random", MACRO),
        "ppo_minus_raft_toxicity_paired": paired("ppo", "raft", TOX),
        "ppo_minus_raft_toxic_share_paired": paired("ppo", "raft", TOX_SHARE),
        "ppo_toxicity_spread": max(tox_values) - min(tox_values),
        "ppo_toxicity_sd": statistics.stdev(tox_values) if len(tox_values) > 1 else math.nan,
    }
    out["issue18"] = {
        "wikitext2_word_ppl_by_strategy": {lab: statistics.mean(val(lab, WIKI).values())
                                           for lab in sorted(by)},
        "max_wikitext2_word_ppl": max(max(val(lab, WIKI).values()) for lab in by),
        "source_filter_minus_random_tweets_paired": paired("source_filter", "random", TWEETS),
        "random_toxicity_probability": statistics.mean(rnd.values()),
    }
    text = json.dumps(out, indent=1, sort_keys=True, default=str)
    print(text)
    (Path(__file__).parent / "targets.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
