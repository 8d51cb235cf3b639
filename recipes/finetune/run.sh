#!/usr/bin/env bash
# Fine-tuning: adapt a model trained on the mixed demo corpus to one domain (music, or
# one voice) for a fixed number of minutes, and compare it on that domain's held-out
# files with the model before fine-tuning and with one trained from scratch for the
# same minutes.
#
#   bash recipes/finetune/run.sh [--stage 0] [--stop-stage 3] [--source exp/quickstart]
#        [--data data/demo] [--group music] [--minutes 5] [--exp exp/finetune]
#        [--kbps 1.5,3,6] [--overrides "k=v ..."]
#        [--conf recipes/finetune/conf/finetune.yaml]
#        [--scratch-conf recipes/quickstart/conf/quickstart.yaml]
#
# --source: the model to start from (run dir, checkpoint or exported file); by default
# the quickstart's (bash recipes/quickstart/run.sh), trained on --data's manifests.
# --group: the domain, a group prefix of --data's manifests: music, or one voice such
# as speech/VOICE (a voice from the test split was never heard by the source).
# --conf: the fine-tuning config; --scratch-conf: the config --source was trained with,
# for the run from scratch. For a source from recipes/cpu_hour, pass
# --conf recipes/finetune/conf/finetune_cpu_hour.yaml
# --scratch-conf recipes/cpu_hour/conf/cpu_hour.yaml.
# Stages (each skips what is already done; rerun to resume):
#   0  the domain's train/valid/test manifests (data_prep.domain) in EXP/data
#   1  fine-tune --source on the domain for --minutes (EXP/finetuned)
#   2  train from scratch on the domain for the same minutes (EXP/scratch)
#   3  evaluate before / fine-tuned / scratch on the domain's test files; print the table
set -euo pipefail

stage=0
stop_stage=3
source=exp/quickstart
data=data/demo
group=music
minutes=5
exp=exp/finetune
kbps=1.5,3,6
overrides=
conf="$(dirname "$0")/conf/finetune.yaml"
scratch_conf="$(dirname "$0")/../quickstart/conf/quickstart.yaml"  # how --source was trained
. "$(dirname "$0")/../parse_options.sh"
. "$(dirname "$0")/../stages.sh"

if in_stage 0; then
  echo "== stage 0: $group of $data in $exp/data"
  [ -f "$exp/data/test.jsonl" ] || python -m data_prep.domain "$data" "$exp/data" --group "$group"
fi

if in_stage 1; then
  echo "== stage 1: fine-tuning $source on $group for $minutes min in $exp/finetuned"
  train_for_minutes "$conf" "$exp/finetuned" "$exp/data" "$minutes" train.init_from="$source"
fi

if in_stage 2; then
  echo "== stage 2: training from scratch on $group for $minutes min in $exp/scratch"
  train_for_minutes "$scratch_conf" "$exp/scratch" "$exp/data" "$minutes"
fi

if in_stage 3; then
  echo "== stage 3: the three models on $exp/data/test.jsonl"
  for name in before finetuned scratch; do
    model=$exp/$name
    [ "$name" = before ] && model=$source
    [ -f "$exp/eval/$name/summary.json" ] || python -m eval.evaluate --model "$model" \
      --data "$exp/data/test.jsonl" -o "$exp/eval/$name" --kbps "$kbps" --clips 0
  done
  python -m eval.finetune_table before="$exp/eval/before" finetuned="$exp/eval/finetuned" \
    scratch="$exp/eval/scratch"
fi
echo "TensorBoard: tensorboard --logdir $exp/    reports: $exp/eval/*/index.html"
