"""Model adapters (getok.vocab.adapters): image-token counts, pixel bounds, parts, end of turn, the registry.

LLaVA and Idefics3 processors are built from a CLIP / Idefics3 image processor and the tiny tokenizer with the
family's image token added (nothing downloaded); their counts are checked against what the processor really
produces.
"""

from __future__ import annotations

import pytest

from getok.train.data import sample_lengths
from getok.train.sft import set_pixel_bounds
from getok.vocab.adapters import (
    Gemma3Adapter,
    GenericAdapter,
    Idefics3Adapter,
    LlavaAdapter,
    Qwen3VLAdapter,
    QwenVLAdapter,
    adapter_for,
    register_adapter,
)

BOUNDS = (56 * 56, 112 * 112)  # the tiny recipes' min_pixels / max_pixels
SIZES = [(112, 112), (80, 120), (200, 60)]  # (H, W)

LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% if m['role'] == 'assistant' %}{{ eos_token }}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _image(size):
    from PIL import Image

    return Image.new("RGB", (size[1], size[0]), (200, 30, 30))


def _conversation(answer="cell 3"):
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the red square?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def _processed(processor, size):
    """input_ids of one real templated sample with one image of ``size``."""
    text = processor.apply_chat_template(_conversation(), tokenize=False)
    return [int(t) for t in processor(text=[text], images=[_image(size)])["input_ids"][0]]


@pytest.fixture(scope="module")
def qwen3():
    from getok.vocab import make_tiny_model

    model, processor = make_tiny_model()  # Qwen3-VL, 14-px unit (patch 7 x merge 2)
    set_pixel_bounds(processor, *BOUNDS)
    return model, processor


@pytest.fixture(scope="module")
def other_processors():
    """LLaVA (CLIP: resize to 28 px + centre crop, patch 14) and Idefics3 (resize the longest edge to 56 px,
    split into 28-px crops + a global view, 4 tokens each) processors on the tiny tokenizer."""
    from transformers import CLIPImageProcessor, Idefics3ImageProcessor, Idefics3Processor, LlavaProcessor

    from getok.vocab.tiny import build_tiny_tokenizer

    tl = build_tiny_tokenizer()
    tl.add_tokens(["<image>"], special_tokens=True)
    tl.image_token = "<image>"
    llava = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tl, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )  # fmt: skip
    ti = build_tiny_tokenizer()
    ti.add_tokens(["<image>", "<fake_token_around_image>", "<end_of_utterance>", "<global-img>"], special_tokens=True)
    ti.image_token = "<image>"
    idefics3 = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 28}),
        tokenizer=ti, image_seq_len=4, chat_template=IDEFICS3_TEMPLATE,
    )  # fmt: skip
    return {"llava": llava, "idefics3": idefics3}


# ------------------------------------------------------------------------------------------------ Qwen-VL
def test_qwen3_vl_count_is_what_the_processor_produces_and_the_old_formula(qwen3):
    _, processor = qwen3
    ad = adapter_for(processor)
    assert isinstance(ad, Qwen3VLAdapter)
    ip = processor.image_processor
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for size in SIZES:
        real = _processed(processor, size).count(pad)
        old = ip.get_number_of_image_patches(size[0], size[1], {}) // ip.merge_size**2  # the old formula
        assert ad.image_token_count(processor, size) == real == old
        # rendering (what other families do) gives the same answer
        assert GenericAdapter().image_token_count(processor, size) == real
    assert ad.image_token_count(processor, (112, 112)) == 64  # 8 x 8 tokens of 14 px


