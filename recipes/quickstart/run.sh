#!/usr/bin/env bash
# Quickstart: a demo corpus, the small codec trained on CPU for a few minutes, and a
# test clip coded through the compressed format. About 10 minutes on 2 CPU cores.
#
#   bash recipes/quickstart/run.sh [--stage 0] [--stop-stage 2] [--data data/demo]
#                                  [--exp exp/quickstart] [--minutes 8] [--overrides "k=v ..."]
#                                  [--install-audio true]
#
# Stages (each skips what is already done; rerun to resume):
#   0  demo corpus (real voices, music, sounds from Debian packages, installed with apt-get
#      when missing and allowed; --install-audio false skips that) and the manifests
#   1  train the small preset for --minutes of wall-clock time (resumes if interrupted)
#   2  encode and decode a test clip at 6 kbps; print SNR and RMS ratio
set -euo pipefail

stage=0
stop_stage=2
data=data/demo
exp=exp/quickstart
minutes=8
overrides=
install_audio=true
. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"
conf="$(dirname "$0")/conf/quickstart.yaml"

if in_stage 0; then
  echo "== stage 0: demo corpus and manifests in $data"
  demo_corpus "$data/audio"
  prepare_manifests "$data/audio" "$data"
fi

if in_stage 1; then
  echo "== stage 1: training the small model for $minutes min in $exp"
  train_for_minutes "$conf" "$exp" "$data" "$minutes"
fi

if in_stage 2; then
  echo "== stage 2: a test clip through the codec at 6 kbps"
  out="$exp/roundtrip"
  mkdir -p "$out"
  clip=$(python -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["path"])' \
    "$data/test.jsonl")
  python -m codec encode "$clip" -o "$out/clip.qca" --model "$exp" --kbps 6
  python -m codec decode "$out/clip.qca" -o "$out/decoded.wav"
  echo "original: $clip"
  echo "decoded:  $out/decoded.wav"
  python -m eval.compare "$clip" "$out/decoded.wav"
fi

echo "TensorBoard: tensorboard --logdir $(dirname "$exp")/    model: $exp (codec encode --model $exp)"
