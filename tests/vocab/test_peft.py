"""LoRA + trainable rows: config, what a real optimizer step changes, adapter / merged save-load, TRL fix."""

from __future__ import annotations

import pytest
import torch

from getok.errors import ConfigError
from getok.vocab import (
    add_spatial_tokens,
    full_finetune_setup,
    get_peft_model_for,
    load_adapter,
    lora_config_for,
    merge_and_save,
    save_adapter,
)
from getok.vocab.peft_utils import LANGUAGE_MODEL_LORA_REGEX

from ._helpers import logits

SPEC = "grid_offset:n=8,r=1,step=0.5"


def _base_params(pm):
    """Base-model parameters (no LoRA, no trainable-token deltas), cloned."""
    return {
        n: p.detach().clone()
        for n, p in pm.named_parameters()
        if "lora_" not in n and "trainable_tokens" not in n
    }


def _step(pm, proc, seed=0):
    torch.manual_seed(seed)
    ids = proc.tokenizer(["Find the dog: <g8_r1_c2><g8_r3_c4><off_1_0><DELETE>"], return_tensors="pt")["input_ids"]
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    pm.train()
    loss = pm(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    pm.eval()


def test_lora_config_targets_language_model_only(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, [SPEC])
    cfg = lora_config_for(model, layout, rank=8)
    assert cfg.r == 8 and cfg.lora_alpha == 16
    # the regex derived from the model's structure hits exactly what the Qwen-VL name regex hits
    import re

    names = [n for n, _ in model.named_modules()]
    assert [n for n in names if re.fullmatch(cfg.target_modules, n)] == [
        n for n in names if re.fullmatch(LANGUAGE_MODEL_LORA_REGEX, n)
    ]
    assert cfg.trainable_token_indices == {"embed_tokens": layout.ids, "lm_head": layout.ids}
    pm = get_peft_model_for(model, layout, rank=8)
    lora_modules = {n.rsplit(".lora_A", 1)[0] for n, _ in pm.named_parameters() if ".lora_A" in n}
    assert len(lora_modules) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    assert all("language_model" in n and "visual" not in n for n in lora_modules)
    with pytest.raises(ConfigError, match="vision tower"):
        lora_config_for(model, layout, target_modules=r".*\.attn\.qkv")  # the vision attention (both families)
    with pytest.raises(ConfigError, match="matches no module"):
        lora_config_for(model, layout, target_modules=r"nothing")
    with pytest.raises(ConfigError, match="rank"):
        lora_config_for(model, layout, rank=0)


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_lora_step_changes_only_new_rows_and_lora(load_tiny, kind):
    model, proc = load_tiny(kind)
    layout = add_spatial_tokens(proc, model, [SPEC])
    n0 = layout.ids[0]
    pm = get_peft_model_for(model, layout, rank=8)
    emb = pm.get_input_embeddings()
    head = pm.base_model.model.lm_head
    e0, h0 = emb.weight.detach().clone(), head.weight.detach().clone()  # merged views (base + trainable rows)
    base0 = _base_params(pm)
    lora0 = {n: p.detach().clone() for n, p in pm.named_parameters() if p.requires_grad}
    _step(pm, proc)
    e1, h1 = emb.weight.detach(), head.weight.detach()
    assert torch.equal(e1[:n0], e0[:n0]) and torch.equal(h1[:n0], h0[:n0])  # every old row bit-identical
    assert (e1[n0:] != e0[n0:]).any(dim=1).all()  # every new embedding row moved (weight decay moves unused ones)
    assert (h1[n0:] != h0[n0:]).any(dim=1).all()  # and every new head row (dict form: untied head too)
    for n, p in _base_params(pm).items():
        assert torch.equal(p, base0[n]), n
    changed = [n for n, p in pm.named_parameters() if p.requires_grad and not torch.equal(p, lora0[n])]
    assert any("lora_B" in n for n in changed) and any("trainable_tokens" in n for n in changed)
    if kind == "tied":
        assert torch.equal(e1, h1)


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_adapter_and_merged_save_load_reproduce_logits(load_tiny, tmp_path, kind):
    from getok.vocab import VocabLayout, load_model_and_processor

    model, proc = load_tiny(kind)
    layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
    pm = get_peft_model_for(model, layout, rank=8)
    _step(pm, proc)
    before = logits(pm, proc)
    save_adapter(pm, proc, layout, tmp_path / "adapter")
    size = (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size
    assert size < 2_000_000  # LoRA + 74 rows x 2, never the full embedding matrices
    pm2, proc2, layout2 = load_adapter(tmp_path / "adapter")
    assert layout2.to_dict() == layout.to_dict()
    assert torch.equal(logits(pm2, proc2), before)

    merged_dir = merge_and_save(pm, proc, layout, tmp_path / "merged")
    merged_in_memory = logits(pm, proc)  # pm is merged in place now
    m3, p3 = load_model_and_processor(merged_dir)
    assert torch.equal(logits(m3, p3), merged_in_memory)
    assert torch.allclose(merged_in_memory, before, atol=1e-5)  # merging LoRA only re-rounds
    assert VocabLayout.load(merged_dir).to_dict() == layout.to_dict()
    assert (m3.lm_head.weight is m3.get_input_embeddings().weight) == (kind == "tied")


def test_full_finetune_setup(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, [SPEC])
    counts = full_finetune_setup(model, layout=layout, new_rows_only=True)
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".blocks." in n)
    assert all(p.requires_grad for n, p in model.named_parameters() if ".merger." in n)
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())
    e0 = model.get_input_embeddings().weight.detach().clone()
    h0 = model.lm_head.weight.detach().clone()
    ids = proc.tokenizer(["<g8_r1_c2> dog <DELETE>"], return_tensors="pt")["input_ids"]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    n0 = layout.ids[0]
    e1, h1 = model.get_input_embeddings().weight.detach(), model.lm_head.weight.detach()
    assert torch.equal(e1[:n0], e0[:n0]) and torch.equal(h1[:n0], h0[:n0])
    assert not torch.equal(h1[n0:], h0[n0:])


