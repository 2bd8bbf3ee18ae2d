#!/usr/bin/env bash
# GETok GRPO stage 1 on EasyR1 (Qwen2.5-VL-7B, one node x 8 GPUs). Run from the getok repository root, in an
# environment with EasyR1 (https://github.com/hiyouga/EasyR1) and getok (`pip install -e .`) installed:
#
#   SFT=runs/sft-qwen2_5_vl_7b/merged DATA=data/refcoco-grid32 bash configs/easyr1/run_stage1.sh
#
# 1. exports the stage-1 rows (problem / answer = packed truth / images), checking the model's tokenizer;
# 2. runs the guards (spatial tokens non-special, layouts, reward file, data keys, LoRA);
# 3. launches EasyR1 with getok's reward file given by absolute path.
set -euo pipefail
GETOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SFT=${SFT:?set SFT to the merged SFT model (getok train merge)}
DATA=${DATA:?set DATA to a getok dataset dir of grid mask tasks (getok build tasks ...)}
VAL=${VAL:-$DATA}
OUT=${OUT:-runs/easyr1-stage1}
CONFIG=${CONFIG:-$GETOK_ROOT/configs/easyr1/qwen2_5_vl_7b-stage1.yaml}
EASYR1=${EASYR1:-python3 -m verl.trainer.main}

getok rl export-easyr1 --stage 1 --data "$DATA" --out "$OUT" --model "$SFT" --overwrite
getok rl export-easyr1 --stage 1 --data "$VAL" --out "$OUT-val" --model "$SFT" --overwrite
getok rl check-easyr1 --model "$SFT" --data "$OUT" --config "$CONFIG"

$EASYR1 \
  config="$CONFIG" \
  data.train_files="$(realpath "$OUT")/train.parquet" \
  data.val_files="$(realpath "$OUT-val")/train.parquet" \
  data.format_prompt="$GETOK_ROOT/configs/easyr1/format_prompt.jinja" \
  worker.actor.model.model_path="$(realpath "$SFT")" \
  worker.reward.reward_function="$GETOK_ROOT/getok/rl/easyr1_reward.py:compute_score" \
  "$@"
