# Sourced by the recipes' run.sh after parse_options.sh: the steps they share. They read
# the options `stage`, `stop_stage` and `overrides` that the script defined.

# in_stage N: whether stage N lies within --stage .. --stop-stage.
in_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

# demo_corpus DIR: build the demo corpus in DIR. With --install-audio true (the default)
# the Debian packages of real voices and music it is made from are installed first when
# apt-get may run here; without them it is synthetic, and says so loudly.
demo_corpus() {
  if [ "${install_audio:-true}" = true ]; then
    python -m data_prep.demo_corpus "$1" --install
  else
    python -m data_prep.demo_corpus "$1"
  fi
}

# opus_tools: install opus-tools (the Opus baseline) when missing and --install-audio
# allows; evaluation without them prints the codec's table and says Opus was skipped.
opus_tools() {
  if [ "${install_audio:-true}" = true ] && ! command -v opusenc >/dev/null; then
    python -m data_prep.debian opus-tools --what "the Opus baseline"
  fi
}

# prepare_manifests AUDIO_DIR OUT_DIR: measure and split AUDIO_DIR into
# OUT_DIR/{train,valid,test}.jsonl, unless that was done already.
prepare_manifests() {
  [ -f "$2/test.jsonl" ] || python -m data_prep.manifest "$1" -o "$2"
}

# train_codec CONF EXP MANIFESTS [key=value ...]: train the run EXP with CONF on
# MANIFESTS/train.jsonl, validating on MANIFESTS/valid.jsonl; a rerun resumes it.
# --overrides come last, so that they win.
train_codec() {
  local conf=$1 exp=$2 manifests=$3
  shift 3
  # shellcheck disable=SC2086  # overrides are words on purpose
  python -m codec.train "$conf" run_dir="$exp" "data.train=[$manifests/train.jsonl]" \
    data.valid="$manifests/valid.jsonl" "$@" $overrides
}

# train_for_minutes CONF EXP MANIFESTS MINUTES [key=value ...]: train_codec with a
# wall-clock budget.
# A rerun after a kill resumes and spends only what is left of the budget (checkpoints
# carry the time spent); EXP/.done marks a finished run, which is then left alone.
train_for_minutes() {
  if [ -f "$2/.done" ]; then
    echo "$2 is trained already (delete $2/.done to train it further)"
  else
    train_codec "$1" "$2" "$3" train.max_minutes="$4" "${@:5}"
    touch "$2/.done"
  fi
}
