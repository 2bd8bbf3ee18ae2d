#!/usr/bin/env bash
# GETok GRPO stage 2 on verl 0.9.1 with true multi-turn rollouts (getok's agent loop: the policy proposes greedily,
# getok's refine instruction is the simulated user turn, the policy refines; getok's stage-2 reward scores the
# refinement against that proposal). Run from the getok repository root, in verl's environment with getok installed
# (pip install -e . --no-deps beside verl: requirements/verl.txt):
#
#   STAGE1=runs/grpo-qwen2_5_vl_7b-stage1/merged DATA=data/refcoco-grid32 NGPUS=8 NNODES=1 \
#     bash configs/verl/run_stage2.sh [key=value ...]
#
# STAGE1: the stage-1 policy as a Hugging Face directory (TRL stage 1: `getok train merge`; a verl / EasyR1
#         checkpoint: its model merger's output). It needs getok_layout.json: copied from SFT= when absent.
# DATA:   a getok dataset of single-target grid mask questions (getok build tasks ... --codec grid_offset:n=32);
#         VAL (optional): the same for validation (default: DATA).
# NGPUS / NNODES: GPUs per node and nodes (default 8 / 1). Extra key=value arguments go to the guards and verl.
# DRY_RUN=1 prints the verl command instead of running it (the contract tests use it).
# 1. exports the rows (getok rl export-verl: the question, the packed truth, a fallback proposal per row);
# 2. runs the guards (getok rl check-verl: the YAML + overrides through verl's own config code, agent loop, reward,
#    tokens, layout);
# 3. launches python3 -m verl.trainer.main_ppo with configs/verl/qwen2_5_vl_7b-stage2.yaml.
set -euo pipefail
GETOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STAGE1=${STAGE1:?set STAGE1 to the stage-1 policy (a Hugging Face model directory)}
DATA=${DATA:?set DATA to a getok dataset dir of single-target grid mask questions}
VAL=${VAL:-$DATA}
WORK=${WORK:-runs/verl-stage2}
NGPUS=${NGPUS:-8}
NNODES=${NNODES:-1}
CONFIG=${CONFIG:-$GETOK_ROOT/configs/verl/qwen2_5_vl_7b-stage2.yaml}
GETOK=${GETOK:-getok}            # getok's CLI (e.g. "python3 -m getok.cli.main")
PYTHON=${PYTHON:-python3}        # the Python of verl's environment

if [ ! -f "$STAGE1/getok_layout.json" ]; then
  [ -n "${SFT:-}" ] || { echo "$STAGE1 has no getok_layout.json: set SFT to the SFT model to copy it from" >&2; exit 2; }
  cp "$SFT/getok_layout.json" "$STAGE1/"
fi
$GETOK rl export-verl --data "$DATA" --out "$WORK" --model "$STAGE1" --overwrite --quiet
if [ "$VAL" = "$DATA" ]; then VAL_OUT=$WORK; else
  VAL_OUT=$WORK-val
  $GETOK rl export-verl --data "$VAL" --out "$VAL_OUT" --model "$STAGE1" --overwrite --quiet
fi
OVERRIDES=(
  data.train_files="$(realpath "$WORK")/train.parquet"
  data.val_files="$(realpath "$VAL_OUT")/train.parquet"
  actor_rollout_ref.model.path="$(realpath "$STAGE1")"
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$GETOK_ROOT/configs/verl/agent_loop.yaml"
  trainer.n_gpus_per_node="$NGPUS"
  trainer.nnodes="$NNODES"
  "$@"
)
$PYTHON -m getok.cli.main rl check-verl --config "$CONFIG" --data "$WORK" "${OVERRIDES[@]}"

CMD=($PYTHON -m verl.trainer.main_ppo --config-path="$(dirname "$CONFIG")" --config-name="$(basename "$CONFIG" .yaml)"
     "${OVERRIDES[@]}")
if [ "${DRY_RUN:-0}" = 1 ]; then printf '%q ' "${CMD[@]}"; echo; else exec "${CMD[@]}"; fi
