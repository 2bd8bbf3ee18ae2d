"""add_spatial_tokens / validate_layout: untouched rows, non-special tokens, idempotence, layout checks."""

from __future__ import annotations

import pytest
import torch

from getok.errors import ConfigError, LayoutMismatchError
from getok.vocab import VocabLayout, add_spatial_tokens, validate_layout

from ._helpers import logits, weights

SPEC = "grid_offset:n=8,r=1,step=0.5"


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_old_rows_bit_identical_and_sizes_follow(load_tiny, kind):
    model, proc = load_tiny(kind)
    n0 = len(proc.tokenizer)
    e0, h0 = weights(model)
    layout = add_spatial_tokens(proc, model, [SPEC, "bins:bins=16"], init="mean")
    e1, h1 = weights(model)
    k = len(layout.tokens)
    assert k == 64 + 9 + 1 + 16
    assert layout.ids == list(range(n0, n0 + k))
    assert e1.shape[0] == h1.shape[0] == n0 + k == len(proc.tokenizer)
    assert torch.equal(e1[:n0], e0) and torch.equal(h1[:n0], h0)
    assert not torch.equal(e1[n0:], e1[n0:n0 + 1].expand(k, -1))  # noise: new rows differ from each other
    assert model.config.text_config.vocab_size == n0 + k
    assert model.model.language_model.vocab_size == n0 + k
    assert model.lm_head.out_features == n0 + k
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == (kind == "tied")
    out = model(input_ids=torch.tensor([layout.ids[:5]])).logits
    assert out.shape[-1] == n0 + k


def test_tokens_are_non_special_single_ids(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, [SPEC])
    tok = proc.tokenizer
    for t, i in zip(layout.tokens, layout.ids):
        assert tok.encode(t, add_special_tokens=False) == [i]
        assert not tok.added_tokens_decoder[i].special
    text = "Answer: <g8_r1_c2><off_-1_0> and <DELETE>.<|im_end|>"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "Answer: <g8_r1_c2><off_-1_0> and <DELETE>."
    assert "<g8_r1_c2>" in tok.convert_ids_to_tokens(ids)


def test_idempotent(load_tiny):
    model, proc = load_tiny()
    first = add_spatial_tokens(proc, model, [SPEC], init="2d")
    e1, h1 = weights(model)
    n = len(proc.tokenizer)
    again = add_spatial_tokens(proc, model, [SPEC], init="random", seed=5)
    e2, h2 = weights(model)
    assert len(proc.tokenizer) == n and again.ids == first.ids and again.tokens == first.tokens
    assert torch.equal(e1, e2) and torch.equal(h1, h2)
    assert again.extra["base_vocab"] == first.extra["base_vocab"]


def test_extending_a_layout_keeps_earlier_tokens(load_tiny):
    model, proc = load_tiny()
    a = add_spatial_tokens(proc, model, ["grid:n=4"])
    e1, _ = weights(model)
    b = add_spatial_tokens(proc, model, ["grid:n=4", "bins:bins=8"])
    e2, _ = weights(model)
    assert b.ids[: len(a.ids)] == a.ids
    assert torch.equal(e2[: e1.shape[0]], e1)


def test_padded_vocab_uses_padding_rows_first(load_tiny):
    model, proc = load_tiny("padded")
    n0, rows0 = len(proc.tokenizer), model.get_input_embeddings().weight.shape[0]
    assert rows0 % 64 == 0 and rows0 > n0  # like Qwen2.5-VL-7B: 152064 rows for 151665 tokens
    e0, h0 = weights(model)
    layout = add_spatial_tokens(proc, model, ["grid:n=4"])  # 16 tokens fit in the padding
    e1, h1 = weights(model)
    assert e1.shape[0] == rows0 and model.config.text_config.vocab_size == rows0
    assert torch.equal(e1[:n0], e0[:n0]) and torch.equal(h1[:n0], h0[:n0])
    assert torch.equal(e1[n0 + 16:], e0[n0 + 16:])  # unused padding rows kept
    assert not torch.equal(e1[n0:n0 + 16], e0[n0:n0 + 16])
    assert layout.extra["base_rows"] == rows0
    big = add_spatial_tokens(proc, model, ["grid:n=4", SPEC], pad_to_multiple_of=64)
    assert model.get_input_embeddings().weight.shape[0] % 64 == 0
    assert model.get_input_embeddings().weight.shape[0] >= len(proc.tokenizer) > rows0
    validate_layout(big, proc, model)


def test_special_token_collision_refused(load_tiny):
    from tokenizers import AddedToken

    model, proc = load_tiny()
    proc.tokenizer.add_tokens([AddedToken("<DELETE>", special=True, normalized=False)], special_tokens=True)
    with pytest.raises(LayoutMismatchError, match="special"):
        add_spatial_tokens(proc, model, [SPEC])


def test_validate_names_first_difference(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, [SPEC])
    assert validate_layout(layout, proc, model) is layout
    bad = VocabLayout(layout.codecs, layout.tokens, list(layout.ids), layout.extra)
    bad.ids[3], bad.ids[4] = bad.ids[4], bad.ids[3]
    with pytest.raises(LayoutMismatchError, match=r"token '<g8_r0_c3>': layout id \d+ but tokenizer id \d+"):
        validate_layout(bad, proc)
    other = VocabLayout.from_codecs(["grid_offset:n=9,r=1,step=0.5"])
    with pytest.raises(LayoutMismatchError, match="<g9_r0_c0>.*not in the tokenizer"):
        validate_layout(other, proc)
    with pytest.raises(LayoutMismatchError, match=r"token 0 differs: '<g8_r0_c0>' here, '<g9_r0_c0>'"):
        layout.check_matches(other, what="dataset")
    fresh, _ = load_tiny()
    with pytest.raises(LayoutMismatchError, match="embedding rows"):
        validate_layout(layout, proc, fresh)


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_save_load_reproduces_logits_and_layout(load_tiny, tmp_path, kind):
    from getok.vocab import load_model_and_processor

    model, proc = load_tiny(kind)
    layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
    before = logits(model, proc)
    model.save_pretrained(tmp_path / "m")
    proc.save_pretrained(tmp_path / "m")
    layout.save(tmp_path / "m")
    m2, p2 = load_model_and_processor(tmp_path / "m")  # validates the layout
    assert torch.equal(logits(m2, p2), before)
    assert VocabLayout.load(tmp_path / "m").to_dict() == layout.to_dict()
    assert (m2.lm_head.weight is m2.get_input_embeddings().weight) == (kind == "tied")


def test_bad_token_text_rejected(load_tiny):
    from getok.vocab.add_tokens import _check_one_id

    _, proc = load_tiny()
    with pytest.raises(ConfigError, match="single id"):
        _check_one_id(proc.tokenizer, ["hello world"], [5])
