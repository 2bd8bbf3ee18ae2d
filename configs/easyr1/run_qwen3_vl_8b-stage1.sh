#!/usr/bin/env bash
# GETok GRPO stage 1 on EasyR1 with Qwen3-VL-8B (one node x 8 GPUs): run_stage1.sh with
# configs/easyr1/qwen3_vl_8b-stage1.yaml. Run from the getok repository root:
#
#   SFT=runs/sft-qwen3_vl_8b/merged DATA=data/refcoco-grid32 bash configs/easyr1/run_qwen3_vl_8b-stage1.sh [key=value ...]
#
# Steps, environment variables and overrides as in run_stage1.sh. Qwen3-VL needs transformers >= 4.57 in
# EasyR1's environment (< 5, EasyR1's range; make test-engines uses 4.57.6).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONFIG=${CONFIG:-$HERE/qwen3_vl_8b-stage1.yaml}
exec bash "$HERE/run_stage1.sh" "$@"
