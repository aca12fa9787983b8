"""The feedback preset's table for docs/results/README.md, from a finished RUNS folder's feedback.json.

    python docs/results/feedback/table.py [RUNS]      # default runs/feedback; copies feedback.json here
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

COLS = [
    ("toxicity/toxicity_probability", "toxicity probability", "{:.3f}"),
    ("toxicity/toxic_continuation_share", "toxic continuation share", "{:.3f}"),
    ("toxicity/mean_continuation_toxicity", "mean judge score", "{:.3f}"),
    ("domain_perplexity/word_perplexity_macro", "macro domain word ppl", "{:,.0f}"),
    ("perplexity/wikitext2_word_ppl", "WikiText-2 word ppl", "{:,.0f}"),
]


def fmt(v: float | None, f: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)


def main() -> None:
    runs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/feedback")
    s = json.loads((runs / "feedback.json").read_text())
    here = Path(__file__).parent
    shutil.copy(runs / "feedback.json", here / "transformer_summary.json")
    print("| strategy | " + " | ".join(c[1] for c in COLS) + " | kept gold-toxic share | expensive calls |")
    print("|---" * (len(COLS) + 3) + "|")
    for label, vals in s["values"].items():
        shares = [v for v in s["kept_gold_toxic_share"].get(label, {}).values() if v is not None]
        share = sum(shares) / len(shares) if shares else None
        calls = s["expensive_calls"].get(label)
        print(f"| {label} | " + " | ".join(fmt(vals.get(k), f) for k, _, f in COLS)
              + f" | {fmt(share, '{:.4f}')} | {fmt(calls, '{:,.0f}')} |")
    print()
    for role in ("loop", "off"):
        roles = s["roles"]
        print(f"gap closed by {roles[role]} (floor {roles['floor']}, ceiling {roles['ceiling']}):")
        for metric, g in s["gap_closed_by_metric"][role].items():
            if "refused" in g:
                print(f"  {metric}: refused ({g['refused']})")
                continue
            tag = "" if g.get("defined") else " (undefined: the ceiling is not better)"
            print(f"  {metric}: {g['value']:.2f} [{g['low']:.2f}, {g['high']:.2f}]{tag}; gap floor - ceiling "
                  f"{g['gap']:+.4g} [{g['gap_low']:+.4g}, {g['gap_high']:+.4g}]")
    print(f"data level, per seed: {[x if x is None else round(x, 2) for x in s['data_gap_closed_per_seed']]}")
    print(f"gap_closed {s['gap_closed']} {s['gap_closed_interval']} {s.get('gap_closed_reason', '')}, "
          f"expensive_call_share {s['expensive_call_share']:.4f}")


if __name__ == "__main__":
    main()
