#!/usr/bin/env bash
# Music codec at 24 kHz: 6 kbps with all 8 codebooks, and quantiser dropout so that
# the same model serves 1.5 and 3 kbps (and down to one codebook, 0.75 kbps).
#
#   bash recipes/music24k/run.sh DATA_DIR [--stage 0] [--stop-stage 2] [--conf default]
#        [--manifests data/music24k] [--exp exp/music24k_CONF] [--overrides "k=v ..."]
#
# DATA_DIR: a folder of music files (any format soundfile reads, any rate), one
# sub-folder per album or artist, so that valid and test music stays out of training.
# --conf: default (MS-STFT and multi-period discriminators) or no_disc (reconstruction
#   losses only).
# --overrides: extra `key=value` settings for training, e.g. "train.steps=1000".
# Stages (each skips what is already done; rerun to resume):
#   0  manifests: measure DATA_DIR and split it by folder into train/valid/test
#   1  train with conf/CONF.yaml (a rerun resumes from the newest checkpoint)
#   2  evaluate the best checkpoint on the test set at 1.5, 3 and 6 kbps, and Opus
set -euo pipefail

stage=0
stop_stage=2
conf=default
manifests=data/music24k
exp=
overrides=
. "$(dirname "$0")/../parse_options.sh"
exp=${exp:-exp/music24k_$conf}
conf_file="$(dirname "$0")/conf/$conf.yaml"
[ -f "$conf_file" ] || { echo "$0: no $conf_file" >&2; exit 2; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "== stage 0: manifests of ${1:?give DATA_DIR, the folder of music files} in $manifests"
  [ -f "$manifests/test.jsonl" ] || python -m data_prep.manifest "$1" -o "$manifests"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: training $exp with $conf_file"
  # shellcheck disable=SC2086  # overrides are words on purpose
  python -m codec.train "$conf_file" run_dir="$exp" "data.train=[$manifests/train.jsonl]" \
    data.valid="$manifests/valid.jsonl" $overrides
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: evaluating $exp on $manifests/test.jsonl"
  if [ -f "$exp/eval/summary.json" ]; then
    echo "$exp/eval is done already"
  else
    python -m eval.evaluate --model "$exp" --data "$manifests/test.jsonl" -o "$exp/eval" \
      --kbps 1.5,3,6 --kind music --opus
  fi
fi
echo "TensorBoard: tensorboard --logdir $(dirname "$exp")/    model: $exp"
