#!/usr/bin/env bash
# GETok GRPO stage 1 on EasyR1 (Qwen2.5-VL-7B, one node x 8 GPUs). Run from the getok repository root, in an
# environment with EasyR1 (https://github.com/hiyouga/EasyR1, transformers>=4.54,<5) and getok
# (`pip install -e .`) installed:
#
#   SFT=runs/sft-qwen2_5_vl_7b/merged DATA=data/refcoco-grid32 bash configs/easyr1/run_stage1.sh [key=value ...]
#
# 0. exports the SFT model for transformers 4.5x (getok rl export-easyr1-model: a directory 4.5x and 5.x load);
# 1. exports the stage-1 rows (problem / answer = packed truth / images), checking the model's tokenizer;
# 2. runs the guards with the same overrides the launch gets: EasyR1's own config schema (PPOConfig merged as
#    verl/trainer/main.py does), spatial tokens non-special, layouts, reward file, data keys, LoRA, validation n;
# 3. launches EasyR1 with getok's reward file given by absolute path. Extra key=value arguments go to both.
# Checkpoints land in trainer.save_checkpoint_path/global_step_<N>/actor (run_stage2.sh starts from one).
set -euo pipefail
GETOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SFT=${SFT:?set SFT to the merged SFT model (getok train merge)}
DATA=${DATA:?set DATA to a getok dataset dir of grid mask tasks (getok build tasks ...)}
VAL=${VAL:-$DATA}
OUT=${OUT:-runs/easyr1-stage1}
MODEL=${MODEL:-$OUT-model}
CONFIG=${CONFIG:-$GETOK_ROOT/configs/easyr1/qwen2_5_vl_7b-stage1.yaml}
EASYR1=${EASYR1:-python3 -m verl.trainer.main}

getok rl export-easyr1-model --model "$SFT" --out "$MODEL" --overwrite
getok rl export-easyr1 --stage 1 --data "$DATA" --out "$OUT" --model "$MODEL" --overwrite
getok rl export-easyr1 --stage 1 --data "$VAL" --out "$OUT-val" --model "$MODEL" --overwrite
OVERRIDES=(
  data.train_files="$(realpath "$OUT")/train.parquet"
  data.val_files="$(realpath "$OUT-val")/train.parquet"
  data.format_prompt="$GETOK_ROOT/configs/easyr1/format_prompt.jinja"
  worker.actor.model.model_path="$(realpath "$MODEL")"
  worker.reward.reward_function="$GETOK_ROOT/getok/rl/easyr1_reward.py:compute_score"
  "$@"
)
getok rl check-easyr1 --model "$MODEL" --data "$OUT" --config "$CONFIG" "${OVERRIDES[@]}"

$EASYR1 config="$CONFIG" "${OVERRIDES[@]}"
