"""Side by side: what the standard selections keep with the n-gram vs the transformer reward scorer.

Reads the two curation-only runs' composition.json and audit.json (this folder's ngram/ and transformer/, or
the RUNS folders given) and prints, per strategy, the gold-toxic share of kept documents, the kept tokens of
the social-media and dialogue sources, and the mean removal ratio over seeds of the groups the audit flags.

    python docs/results/reward_scorer/compare.py [NGRAM_RUNS TRANSFORMER_RUNS]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

GROUPS = ("aae_markers", "immigrants", "lgbtq", "women", "muslim")
SOCIAL = ("davidson", "tweeteval_hate", "tweeteval_offensive", "jigsaw")


def summary(folder: Path) -> dict[str, dict[str, float]]:
    comp = json.loads((folder / "composition.json").read_text())["rows"]
    audit = json.loads((folder / "audit.json").read_text())["results"]
    out: dict[str, dict[str, float]] = {}
    for r in comp:
        s = out.setdefault(r["strategy"], {"social_tokens": 0.0, "dialogue_tokens": 0.0})
        if r["source"] == "(all)":
            s["toxic_share"] = r["kept_toxic_share"]
        elif r["source"] in SOCIAL:
            s["social_tokens"] += r["kept_tokens"]
        elif r["source"].startswith("hh_rlhf"):
            s["dialogue_tokens"] += r["kept_tokens"]
    for strategy in out:
        for g in GROUPS:
            ratios = [grp["ratio"] for cell, res in audit.items() if cell.split("__")[0] == strategy
                      for grp in res["groups"] if grp["group"] == g]
            out[strategy][f"removal_{g}"] = statistics.mean(ratios) if ratios else float("nan")
    return out


def main() -> None:
    here = Path(__file__).parent
    a, b = here / "ngram", here / "transformer"
    if len(sys.argv) == 3:
        a, b = Path(sys.argv[1]), Path(sys.argv[2])
    sa, sb = summary(a), summary(b)
    cols = ["toxic_share", "social_tokens", "dialogue_tokens"] + [f"removal_{g}" for g in GROUPS]
    print("| strategy | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for strategy in sorted(sa):
        cells = []
        for c in cols:
            x, y = sa[strategy].get(c, float("nan")), sb.get(strategy, {}).get(c, float("nan"))
            fmt = "{:.3f}" if c == "toxic_share" or c.startswith("removal") else "{:,.0f}"
            cells.append(f"{fmt.format(x)} -> {fmt.format(y)}")
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    (here / "summary.json").write_text(json.dumps({"ngram": sa, "transformer": sb}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
