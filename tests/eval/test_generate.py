"""Batched generation: the SFT prompt minus the answer, left padding, determinism, swappable contexts."""

from __future__ import annotations

import pytest

from getok.data_builders.dataset import read_dataset
from getok.data_builders.export import trl_messages
from getok.errors import ConfigError
from getok.eval.generate import ModelGenerator, generate_answers, prompt_messages
from getok.samples import Turn


def test_prompt_is_the_training_conversation_minus_the_answer(scene_dataset):
    ds = read_dataset(scene_dataset)
    refine = next(s for s in ds.samples if s.task == "refine")
    msgs = prompt_messages(refine)
    assert msgs == trl_messages(refine)[:-1]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"][0]["text"] == refine.turns[0].assistant
    ctx = [Turn(refine.turns[0].user, "<g16_r01_c01>"), Turn("Refine.", "")]
    alt = prompt_messages(refine, ctx)
    assert alt[1]["content"][0]["text"] == "<g16_r01_c01>" and alt[2]["content"][0]["text"] == "Refine."


def test_chat_template_rendering(tiny_model, scene_dataset):
    _, proc = tiny_model
    s = read_dataset(scene_dataset).samples[0]
    text = proc.apply_chat_template(prompt_messages(s), tokenize=False, add_generation_prompt=True)
    assert "<|vision_start|><|image_pad|><|vision_end|>" in text
    assert text.endswith("<|im_start|>assistant\n") and s.turns[0].user.split("\n", 1)[1] in text


def test_generation_is_deterministic_and_restores_padding(tiny_model, scene_dataset):
    model, proc = tiny_model
    samples = read_dataset(scene_dataset).samples[:4]
    proc.tokenizer.padding_side = "right"
    a = generate_answers(model, proc, samples, image_root=scene_dataset, max_new_tokens=6, batch_size=4, progress=False)
    b = generate_answers(model, proc, samples, image_root=scene_dataset, max_new_tokens=6, batch_size=4, progress=False)
    assert a == b and len(a) == 4 and all(isinstance(t, str) for t in a)
    assert proc.tokenizer.padding_side == "right"
    proc.tokenizer.padding_side = "left"
    gen = ModelGenerator(model, proc, image_root=scene_dataset, batch_size=4, progress=False)
    assert gen(samples, max_new_tokens=6) == a and gen.tokenizer is proc.tokenizer


def test_spatial_tokens_survive_decoding(tiny_model, scene_dataset):
    """A forced answer of spatial tokens comes back verbatim (non-special tokens, skip_special_tokens=True)."""
    from getok.eval.constrained import grammar_for

    model, proc = tiny_model
    s = read_dataset(scene_dataset).samples[0]
    out = generate_answers(model, proc, [s], image_root=scene_dataset, max_new_tokens=3, progress=False,
                           constrained=[grammar_for(s.codec, "mask", allow_none=False)])  # fmt: skip
    from getok.codecs import get_codec

    assert out[0].startswith("<g16_r") and 1 <= out[0].count("<g16_") <= 3
    assert get_codec(s.codec).try_decode(out[0], s.size, "mask").valid


def test_argument_checks(tiny_model, scene_dataset):
    model, proc = tiny_model
    samples = read_dataset(scene_dataset).samples[:2]
    with pytest.raises(ConfigError, match="turns_context"):
        generate_answers(model, proc, samples, image_root=scene_dataset, turns_context=[[]], progress=False)
    with pytest.raises(ConfigError, match="grammars"):
        generate_answers(model, proc, samples, image_root=scene_dataset, constrained=[None], progress=False)
    assert generate_answers(model, proc, [], progress=False) == []


def test_images_go_to_the_processor_as_one_list_per_sample(tiny_model, scene_dataset):
    """Processors that pair images with samples (Gemma 3) need ``[[img], [img], ...]``; the answers are the
    same as with a flat list for the Qwen processors."""
    model, proc = tiny_model
    samples = read_dataset(scene_dataset).samples[:3]
    seen = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, **kw):
            seen.append(kw.get("images"))
            return self.inner(**kw)

    out = generate_answers(model, Recording(proc), samples, image_root=scene_dataset, max_new_tokens=4, batch_size=3,
                           progress=False)  # fmt: skip
    assert len(seen) == 1 and [len(x) for x in seen[0]] == [1, 1, 1]
    assert out == generate_answers(model, proc, samples, image_root=scene_dataset, max_new_tokens=4, batch_size=3,
                                   progress=False)  # fmt: skip