def test_qwen3_vl_bounds_in_its_32_px_unit_keep_16_tokens_at_112_px():
    """A real Qwen3-VL image processor (patch 16, merge 2): the tiny recipes' 112² bound cut a 112-px image to
    96 px (3 x 3 = 9 tokens); in its unit the bound keeps 4 x 4 = 16."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    from getok.vocab.tiny import build_tiny_tokenizer, chat_template

    common = dict(patch_size=16, temporal_patch_size=2, merge_size=2)
    processor = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(**common),
                                 video_processor=Qwen3VLVideoProcessor(**common),
                                 tokenizer=build_tiny_tokenizer(), chat_template=chat_template())  # fmt: skip
    assert set_pixel_bounds(processor, *BOUNDS) is not False
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert _processed(processor, (112, 112)).count(pad) == 16
    assert adapter_for(processor).image_token_count(processor, (112, 112)) == 16
    assert processor.image_processor.size["longest_edge"] == 128 * 128
    assert processor.image_processor.size["shortest_edge"] == 56 * 56  # never raised


def test_qwen2_5_vl_bounds_are_written_as_given():
    from getok.vocab import TinyModelConfig, make_tiny_model

    _, processor = make_tiny_model(TinyModelConfig(family="qwen2_5_vl", patch_size=14))
    assert isinstance(adapter_for(processor), QwenVLAdapter) and not isinstance(adapter_for(processor), Qwen3VLAdapter)
    set_pixel_bounds(processor, 3136, 1003520)  # the 7B recipe's bounds; 1003520 is not a square
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (3136, 1003520)
    set_pixel_bounds(processor, None, 12544)
    assert (size := processor.image_processor.size)["shortest_edge"] == 3136 and size["longest_edge"] == 12544


# ------------------------------------------------------------------------------------------------ LLaVA / Idefics3
@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_rendered_counts_and_sample_lengths_match_the_processor(other_processors, family):
    processor = other_processors[family]
    ad = adapter_for(processor)
    assert type(ad) is {"llava": LlavaAdapter, "idefics3": Idefics3Adapter}[family]
    img = processor.tokenizer.convert_tokens_to_ids("<image>")
    msgs = [_conversation(), _conversation("a longer answer than the first")]
    for size in SIZES:
        ids = _processed(processor, size)
        assert ad.image_token_count(processor, size) == ids.count(img) > 0
        got = sample_lengths(processor, msgs, [[size]] * len(msgs))  # the old code: AttributeError / TypeError
        for m, n in zip(msgs, got):
            text = processor.apply_chat_template(m, tokenize=False)
            assert n == len(processor(text=[text], images=[_image(size)])["input_ids"][0])
    if family == "idefics3":  # crops depend on the aspect ratio: 2 x 2 + global vs 2 x 1 + global (x 4 tokens)
        assert ad.image_token_count(processor, (112, 112)) == 20 and ad.image_token_count(processor, (200, 60)) == 12


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_pixel_bounds_leave_clip_and_siglip_processors_alone(other_processors, family):
    processor = other_processors[family]
    ip = processor.image_processor
    before = (dict(ip.size), dict(getattr(ip, "crop_size", None) or {}), dict(getattr(ip, "max_image_size", None) or {}))
    shape = processor.image_processor(images=[_image((112, 112))], return_tensors="np")["pixel_values"].shape
    assert set_pixel_bounds(processor, *BOUNDS) is False  # the old code set size to 3136 / 12544 px
    assert (dict(ip.size), dict(getattr(ip, "crop_size", None) or {}),
            dict(getattr(ip, "max_image_size", None) or {})) == before  # fmt: skip
    assert processor.image_processor(images=[_image((112, 112))], return_tensors="np")["pixel_values"].shape == shape


# ------------------------------------------------------------------------------------------------ parts, end of turn
def test_parts_and_lora_targets_come_from_the_structure():
    import re

    from .test_peft import _tiny_llava_and_idefics3

    for family, model in _tiny_llava_and_idefics3().items():
        ad = adapter_for(model)
        assert ad.name == family
        names = [n for n, _ in model.named_parameters()]
        parts = {ad.parameter_part(n, model) for n in names}
        assert parts == {"language", "projector", "vision"}
        hits = [n for n, _ in model.named_modules() if re.fullmatch(ad.lora_target_modules(model), n)]
        assert len(hits) == 14 and all(ad.parameter_part(n + ".weight", model) == "language" for n in hits)


def test_end_of_turn_tokens_from_the_tokenizer_and_template(qwen3, other_processors):
    _, processor = qwen3
    assert adapter_for(processor).end_of_turn_tokens(processor) == ["<|im_end|>"]
    idefics3 = other_processors["idefics3"]
    assert adapter_for(idefics3).end_of_turn_tokens(idefics3) == ["<|im_end|>", "<end_of_utterance>"]


# ------------------------------------------------------------------------------------------------ registry
def test_registered_adapter_is_picked_by_model_type_and_the_fallback_otherwise(qwen3):
    from transformers import Gemma3Config, LlavaConfig

    model, _ = qwen3
    assert isinstance(adapter_for(model), Qwen3VLAdapter) and isinstance(adapter_for(model.config), Qwen3VLAdapter)
    assert isinstance(adapter_for(LlavaConfig()), LlavaAdapter)
    assert isinstance(adapter_for("qwen3_vl_moe"), Qwen3VLAdapter) and isinstance(adapter_for("smolvlm"), Idefics3Adapter)
    assert type(adapter_for(Gemma3Config())) is Gemma3Adapter
    assert type(adapter_for("paligemma")).__name__ == "PaliGemmaAdapter"
    assert type(adapter_for("no_such_family")) is GenericAdapter

    @register_adapter
    class _TestAdapter(GenericAdapter):
        name = "getok_test_vl"
        model_types = ("getok_test_vl",)

    assert type(adapter_for("getok_test_vl")) is _TestAdapter
    assert adapter_for("getok_test_vl") is adapter_for("getok_test_vl")  # one instance per class
