"""LoRA on a mixture-of-experts language model reaches the fused expert weights (peft's ``target_parameters``):
the experts get adapters and gradients, merging folds them back, dense models are unchanged."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from getok.errors import ConfigError  # noqa: E402
from getok.vocab import add_spatial_tokens  # noqa: E402
from getok.vocab.peft_utils import language_model_expert_parameters, lora_config_for  # noqa: E402
from getok.vocab.tiny import TinyModelConfig, make_tiny_model  # noqa: E402


def _tiny(family: str):
    model, processor = make_tiny_model(TinyModelConfig(family=family))
    layout = add_spatial_tokens(processor, model, ["grid:n=4"])
    return model, layout


def test_expert_weights_get_lora_and_gradients():
    from peft import get_peft_model

    model, layout = _tiny("qwen3_vl_moe")
    experts = language_model_expert_parameters(model)
    assert experts and all(".experts." in n for n in experts)  # gate_up_proj / down_proj of every layer
    cfg = lora_config_for(model, layout, rank=4)
    assert cfg.lora_dropout == 0.0 and sorted(cfg.target_parameters) == experts
    with pytest.raises(ConfigError, match="dropout"):
        lora_config_for(model, layout, rank=4, dropout=0.05)
    assert lora_config_for(model, layout, rank=4, dropout=0.05, experts=False).target_parameters in (None, [])
    peft_model = get_peft_model(model, cfg)
    lora_expert = [n for n, p in peft_model.named_parameters() if p.requires_grad and "experts" in n and "lora_" in n]
    assert lora_expert  # adapters on the experts, not only on attention
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    out = peft_model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if n in set(lora_expert)}
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads.values())


def test_dense_models_have_no_expert_parameters():
    model, layout = _tiny("qwen3_vl")
    assert language_model_expert_parameters(model) == []
    cfg = lora_config_for(model, layout, rank=4)
    assert cfg.lora_dropout == 0.05 and not cfg.target_parameters


def test_merging_folds_the_expert_adapters_into_the_weights():
    from peft import get_peft_model

    model, layout = _tiny("qwen3_vl_moe")
    peft_model = get_peft_model(model, lora_config_for(model, layout, rank=4))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n and "experts" in n:
                p.normal_(0, 0.05)  # a trained-looking expert adapter (B starts at 0)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
        with peft_model.disable_adapter():
            plain = peft_model(input_ids=ids).logits
        merged = peft_model.merge_and_unload()(input_ids=ids).logits
    assert not torch.allclose(adapted, plain, atol=1e-4)  # the expert adapters change the output
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)
