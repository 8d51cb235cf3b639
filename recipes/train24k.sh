# The stages of the 24 kHz speech and music recipes. Their run.sh (whose opening comment
# documents the options and stages, and is what --help shows) sources this file with the
# recipe's name and the kind of audio it codes before the user's arguments:
#   . "$(dirname "$0")/../train24k.sh" NAME speech|music "$@"

stage=0
stop_stage=2
conf=default
manifests=data/$1
exp=
overrides=
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"
. "$(dirname "${BASH_SOURCE[0]}")/stages.sh"
recipe=$1
kind=$2
shift 2
exp=${exp:-exp/${recipe}_$conf}
conf_file="$(dirname "$0")/conf/$conf.yaml"
[ -f "$conf_file" ] || { echo "$0: no $conf_file" >&2; exit 2; }

if in_stage 0; then
  echo "== stage 0: manifests of ${1:?give DATA_DIR, the folder of $kind files} in $manifests"
  prepare_manifests "$1" "$manifests"
fi

if in_stage 1; then
  echo "== stage 1: training $exp with $conf_file"
  train_codec "$conf_file" "$exp" "$manifests"
fi

if in_stage 2; then
  echo "== stage 2: evaluating $exp on $manifests/test.jsonl"
  if [ -f "$exp/eval/summary.json" ]; then
    echo "$exp/eval is done already"
  else
    python -m eval.evaluate --model "$exp" --data "$manifests/test.jsonl" -o "$exp/eval" \
      --kbps 1.5,3,6 --kind "$kind" --opus
  fi
fi
echo "TensorBoard: tensorboard --logdir $(dirname "$exp")/    model: $exp"
