#!/usr/bin/env bash
# A 44.1 kHz stereo music codec from one hour of training on 2 CPU cores, against Opus
# stereo at the same bitrates and at twice them.
#
#   bash recipes/music44k_stereo/run.sh [DATA_DIR] [--stage 0] [--stop-stage 2]
#        [--minutes 60] [--manifests data/music44k_stereo] [--exp exp/music44k_stereo]
#        [--overrides "k=v ..."] [--kbps 6,12] [--corpus-minutes 25]
#        [--install-audio true] [--conf recipes/music44k_stereo/conf/music44k_stereo.yaml]
#
# DATA_DIR: a folder of music at its own rate and channels, one sub-folder per track or
# album (test files then come from tracks never seen in training); mono files are coded
# with both channels alike. Without DATA_DIR the demo corpus's music is built at its
# native rate and channels (Debian's game music, 44.1 kHz stereo; its packages installed
# first when missing and allowed; --install-audio false).
# Stages (each skips what is already done; rerun to resume):
#   0  manifests (and the demo corpus's music, --corpus-minutes long, when no DATA_DIR)
#   1  train the spectral44k preset (mid/side stereo) for --minutes of wall-clock time
#   2  evaluate on the held-out test split at --kbps beside Opus stereo at the same
#      bitrates and at twice them; print the table with the files' actual kbps, SNR, mel
#      distance, each channel's RMS ratio and the inter-channel level difference error
#   3  only when asked (--stage 3 --stop-stage 3): the same on the validation split,
#      the figures to choose between two runs by (the test split only reports)
# Stages 2 and 3 install opus-tools when missing and allowed; without them they print
# the codec's rows and say that Opus was skipped.
set -euo pipefail

stage=0
stop_stage=2
minutes=60
manifests=data/music44k_stereo
exp=exp/music44k_stereo
overrides=
kbps=6,12
corpus_minutes=25
install_audio=true
conf="$(dirname "$0")/conf/music44k_stereo.yaml"
. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"

# score MANIFEST OUT: eval.evaluate once (a rerun keeps what it wrote), then the table.
score() {
  opus_tools
  [ -f "$2/summary.json" ] || python -m eval.evaluate --model "$exp" --data "$1" -o "$2" \
    --kbps "$kbps" --opus --opus-twice --threads 2
  python -m eval.stereo_table "$2"
}

if in_stage 0; then
  data=${1:-$manifests/audio}
  echo "== stage 0: manifests of $data in $manifests"
  if [ -z "${1:-}" ]; then
    corpus=(--music-only --native --minutes "$corpus_minutes")
    [ "$install_audio" = true ] && corpus+=(--install)
    python -m data_prep.demo_corpus "$data" "${corpus[@]}"
  fi
  prepare_manifests "$data" "$manifests"
fi

if in_stage 1; then
  echo "== stage 1: training $exp for $minutes min"
  train_for_minutes "$conf" "$exp" "$manifests" "$minutes"
fi

if in_stage 2; then
  echo "== stage 2: $exp against Opus stereo on $manifests/test.jsonl"
  score "$manifests/test.jsonl" "$exp/eval"
fi

if in_stage 3; then
  echo "== stage 3: $exp against Opus stereo on $manifests/valid.jsonl"
  score "$manifests/valid.jsonl" "$exp/eval_valid"
fi
echo "TensorBoard: tensorboard --logdir $(dirname "$exp")/    model: $exp    report: $exp/eval/index.html"
