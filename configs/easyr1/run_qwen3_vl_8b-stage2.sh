#!/usr/bin/env bash
# GETok GRPO stage 2 on EasyR1 with Qwen3-VL-8B (one node x 8 GPUs): run_stage2.sh with
# configs/easyr1/qwen3_vl_8b-stage2.yaml. Run from the getok repository root:
#
#   python3 scripts/model_merger.py --local_dir runs/easyr1-qwen3_vl_8b-stage1/global_step_500/actor  # EasyR1's
#   STAGE1=runs/easyr1-qwen3_vl_8b-stage1/global_step_500/actor/huggingface SFT=runs/sft-qwen3_vl_8b/merged \
#   DATA=data/refcoco-grid32 bash configs/easyr1/run_qwen3_vl_8b-stage2.sh [key=value ...]
#
# Steps, environment variables and overrides as in run_stage2.sh. Qwen3-VL needs transformers >= 4.57 in
# EasyR1's environment (< 5, EasyR1's range; make test-engines uses 4.57.6).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONFIG=${CONFIG:-$HERE/qwen3_vl_8b-stage2.yaml}
exec bash "$HERE/run_stage2.sh" "$@"