def test_trl_fused_head_crash_and_fix(load_tiny, image112, monkeypatch, tmp_path):
    """TRL's fused LM head reads lm_head.bias; peft's TrainableTokensWrapper has none until patched."""
    from datasets import Dataset
    from peft.utils.other import TrainableTokensWrapper
    from trl import SFTConfig, SFTTrainer

    from getok.vocab.peft_utils import apply_trl_fused_head_fix, trl_fused_head_fix_needed

    monkeypatch.delattr(TrainableTokensWrapper, "bias", raising=False)  # restored (if it was set) afterwards
    assert trl_fused_head_fix_needed()
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, [SPEC])
    pm = get_peft_model_for(model, layout, rank=4, fix_trl=False)
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the dog."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "<g8_r1_c2><g8_r1_c3>"}]},
        ],
        "images": [image112],
    }
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, report_to=[],
        assistant_only_loss=True, use_cpu=True, bf16=False, save_strategy="no", learning_rate=1e-2,
        disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = SFTTrainer(model=pm, args=args, train_dataset=Dataset.from_list([row, row]), processing_class=proc)
    with pytest.raises(AttributeError, match="TrainableTokensWrapper.*bias"):
        trainer.train()

    assert apply_trl_fused_head_fix() is True
    assert apply_trl_fused_head_fix() is False  # idempotent
    head = pm.base_model.model.lm_head
    h0 = head.weight.detach().clone()
    base0 = _base_params(pm)
    trainer = SFTTrainer(model=pm, args=args, train_dataset=Dataset.from_list([row, row]), processing_class=proc)
    trainer.train()
    h1 = head.weight.detach()
    n0 = layout.ids[0]
    assert torch.equal(h1[:n0], h0[:n0])
    used = [layout.ids[layout.tokens.index(t)] for t in ("<g8_r1_c2>", "<g8_r1_c3>")]
    assert not torch.equal(h1[used], h0[used])  # the fused loss reaches the new head rows
    for n, p in _base_params(pm).items():
        assert torch.equal(p, base0[n]), n


# ------------------------------------------------------------------------------ other families' structure
def _tiny_llava_and_idefics3():
    """Random-weight LLaVA (CLIP tower, ``multi_modal_projector``, ``language_model``) and Idefics3 (SigLIP
    ``vision_model``, ``connector``, ``text_model``), built from configs: structure only, no tokenizer."""
    from transformers import (
        CLIPVisionConfig,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        SiglipVisionConfig,
    )

    vis = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
               patch_size=14)  # fmt: skip
    text = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1, vocab_size=100)  # fmt: skip
    llava = LlavaForConditionalGeneration(
        LlavaConfig(vision_config=CLIPVisionConfig(**vis), text_config=text, image_token_index=99)
    )
    idefics = Idefics3ForConditionalGeneration(
        Idefics3Config(vision_config=SiglipVisionConfig(**vis).to_dict(), text_config=text.to_dict(), image_token_id=99)
    )
    return {"llava": llava, "idefics3": idefics}


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_freezing_and_lora_targets_follow_the_structure_of_other_families(family):
    import re

    from getok.vocab.peft_utils import language_model_lora_regex, language_model_prefix

    model = _tiny_llava_and_idefics3()[family]
    lm = {"llava": "model.language_model", "idefics3": "model.text_model"}[family]
    proj = {"llava": "model.multi_modal_projector", "idefics3": "model.connector"}[family]
    tower = {"llava": "model.vision_tower", "idefics3": "model.vision_model"}[family]
    assert language_model_prefix(model) == lm
    full_finetune_setup(model, train_vision=False, train_merger=True)
    flags = dict((n, p.requires_grad) for n, p in model.named_parameters())
    assert not any(v for n, v in flags.items() if n.startswith(tower + "."))  # train_vision=false is honoured
    assert all(v for n, v in flags.items() if n.startswith(proj + ".") or n.startswith(lm + "."))
    full_finetune_setup(model, train_vision=True, train_merger=False)
    flags = dict((n, p.requires_grad) for n, p in model.named_parameters())
    assert all(v for n, v in flags.items() if n.startswith(tower + "."))
    assert not any(v for n, v in flags.items() if n.startswith(proj + "."))
    # LoRA: 2 layers x the 7 projections of the language model, nothing of the tower or projector
    regex = language_model_lora_regex(model)
    hits = [n for n, _ in model.named_modules() if re.fullmatch(regex, n)]
    assert len(hits) == 14 and all(n.startswith(lm + ".layers.") for n in hits)
