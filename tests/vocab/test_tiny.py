"""The tiny offline Qwen-VL (Qwen3-VL by default, Qwen2.5-VL on request): Auto classes, processor, chat
template, determinism, loader."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from getok.errors import ConfigError, LayoutMismatchError
from getok.vocab.tiny import TinyModelConfig


def test_default_config_sizes_and_auto_classes_offline(tmp_path, image112, monkeypatch):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from getok.vocab.tiny import build_tiny_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = build_tiny_model(tmp_path / "tiny", TinyModelConfig())
    model = AutoModelForImageTextToText.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert type(proc).__name__ == "Qwen3VLProcessor"  # not a bare tokenizer
    tc, vc = model.config.text_config, model.config.vision_config
    assert (tc.hidden_size, tc.intermediate_size, tc.num_hidden_layers) == (256, 512, 4)
    assert (tc.num_attention_heads, tc.num_key_value_heads) == (4, 2)
    assert tc.rope_parameters["mrope_section"] == [8, 12, 12] and tc.rope_parameters["mrope_interleaved"]
    assert (vc.depth, vc.hidden_size, vc.out_hidden_size, vc.patch_size) == (2, 128, 256, 7)
    assert vc.num_position_embeddings == 256 and list(vc.deepstack_visual_indexes) == []
    assert not model.config.tie_word_embeddings
    n = sum(p.numel() for p in model.parameters())
    assert 3.0e6 < n < 4.5e6, n
    tok = proc.tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.padding_side == "left"
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert proc.image_processor.size["shortest_edge"] == 56 * 56
    assert proc.image_processor.size["longest_edge"] == 448 * 448

    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the dog."}]}]
    text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    # the recipe's template: no system turn, the question before the image
    assert text == "<|im_start|>user\nSegment the dog.<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
    enc = proc(text=[text], images=[image112], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 64  # 112 px -> 8 x 8 tokens of 14 px
    with torch.no_grad():
        out_ids = model.generate(**enc, max_new_tokens=4, do_sample=False)
    n_in = enc["input_ids"].shape[1]
    assert n_in < out_ids.shape[1] <= n_in + 4


def test_qwen2_5_vl_family_keeps_its_template_and_tokens(image112):
    from getok.vocab.tiny import CHAT_TEMPLATE, make_tiny_model

    cfg = TinyModelConfig(family="qwen2_5_vl", patch_size=14, system_prompt="You are a helpful assistant.",
                          text_before_image=False, num_layers=1)  # fmt: skip
    model, proc = make_tiny_model(cfg)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration" and cfg.rope_theta == 1e6
    assert proc.chat_template == CHAT_TEMPLATE  # the Qwen2.5-VL-style template of earlier versions, unchanged
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the dog."}]}]
    text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>")
    enc = proc(text=[text], images=[image112], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 16  # 28-px tokens


def test_old_tiny_config_files_read_as_the_qwen2_5_model_they_describe():
    old = TinyModelConfig(family="qwen2_5_vl", patch_size=14, system_prompt="You are a helpful assistant.",
                          text_before_image=False).to_dict()  # fmt: skip
    for k in ("family", "system_prompt", "text_before_image", "num_position_embeddings", "deepstack_visual_indexes"):
        old.pop(k)  # what getok_tiny.json held before these fields existed
    cfg = TinyModelConfig.from_dict(old)
    assert (cfg.family, cfg.patch_size, cfg.text_before_image) == ("qwen2_5_vl", 14, False)
    assert cfg.system_prompt == "You are a helpful assistant."


def test_chat_template_marks_assistant_tokens(tiny_dirs):
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_dirs["untied"]).tokenizer
    msgs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the cat?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "on the left"}]},
    ]
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    marked = tok.decode([i for i, m in zip(ids, mask) if m])
    assert marked == "on the left<|im_end|>"
    assert "<|vision_start|><|image_pad|><|vision_end|>" in tok.decode(ids)


def test_build_is_deterministic():
    import torch

    from getok.vocab.tiny import make_tiny_model

    cfg = TinyModelConfig(num_layers=1, vision_depth=1, fullatt_block_indexes=(0,), seed=3)
    m1, p1 = make_tiny_model(cfg)
    m2, p2 = make_tiny_model(cfg)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert p1.tokenizer.backend_tokenizer.to_str() == p2.tokenizer.backend_tokenizer.to_str()
    m3, _ = make_tiny_model(TinyModelConfig(num_layers=1, vision_depth=1, fullatt_block_indexes=(0,), seed=4))
    assert not torch.equal(m3.lm_head.weight, m1.lm_head.weight)


def test_tokenizer_encodes_any_text_and_round_trips(tiny_dirs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dirs["untied"])
    for text in ["(0.375, 0.125) move (+0.016, -0.016)", "Ünïcödé ✓ 日本", "[[0.1, 0.2], [0.3, 0.4]]\nnone"]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert tok.tokenize("128") == ["1", "2", "8"]  # digits one by one, like Qwen


def test_tied_variant_is_tied_after_reload(load_tiny):
    model, _ = load_tiny("tied")
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.get_input_embeddings().weight


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(mrope_section=(8, 8, 8)), "mrope_section"),
        (dict(vision_out_hidden_size=128), "vision_out_hidden_size"),
        (dict(num_kv_heads=3), "num_kv_heads"),
        (dict(fullatt_block_indexes=(5,)), "fullatt_block_indexes"),
        (dict(deepstack_visual_indexes=(2,)), "deepstack_visual_indexes"),
        (dict(family="llava"), "family"),
        (dict(num_position_embeddings=200), "num_position_embeddings"),
        (dict(min_pixels=10), "min_pixels"),
        (dict(num_layers=0), "num_layers"),
    ],
)
def test_config_validation_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        TinyModelConfig(**kw)


def test_config_round_trip_and_read(tiny_dirs):
    from getok.vocab.tiny import read_tiny_config

    cfg = read_tiny_config(tiny_dirs["tied"])
    assert cfg.tie_word_embeddings and cfg.num_layers == 2
    assert TinyModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="no field"):
        TinyModelConfig.from_dict({"bogus": 1})


def test_ensure_processor_rebuilds_from_bare_tokenizer(tiny_dirs):
    from transformers import AutoTokenizer

    from getok.vocab.loading import ensure_processor

    tok = AutoTokenizer.from_pretrained(tiny_dirs["untied"])
    proc = ensure_processor(tok, tiny_dirs["untied"])
    assert type(proc).__name__ == "Qwen3VLProcessor" and proc.tokenizer is tok
    assert proc.image_processor.size["longest_edge"] == 448 * 448


def test_loader_dtype_and_layout_check(tiny_dirs, tmp_path):
    import shutil

    import torch

    from getok.vocab import VocabLayout, load_model_and_processor

    model, proc = load_model_and_processor(tiny_dirs["untied"], dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and not model.training
    with pytest.raises(ConfigError, match="not a torch dtype"):
        load_model_and_processor(tiny_dirs["untied"], dtype="bogus")
    d = tmp_path / "m"
    shutil.copytree(tiny_dirs["untied"], d)
    VocabLayout.from_codecs(["grid:n=2"]).save(d)  # tokens never added to this tokenizer
    with pytest.raises(LayoutMismatchError, match="<g2_r0_c0>"):
        load_model_and_processor(d)


def test_import_getok_vocab_is_light():
    code = (
        "import sys, getok, getok.vocab, getok.vocab.add_tokens, getok.vocab.resize, getok.vocab.tiny, getok.vocab.cli\n"
        "bad = [m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------ Qwen3-VL (+ MoE)
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_vl_moe"])
def test_qwen3_vl_dense_and_moe_at_the_32_px_unit_take_tokens_and_a_scene(family, tmp_path, monkeypatch):
    """The real Qwen3-VL's unit (patch 16 x merge 2 = 32 px), dense and MoE: build → Auto classes → add getok
    tokens → the tiny recipes' pixel bounds (112², in its unit: 4 x 4 tokens for a 112-px scene) → one
    forward (and backward) with an image."""
    import torch
    from transformers import AutoModelForImageTextToText

    from getok.data_builders.scenes import generate_scenes
    from getok.train.sft import set_pixel_bounds
    from getok.vocab import add_spatial_tokens, load_model_and_processor
    from getok.vocab.adapters import Qwen3VLAdapter, adapter_for
    from getok.vocab.tiny import build_tiny_model, read_tiny_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = TinyModelConfig(family=family, patch_size=16, num_layers=2, vision_depth=1, fullatt_block_indexes=(0,))
    assert cfg.unit == 32
    out = build_tiny_model(tmp_path / family, cfg)
    assert read_tiny_config(out) == cfg
    cls = {"qwen3_vl": "Qwen3VLForConditionalGeneration", "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration"}
    assert type(AutoModelForImageTextToText.from_pretrained(out)).__name__ == cls[family]
    model, proc = load_model_and_processor(out)
    assert type(proc).__name__ == "Qwen3VLProcessor" and isinstance(adapter_for(model), Qwen3VLAdapter)
    assert model.config.model_type == family and model.config.vision_config.patch_size == 16
    if family == "qwen3_vl_moe":
        tc = model.config.text_config
        assert (tc.num_experts, tc.num_experts_per_tok, tc.moe_intermediate_size) == (4, 2, 128)
        experts = model.model.language_model.layers[0].mlp.experts
        assert tuple(experts.gate_up_proj.shape) == (4, 2 * 128, 256)
        assert 0 < float(experts.gate_up_proj.detach().std()) < 1  # initialised, not torch.empty's memory

    layout = add_spatial_tokens(proc, model, ["grid_offset:n=8,r=1,step=0.5"], init="2d")
    tok = proc.tokenizer
    assert len(layout.tokens) == 64 + 9 + 1
    assert all(len(tok.encode(t, add_special_tokens=False)) == 1 for t in layout.tokens)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert set_pixel_bounds(proc, 56 * 56, 112 * 112)

    scene = generate_scenes(1, seed=0)[0]
    from PIL import Image

    image = Image.fromarray(scene.get_image())
    assert image.size == (112, 112)
    msgs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the red circle."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<g8_r1_c2><g8_r1_c3>"}]},
    ]
    enc = proc(text=[proc.apply_chat_template(msgs, tokenize=False)], images=[image], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 16  # 112 px -> 128 px: 4 x 4 of 32 px
    assert adapter_for(proc).image_token_count(proc, (112, 112)) == 16
    model.train()
    res = model(**enc, labels=enc["input_ids"])
    assert res.logits.shape[-1] == len(tok) and torch.isfinite(res.logits).all()
    res.loss.backward()
    new_rows = model.get_input_embeddings().weight.grad[layout.with_ids(tok).ids]
    assert new_rows.abs().sum() > 0  # the answer's grid tokens reach the new rows
    if family == "qwen3_vl_moe":
        assert model.model.language_model.layers[0].mlp.experts.gate_up_proj.grad.abs().sum() > 0


def test_moe_fields_belong_to_the_moe_family_and_stay_out_of_dense_configs():
    dense = TinyModelConfig()
    assert not {"num_experts", "num_experts_per_tok", "moe_intermediate_size"} & set(dense.to_dict())
    assert TinyModelConfig.from_dict(dense.to_dict()) == dense  # older getok_tiny.json files read unchanged
    moe = TinyModelConfig(family="qwen3_vl_moe", num_experts=8, num_experts_per_tok=1)
    d = json.loads(json.dumps(moe.to_dict()))
    assert d["num_experts"] == 8 and TinyModelConfig.from_dict(d) == moe
    with pytest.raises(ConfigError, match="num_experts: only family qwen3_vl_moe"):
        TinyModelConfig(num_experts=8)
    with pytest.raises(ConfigError, match="num_experts_per_tok"):
        TinyModelConfig(family="qwen3_vl_moe", num_experts=2, num_experts_per_tok=3)
