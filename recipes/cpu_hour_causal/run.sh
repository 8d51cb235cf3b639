#!/usr/bin/env bash
# The CPU-hour recipe (recipes/cpu_hour) with the live model, for streaming: the same
# data, manifests, budget and evaluation against Opus, so that its quality sits beside
# the non-causal model's on the same test split.
#
#   bash recipes/cpu_hour_causal/run.sh [DATA_DIR] [--stage 0] [--stop-stage 2]
#        [--minutes 60] [--manifests data/cpu_hour] [--exp exp/cpu_hour_causal]
#        [--overrides "k=v ..."]
#
# Stages (each skips what is already done; rerun to resume):
#   0  manifests (and the demo corpus when no DATA_DIR is given), shared with cpu_hour
#   1  train the live preset (causal, 16.7 ms) for --minutes of wall-clock time
#   2  evaluate on the held-out test split beside Opus; print the comparison table
set -euo pipefail

for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,/^set /p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
  esac
done
here="$(dirname "$0")"
# Later options win, so --exp and --conf given here can still be overridden by the caller.
exec bash "$here/../cpu_hour/run.sh" --exp exp/cpu_hour_causal \
  --conf "$here/conf/cpu_hour_causal.yaml" "$@"
