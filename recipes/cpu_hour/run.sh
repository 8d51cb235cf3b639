#!/usr/bin/env bash
# A 6 kbps codec from one hour of training on 2 CPU cores, compared with Opus.
#
#   bash recipes/cpu_hour/run.sh [DATA_DIR] [--stage 0] [--stop-stage 2] [--minutes 60]
#        [--manifests data/cpu_hour] [--exp exp/cpu_hour] [--overrides "k=v ..."]
#        [--voices data/held_out_voices]
#        [--install-audio true] [--conf recipes/cpu_hour/conf/cpu_hour.yaml]
#
# DATA_DIR: a folder of speech and music, one sub-folder per speaker or track under
# top-level folders such as speech/ and music/ (test files then come from speakers and
# tracks never seen in training). Without DATA_DIR the demo corpus is built and used
# (its Debian packages installed first when missing and allowed; --install-audio false).
# Stages (each skips what is already done; rerun to resume):
#   0  manifests (and the demo corpus when no DATA_DIR is given)
#   1  train the spectral preset for --minutes of wall-clock time
#   2  evaluate on the held-out test split at 1.5, 3 and 6 kbps beside Opus at the
#      same bitrates and at 12 kbps; print the comparison table, then where the level
#      goes at 6 kbps (per band and per frame loudness, eval.levels)
#   3  only when asked (--stage 3 --stop-stage 3): what decides between two runs, as
#      the test split must not: 1.5, 3 and 6 kbps beside Opus on the validation split
#      and on real voices the corpus leaves out, telephone-band and wide-band apart
#      (data_prep.held_out_voices, built in --voices when missing)
# Stages 2 and 3 install opus-tools when missing and allowed; without them they print
# the codec's rows and say that Opus was skipped.
set -euo pipefail

stage=0
stop_stage=2
minutes=60
manifests=data/cpu_hour
exp=exp/cpu_hour
overrides=
install_audio=true
conf="$(dirname "$0")/conf/cpu_hour.yaml"
voices=data/held_out_voices
. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"

if in_stage 0; then
  data=${1:-$manifests/audio}
  echo "== stage 0: manifests of $data in $manifests"
  [ -n "${1:-}" ] || demo_corpus "$data"
  prepare_manifests "$data" "$manifests"
fi

if in_stage 1; then
  echo "== stage 1: training $exp for $minutes min"
  train_for_minutes "$conf" "$exp" "$manifests" "$minutes"
fi

if in_stage 2; then
  echo "== stage 2: $exp against Opus on $manifests/test.jsonl"
  opus_tools
  [ -f "$exp/eval/summary.json" ] || python -m eval.evaluate --model "$exp" \
    --data "$manifests/test.jsonl" -o "$exp/eval" --kbps 1.5,3,6 --opus --threads 2
  python -m eval.versus_opus "$exp/eval"
  [ -f "$exp/eval/levels.json" ] || python -m eval.levels --model "$exp" \
    --data "$manifests/test.jsonl" --kbps 6 --threads 2 --json "$exp/eval/levels.json" \
    $(command -v opusenc >/dev/null && echo --opus) > "$exp/eval/levels.md"
  cat "$exp/eval/levels.md"
fi
if in_stage 3; then
  echo "== stage 3: $exp on $manifests/valid.jsonl and the held-out voices in $voices"
  opus_tools
  [ -f "$voices/wideband.jsonl" ] || python -m data_prep.held_out_voices "$voices" \
    --install-audio "$install_audio"
  score() {  # MANIFEST OUT: eval.evaluate once (a rerun keeps what it wrote), the table
    [ -f "$1" ] || { echo "(no $1: skipped)"; return 0; }
    [ -f "$2/summary.json" ] || python -m eval.evaluate --model "$exp" --data "$1" -o "$2" \
      --kbps 1.5,3,6 --opus --clips 0 --threads 2
    echo "-- $1"
    python -m eval.versus_opus "$2"
  }
  score "$manifests/valid.jsonl" "$exp/eval_valid"
  score "$voices/wideband.jsonl" "$exp/eval_wideband"
  score "$voices/telephone.jsonl" "$exp/eval_telephone"
fi
echo "TensorBoard: tensorboard --logdir $(dirname "$exp")/    model: $exp    report: $exp/eval/index.html"
