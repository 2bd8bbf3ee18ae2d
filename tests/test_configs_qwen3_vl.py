"""The Qwen3-VL-8B configs beside the Qwen2.5-VL-7B ones: the same recipe with the base model swapped and the
pixel bounds in Qwen3-VL's 32-px unit; they load through getok's loaders and ``--dry-run``; the LoRA targets
derived for Qwen3-VL are its language model's projections; the codec switch to the base model's own format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from getok.rl.grpo_config import load_grpo_config
from getok.train.config import load_sft_config, sft_config_to_dict

REPO = Path(__file__).resolve().parents[1]
UNIT = 32  # Qwen3-VL: patch 16 x merge 2
SFT = REPO / "configs/sft/qwen3_vl_8b.yaml"
GRPO = [REPO / f"configs/grpo/qwen3_vl_8b-stage{s}.yaml" for s in (1, 2)]
EASYR1 = [REPO / f"configs/easyr1/qwen3_vl_8b-stage{s}.yaml" for s in (1, 2)]


def _twin(p: Path) -> Path:
    return p.with_name(p.name.replace("qwen3_vl_8b", "qwen2_5_vl_7b"))


def _diff(a, b, prefix=""):
    """Dotted keys where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix[:-1]]


def _in_unit(min_pixels: int, max_pixels: int) -> None:
    for px in (min_pixels, max_pixels):
        side = round(px**0.5)
        assert side * side == px and side % UNIT == 0, px  # squares of whole 32-px units


