#!/usr/bin/env bash
# GETok GRPO stage 2 on EasyR1: single-turn prompts that embed the stage-1 model's own proposals (EasyR1 has
# no multi-turn rollouts). Run from the getok repository root:
#
#   python3 scripts/model_merger.py --local_dir runs/easyr1-qwen2_5_vl_7b-stage1/global_step_500/actor  # EasyR1's
#   STAGE1=runs/easyr1-qwen2_5_vl_7b-stage1/global_step_500/actor/huggingface SFT=runs/sft-qwen2_5_vl_7b/merged \
#   DATA=data/refcoco-grid32 bash configs/easyr1/run_stage2.sh [key=value ...]
#
# STAGE1 is the stage-1 actor as a Hugging Face directory: EasyR1 saves <save_checkpoint_path>/global_step_<N>/actor
# and its model merger writes .../actor/huggingface (transformers 4.5x: both EasyR1 and getok load it). It gets
# the SFT model's getok_layout.json (same tokenizer) so getok can check and load it.
# 1. make-stage2-data: the stage-1 model answers every question greedily; its answer becomes turn 1
#    (invalid / none answers -> a builder-made noisy proposal, counted in the manifest);
# 2. exports the stage-2 rows and runs the guards (EasyR1's own schema included) with the launch's overrides;
# 3. launches EasyR1 from the stage-1 actor. Extra key=value arguments go to the guards and the launch.
set -euo pipefail
GETOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STAGE1=${STAGE1:?set STAGE1 to the stage-1 actor: <save_checkpoint_path>/global_step_<N>/actor/huggingface}
SFT=${SFT:?set SFT to the merged SFT model (for its getok_layout.json)}
DATA=${DATA:?set DATA to a getok dataset dir of single-target grid mask tasks}
WORK=${WORK:-runs/easyr1-stage2}
CONFIG=${CONFIG:-$GETOK_ROOT/configs/easyr1/qwen2_5_vl_7b-stage2.yaml}
EASYR1=${EASYR1:-python3 -m verl.trainer.main}

compgen -G "$STAGE1/*.safetensors" >/dev/null || {
  echo "$STAGE1 has no weights: run EasyR1's python3 scripts/model_merger.py --local_dir $(dirname "$STAGE1")" >&2; exit 2; }
[ -f "$STAGE1/getok_layout.json" ] || cp "$SFT/getok_layout.json" "$STAGE1/"
getok rl make-stage2-data --model "$STAGE1" --data "$DATA" --out "$WORK-data" --max-cells 256 --overwrite
getok rl export-easyr1 --stage 2 --data "$WORK-data" --out "$WORK" --model "$STAGE1" --overwrite
OVERRIDES=(
  data.train_files="$(realpath "$WORK")/train.parquet"
  data.val_files="$(realpath "$WORK")/train.parquet"
  data.format_prompt="$GETOK_ROOT/configs/easyr1/format_prompt.jinja"
  worker.actor.model.model_path="$(realpath "$STAGE1")"
  worker.reward.reward_function="$GETOK_ROOT/getok/rl/easyr1_reward.py:compute_score"
  "$@"
)
getok rl check-easyr1 --model "$STAGE1" --data "$WORK" --config "$CONFIG" "${OVERRIDES[@]}"

$EASYR1 config="$CONFIG" "${OVERRIDES[@]}"
