"""``getok rl export-easyr1-model``: a model directory transformers 4.5x (EasyR1) and 5.x both load.

Here (transformers 5) the export must load to the same tokenizer, processor inputs and logits as the source;
tests/engines loads it with EasyR1's own helpers under transformers 4.5x (``make test-engines``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from getok.errors import ConfigError, DataError
from getok.rl.easyr1_model import export_easyr1_model, portable_tokenizer_config

SPEC = "grid_offset:n=8,r=1,step=0.5"


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    from getok.vocab import add_spatial_tokens, build_tiny_model, load_model_and_processor, save_with_layout
    from getok.vocab.tiny import TinyModelConfig

    root = tmp_path_factory.mktemp("m")
    base = build_tiny_model(root / "base", TinyModelConfig(family="qwen2_5_vl", patch_size=14))
    model, processor = load_model_and_processor(base)
    layout = add_spatial_tokens(processor, model, [SPEC])
    return save_with_layout(model, processor, layout, root / "ckpt")


def test_portable_tokenizer_config_rules():
    tc = {"tokenizer_class": "TokenizersBackend", "backend": "tokenizers", "extra_special_tokens": ["<a>"],
          "image_token": "<|image_pad|>"}  # fmt: skip
    out = portable_tokenizer_config(tc, "qwen2_5_vl")
    assert out["tokenizer_class"] == "Qwen2TokenizerFast" and "backend" not in out
    assert out["additional_special_tokens"] == ["<a>"]
    assert out["extra_special_tokens"] == {"image_token": "<|image_pad|>"}  # 4.x: a dict of named tokens
    assert portable_tokenizer_config({"tokenizer_class": "Qwen2Tokenizer"}, None)["tokenizer_class"] == "Qwen2TokenizerFast"
    assert portable_tokenizer_config({"extra_special_tokens": []}, "llava")["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "extra_special_tokens" not in portable_tokenizer_config({"extra_special_tokens": []}, "llava")


def test_export_loads_to_the_same_tokens_inputs_and_logits(src, tmp_path):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from getok.rl.cli import main

    out = tmp_path / "easyr1-model"
    assert main(["rl", "export-easyr1-model", "--model", str(src), "--out", str(out)]) == 0
    tc = json.loads((out / "tokenizer_config.json").read_text())
    assert tc["tokenizer_class"] == "Qwen2TokenizerFast" and isinstance(tc.get("extra_special_tokens", {}), dict)
    assert (out / "preprocessor_config.json").is_file() and (out / "getok_layout.json").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["text_config"]["rope_scaling"]["mrope_section"] == cfg["text_config"]["rope_parameters"]["mrope_section"]
    img = Image.fromarray((np.random.RandomState(0).rand(112, 112, 3) * 255).astype("uint8"))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the disc."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "<g8_r03_c04><g8_r03_c05><off_1_0><DELETE>"}]}]  # fmt: skip
    got = []
    for d in (src, out):
        proc = AutoProcessor.from_pretrained(str(d))
        text = proc.apply_chat_template(msgs, tokenize=False)
        inp = proc(images=[img], text=[text], return_tensors="pt")
        with torch.no_grad():
            logits = AutoModelForImageTextToText.from_pretrained(str(d)).eval()(**inp).logits
        got.append((text, inp["input_ids"], inp["pixel_values"], logits))
    assert got[0][0] == got[1][0]
    for a, b in zip(got[0][1:], got[1][1:]):
        assert torch.equal(a, b)
    with pytest.raises(DataError, match="already exists"):
        export_easyr1_model(src, out)
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "config.json").write_text("{}")
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="LoRA"):
        export_easyr1_model(tmp_path / "lora", tmp_path / "x")


def test_reward_file_fails_at_load_without_pycocotools_and_never_scores_an_import_error_zero(monkeypatch):
    """A missing dependency must stop an EasyR1 run at start-up, not turn every reward into 0."""
    import sys

    from getok.errors import MissingDependencyError
    from getok.rl.easyr1 import REWARD_FILE

    from .test_easyr1_reward import load_like_easyr1

    _, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score", decoder="raster")
    import getok.rl.rewards as rewards

    def boom(self, items):
        raise ModuleNotFoundError("No module named 'pycocotools'", name="pycocotools")

    monkeypatch.setattr(rewards.RewardScorer, "score_batch", boom)
    with pytest.raises(ImportError):
        fn([{"response": "x", "response_length": 1, "ground_truth": "{}"}])
    monkeypatch.undo()
    for name in [m for m in sys.modules if m == "pycocotools" or m.startswith("pycocotools.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import pycocotools -> ImportError
    with pytest.raises(MissingDependencyError, match="pycocotools"):
        load_like_easyr1(f"{REWARD_FILE}:compute_score")
