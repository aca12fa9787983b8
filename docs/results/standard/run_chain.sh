#!/usr/bin/env bash
# The standard preset's whole chain on a fresh 2-core machine, in the order that fits one session: the reward
# scorers (the transformer fine-tune, ~27 min), the pre-trained base (~46 min at ~1,800 tokens/s), then the 50
# cells (-j 2). Every step resumes when re-run. Start it first thing, in the background:
#   nohup docs/results/standard/run_chain.sh > chain.log 2>&1 &
# then, when it is done: python docs/results/standard/targets.py runs/standard
set -euo pipefail
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export DYNACURE_HOME="${DYNACURE_HOME:-$HOME/.cache/dynacure}" DYNACURE_DATA="${DYNACURE_DATA:-$(cd .. && pwd)/shared/data}"
bin=.venv/bin
echo "scorers $(date)"
"$bin/dynacure" train-scorer --data-dir "$DYNACURE_DATA" --which ngram,judge,alignment,transformer
echo "base $(date)"
"$bin/dynacure" pretrain --data-dir "$DYNACURE_DATA" --threads 2
echo "standard $(date)"
"$bin/dynacure" experiment --preset standard --out runs/standard -j 2
echo "done $(date)"
