#!/usr/bin/env bash
# Speech codec at 24 kHz: 6 kbps with all 8 codebooks, and quantiser dropout so that
# the same model serves 1.5 and 3 kbps (and down to one codebook, 0.75 kbps).
#
#   bash recipes/speech24k/run.sh DATA_DIR [--stage 0] [--stop-stage 2] [--conf default]
#        [--manifests data/speech24k] [--exp exp/speech24k_CONF] [--overrides "k=v ..."]
#
# DATA_DIR: a folder of speech files (any format soundfile reads, any rate), one
# sub-folder per speaker, so that valid and test speakers stay out of training.
# --conf: default (with an MS-STFT discriminator) or no_disc (reconstruction losses only).
# --overrides: extra `key=value` settings for training, e.g. "train.steps=1000".
# Stages (each skips what is already done; rerun to resume):
#   0  manifests: measure DATA_DIR and split it by speaker into train/valid/test
#   1  train with conf/CONF.yaml (a rerun resumes from the newest checkpoint)
#   2  evaluate the best checkpoint on the test set at 1.5, 3 and 6 kbps, and Opus
set -euo pipefail

. "$(dirname "$0")/../train24k.sh" speech24k speech "$@"
