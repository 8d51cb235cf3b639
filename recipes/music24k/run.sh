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

. "$(dirname "$0")/../train24k.sh" music24k music "$@"