def test_sft_is_the_7b_recipe_with_the_base_and_bounds_in_qwen3_vls_unit():
    cfg, ref = load_sft_config(SFT), load_sft_config(_twin(SFT))
    diff = _diff(sft_config_to_dict(cfg), sft_config_to_dict(ref))
    assert diff == ["model.max_pixels", "model.min_pixels", "model.path", "output_dir"]
    assert cfg.model.path == "/models/Qwen3-VL-8B-Instruct" and cfg.output_dir == "runs/sft-qwen3_vl_8b"
    _in_unit(cfg.model.min_pixels, cfg.model.max_pixels)
    assert (cfg.model.min_pixels // UNIT**2, cfg.model.max_pixels // UNIT**2) == (4, 1296)  # image tokens
    assert cfg.tuning.target_modules is None  # derived from the model's structure (below)


@pytest.mark.parametrize("path", GRPO, ids=["stage1", "stage2"])
def test_grpo_is_the_7b_recipe_with_the_base_and_bounds_in_qwen3_vls_unit(path):
    cfg, ref = load_grpo_config(path), load_grpo_config(_twin(path))
    raw, raw_ref = yaml.safe_load(path.read_text()), yaml.safe_load(_twin(path).read_text())
    assert _diff(raw, raw_ref) == ["model.max_pixels", "model.min_pixels", "model.path", "output_dir"]
    assert cfg.rl.stage == ref.rl.stage == (2 if "stage2" in path.name else 1)
    sft = load_sft_config(SFT)
    assert (cfg.model.min_pixels, cfg.model.max_pixels) == (sft.model.min_pixels, sft.model.max_pixels)
    assert "qwen3_vl_8b" in cfg.model.path and "qwen2" not in cfg.model.path


@pytest.mark.parametrize("path", EASYR1, ids=["stage1", "stage2"])
def test_easyr1_is_the_7b_recipe_with_the_base_and_bounds_in_qwen3_vls_unit(path):
    raw, raw_ref = yaml.safe_load(path.read_text()), yaml.safe_load(_twin(path).read_text())
    assert _diff(raw, raw_ref) == ["data.max_pixels", "data.min_pixels", "trainer.experiment_name",
                                   "trainer.save_checkpoint_path", "worker.actor.model.model_path"]  # fmt: skip
    sft = load_sft_config(SFT)
    assert (raw["data"]["min_pixels"], raw["data"]["max_pixels"]) == (sft.model.min_pixels, sft.model.max_pixels)
    assert "qwen3_vl_8b" in raw["worker"]["actor"]["model"]["model_path"]
    stage = path.stem.split("-")[-1]  # stage1 / stage2
    script = path.with_name(f"run_qwen3_vl_8b-{stage}.sh")
    text = script.read_text()
    assert path.name in text and f'exec bash "$HERE/run_{stage}.sh"' in text
    assert script.stat().st_mode & 0o111  # executable like run_stage{1,2}.sh


def test_dry_runs_print_the_configs(capsys):
    from getok.rl.cli import main as rl_main
    from getok.train.cli import main as train_main

    assert train_main(["train", "sft", str(SFT), "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["max_pixels"] == 1152 * 1152
    for s, p in zip((1, 2), GRPO):
        assert rl_main(["rl", "train", "--stage", str(s), str(p), "--dry-run"]) == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["rl"]["stage"] == s and printed["model"]["min_pixels"] == 64 * 64


def test_the_bounds_are_what_qwen3_vls_processor_keeps():
    """Qwen3-VL-8B's image processor (patch 16, merge 2) with the configs' bounds: the adapter writes them as
    they are (no rounding to the unit needed), a 1152-px square image is 36 x 36 tokens, a tiny one 2 x 2."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    from getok.train.sft import set_pixel_bounds
    from getok.vocab.tiny import build_tiny_tokenizer, chat_template

    common = dict(patch_size=16, temporal_patch_size=2, merge_size=2)
    proc = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(**common), tokenizer=build_tiny_tokenizer(),
                            video_processor=Qwen3VLVideoProcessor(**common), chat_template=chat_template())  # fmt: skip
    cfg = load_sft_config(SFT)
    assert set_pixel_bounds(proc, cfg.model.min_pixels, cfg.model.max_pixels)
    assert proc.image_processor.size == {"shortest_edge": 4096, "longest_edge": 1152 * 1152}
    for side, tokens in ((1152, 36 * 36), (2000, 36 * 36), (40, 2 * 2)):
        thw = proc.image_processor(images=[Image.new("RGB", (side, side))], return_tensors="np")["image_grid_thw"][0]
        assert int(thw[1] * thw[2]) // 4 == tokens, side


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_vl_moe"])
def test_lora_targets_derived_for_qwen3_vl_are_its_language_models_projections(family):
    """``tuning.target_modules: null`` → the adapter's regex; on a Qwen3-VL (dense: q/k/v/o + gate/up/down,
    the names the config comment gives) it matches only the language model's Linear layers."""
    import torch

    from getok.vocab.adapters import adapter_for
    from getok.vocab.tiny import TinyModelConfig, make_tiny_model

    model, _ = make_tiny_model(TinyModelConfig(family=family, num_layers=2, vision_depth=1, fullatt_block_indexes=(0,)))
    rx = adapter_for(model).lora_target_modules(model)
    hits = [n for n, _ in model.named_modules() if re.fullmatch(rx, n)]
    assert hits and all(n.startswith("model.language_model.layers.") for n in hits)
    assert all(isinstance(model.get_submodule(n), torch.nn.Linear) for n in hits)
    leaves = {n.split(".", 4)[-1] for n in hits}  # e.g. "self_attn.q_proj"
    attn = {f"self_attn.{p}_proj" for p in "qkvo"}
    assert attn <= leaves
    if family == "qwen3_vl":
        assert leaves == attn | {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} and len(hits) == 2 * 7


def test_the_codec_switch_to_qwen3_vls_own_format_loads():
    cfg = load_sft_config(SFT, ["vocab.codecs=[text_coords:style=qwen3]",
                                "data.mixture=[{type: dataset, name: refcoco, path: data/refcoco-qwen3}]"])  # fmt: skip
    assert cfg.vocab.codecs == ["text_coords:style=qwen3,eps=0.01,holes=false"]
    ref = load_sft_config(_twin(SFT), ["vocab.codecs=['text_coords:style=qwen2_5,max_pixels=1003520']"])
    assert ref.vocab.codecs[0].endswith(f"max_pixels={ref.model.max_pixels},factor=28")
