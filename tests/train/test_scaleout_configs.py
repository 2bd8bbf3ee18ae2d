"""accelerate / DeepSpeed configs: they parse, and the trainer's arguments accept them (nothing is launched).

With ``deepspeed`` installed the DeepSpeed JSONs go through transformers' own DeepSpeed config handling
(``SFTConfig(deepspeed=...)`` fills every ``"auto"`` from the training arguments); without it that part
is skipped with a message and only the JSON schema is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from getok.train.config import load_sft_config
from tests.conftest import need_deepspeed

REPO = Path(__file__).resolve().parents[2]
DS = REPO / "configs" / "deepspeed"
ACC = REPO / "configs" / "accelerate"


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_json_schema(stage):
    cfg = json.loads((DS / f"zero{stage}.json").read_text())
    zero = cfg["zero_optimization"]
    assert zero["stage"] == stage
    # what the HF integration must fill from the training arguments, so the two never disagree
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert cfg[key] == "auto", key
    assert cfg["bf16"]["enabled"] == "auto" and cfg["fp16"]["enabled"] == "auto"
    if stage == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # save_pretrained gets full weights
    known = {"stage", "allgather_partitions", "allgather_bucket_size", "overlap_comm", "reduce_scatter",
             "reduce_bucket_size", "contiguous_gradients", "stage3_prefetch_bucket_size",
             "stage3_param_persistence_threshold", "stage3_max_live_parameters", "stage3_max_reuse_distance",
             "stage3_gather_16bit_weights_on_model_save", "sub_group_size"}  # fmt: skip
    assert set(zero) <= known


@pytest.mark.parametrize("name", ["multi_gpu", "zero2", "zero3", "zero3_multinode"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    c = load_config_from_file(str(ACC / f"{name}.yaml"))
    assert c.num_processes >= c.num_machines >= 1
    if name == "multi_gpu":
        assert c.distributed_type.value == "MULTI_GPU"
    else:
        assert c.distributed_type.value == "DEEPSPEED"
        ds_file = REPO / c.deepspeed_config["deepspeed_config_file"]
        assert ds_file.is_file()
        stage = json.loads(ds_file.read_text())["zero_optimization"]["stage"]
        assert f"zero{stage}" in name


@pytest.mark.parametrize("stage", [2, 3])
def test_trainer_arguments_accept_the_deepspeed_configs(stage, tmp_path, monkeypatch):
    need_deepspeed("deepspeed is not installed: only the JSON schema and accelerate parsing are checked")
    from getok.train.sft import training_arguments

    monkeypatch.chdir(REPO)
    cfg = load_sft_config(
        REPO / "configs" / "sft" / "tiny-cpu.yaml",
        [f"train.deepspeed=configs/deepspeed/zero{stage}.json", "train.batch_size=4", "train.grad_accum=3",
         f"output_dir={tmp_path}"],
    )  # fmt: skip
    args = training_arguments(cfg, tmp_path, progress=False)
    ds = args.hf_deepspeed_config.config
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 3
    assert ds["gradient_clipping"] == cfg.train.max_grad_norm
    assert args.assistant_only_loss and args.max_length is None
