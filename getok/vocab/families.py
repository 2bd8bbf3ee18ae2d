"""Tiny random-weight VLMs of the open families, built from configs with a local tokenizer (nothing downloaded).

The family matrix (``tests/vocab/test_family_matrix.py``, README "Model families") drives each of these
through getok's whole path; a real checkpoint of the family takes the same code (same classes, same
processor), only the sizes differ. Every family gets the tiny BPE tokenizer of :mod:`getok.vocab.tiny`
(trained locally) with the family's own image / turn tokens added, and a chat template in the family's
style whose assistant turns sit inside ``{% generation %}`` markers (TRL's ``assistant_only_loss``).

Image tokens of one 112-px image (the adapter's count, checked against the processor in the tests):

* ``qwen2_vl`` — ``Qwen2VLForConditionalGeneration``, ``Qwen2VLProcessor``: 16 (14-px patches, 2 x 2 merge);
* ``qwen2_5_vl`` — ``Qwen2_5_VLForConditionalGeneration``, ``Qwen2_5_VLProcessor``: 16;
* ``qwen3_vl`` / ``qwen3_vl_moe`` — ``Qwen3VL(Moe)ForConditionalGeneration``, ``Qwen3VLProcessor``: 64 (7-px
  patches, the tiny recipe's);
* ``internvl`` — ``InternVLForConditionalGeneration`` (InternViT, pixel shuffle), ``InternVLProcessor``: 10;
* ``llava_onevision`` — ``LlavaOnevisionForConditionalGeneration`` (SigLIP, anyres), ``LlavaOnevisionProcessor``: 24;
* ``idefics3`` — ``Idefics3ForConditionalGeneration`` (SigLIP), ``Idefics3Processor``: 20 (4 crops + a global
  view, framed by marker tokens);
* ``gemma3`` — ``Gemma3ForConditionalGeneration`` (SigLIP, pooled), ``Gemma3Processor``: 4 soft tokens;
* ``llava`` — ``LlavaForConditionalGeneration`` (CLIP), ``LlavaProcessor``: 4;
* ``mistral3`` — ``Mistral3ForConditionalGeneration`` (Pixtral), ``PixtralProcessor``: 4 (+ row breaks, end);
* ``paligemma`` — ``PaliGemmaForConditionalGeneration``, ``PaliGemmaProcessor``: refused.

The Qwen families come from :func:`getok.vocab.tiny.make_tiny_model` (Qwen2-VL: its Qwen2.5-VL sizes in
Qwen2-VL's classes). ``paligemma`` builds, but getok refuses it at start (:func:`check_family_supported`):
its processor has no chat template, and getok's prompts are conversations.

>>> FAMILIES[:4]
('qwen2_vl', 'qwen2_5_vl', 'qwen3_vl', 'qwen3_vl_moe')
"""

from __future__ import annotations

import copy
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_dir
from .adapters import adapter_for, check_supported
from .tiny import TinyModelConfig, build_tiny_tokenizer, make_tiny_model

__all__ = [
    "FAMILIES",
    "SUPPORTED_FAMILIES",
    "make_family_model",
    "build_family_model",
    "check_family_supported",
    "family_template",
]

#: Every family the builder knows (the matrix's rows), the refused one last.
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "internvl", "llava_onevision", "idefics3",
            "gemma3", "llava", "mistral3", "paligemma")  # fmt: skip
#: The families getok runs (all but PaliGemma).
SUPPORTED_FAMILIES = FAMILIES[:-1]

# text model sizes shared by the non-Qwen families (a Llama / Qwen2 / Gemma 3 / Mistral decoder)
_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             head_dim=16, max_position_embeddings=2048)  # fmt: skip
# a SigLIP / CLIP / Pixtral / InternViT tower: 1 layer of width 32, 14-px patches of a 28-px image
_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


def family_template(user: str, assistant: str, end: str, image: str, *, user_end: str | None = None) -> str:
    """A chat template in a family's style: each user turn ``user`` (``{role}`` is replaced by the role) +
    its items (an image item writes ``image``) + ``user_end`` (default ``end``), each assistant turn
    ``assistant`` + the answer + ``end`` inside ``{% generation %}`` markers, a newline after each turn.

    >>> "{% generation %}" in family_template("<|im_start|>{role}\\n", "<|im_start|>assistant\\n", "<|im_end|>", "<image>")
    True
    """
    for s in (user, assistant, end, image, user_end or ""):
        if "'" in s or "{%" in s:
            raise ConfigError(f"family_template: {s!r} must not contain quotes or template tags")
    user_end = end if user_end is None else user_end
    u = "'" + user.replace("\n", "\\n").replace("{role}", "' + message['role'] + '") + "'"
    esc = lambda s: s.replace("\n", "\\n")  # noqa: E731
    items = (
        "{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' or 'image' in item -%}{{- '" + esc(image) + "' -}}"
        "{%- elif 'text' in item -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}"
    )
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}"
        "{{- '" + esc(assistant) + "' -}}"
        "{% generation %}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{{- '" + esc(end) + "' -}}"
        "{% endgeneration %}"
        "{{- '\\n' -}}"
        "{%- else -%}"
        "{{- " + u + " -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}" + items + "{%- endif -%}"
        "{{- '" + esc(user_end) + "\\n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '" + esc(assistant) + "' -}}{%- endif -%}"
    )


_CHATML = dict(user="<|im_start|>{role}\n", assistant="<|im_start|>assistant\n", end="<|im_end|>")


def check_family_supported(processor) -> None:
    """Refuse, in one line, a model getok cannot drive (PaliGemma: no chat template):
    :func:`getok.vocab.adapters.check_supported`.

    Raises
    ------
    GetokError
        Naming the family and the reason.
    """

    check_supported(processor)


def _tokenizer(extra: list[str], **attrs):
    """The tiny BPE tokenizer (trained once per process) with ``extra`` special tokens; ``attrs`` name them
    (``image_token="<image>"`` ...) as the family's processor expects."""

    global _BASE_TOKENIZER
    if _BASE_TOKENIZER is None:
        _BASE_TOKENIZER = build_tiny_tokenizer()
    tok = copy.deepcopy(_BASE_TOKENIZER)
    new = [t for t in extra if t not in tok.get_vocab()]
    if new:
        tok.add_tokens(new, special_tokens=True)
    if attrs:  # named special tokens: saved in the tokenizer config, read back by the family's processor
        tok._set_model_specific_special_tokens(special_tokens=dict(attrs))
    return tok


_BASE_TOKENIZER = None


def _ids(tok, *tokens) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


def _text_common(tok) -> dict:
    return dict(vocab_size=len(tok), bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)  # fmt: skip


# ------------------------------------------------------------------------------------------------ builders
def _qwen(family: str, seed: int):
    sizes = dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                 mrope_section=(2, 3, 3), vision_hidden_size=32, vision_intermediate_size=64, vision_num_heads=2,
                 vision_out_hidden_size=64, vision_depth=1, fullatt_block_indexes=(0,), seed=seed,
                 min_pixels=56 * 56, max_pixels=112 * 112)  # fmt: skip
    if family == "qwen3_vl_moe":
        sizes.update(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=32)
    if family == "qwen2_vl":
        return _qwen2_vl(TinyModelConfig(family="qwen2_5_vl", patch_size=14, **sizes))
    patch = 14 if family == "qwen2_5_vl" else 7
    return make_tiny_model(TinyModelConfig(family=family, patch_size=patch, **sizes))


def _qwen2_vl(cfg):
    """Qwen2-VL: Qwen2.5-VL's tiny sizes and tokenizer in Qwen2-VL's classes (a plain ViT with a patch
    merger, 1-D M-RoPE sections, ``Qwen2VLProcessor``)."""
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    ref, qproc = make_tiny_model(cfg)
    tok = qproc.tokenizer
    t = ref.config.text_config
    text = dict(vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                num_key_value_heads=t.num_key_value_heads, max_position_embeddings=t.max_position_embeddings,
                bos_token_id=t.bos_token_id, eos_token_id=t.eos_token_id, pad_token_id=t.pad_token_id,
                rope_parameters=dict(t.rope_parameters), tie_word_embeddings=False, use_sliding_window=False)  # fmt: skip
    vision = dict(depth=cfg.vision_depth, embed_dim=cfg.vision_hidden_size, hidden_size=cfg.hidden_size, mlp_ratio=2,
                  num_heads=cfg.vision_num_heads, patch_size=cfg.patch_size, spatial_merge_size=cfg.spatial_merge_size,
                  temporal_patch_size=cfg.temporal_patch_size)  # fmt: skip
    c = ref.config
    mcfg = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=c.image_token_id,
                         video_token_id=c.video_token_id, vision_start_token_id=c.vision_start_token_id,
                         vision_end_token_id=c.vision_end_token_id, tie_word_embeddings=False)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Qwen2VLForConditionalGeneration(mcfg)
    model.generation_config = GenerationConfig(**ref.generation_config.to_diff_dict())
    common = dict(patch_size=cfg.patch_size, temporal_patch_size=cfg.temporal_patch_size, merge_size=cfg.spatial_merge_size,
                  min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)  # fmt: skip
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**common), video_processor=Qwen2VLVideoProcessor(**common),
                            tokenizer=tok, chat_template=qproc.chat_template)  # fmt: skip
    return model, proc


def _internvl(seed: int):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVisionConfig,
        Qwen2Config,
    )
    from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor

    tok = _tokenizer(["<img>", "</img>", "<IMG_CONTEXT>", "<video>"], start_image_token="<img>",
                     end_image_token="</img>", context_image_token="<IMG_CONTEXT>", video_token="<video>")  # fmt: skip
    vis = InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               image_size=[28, 28], patch_size=[14, 14])  # fmt: skip
    text = Qwen2Config(**_TEXT, **_text_common(tok))
    cfg = InternVLConfig(vision_config=vis, text_config=text, image_token_id=tok.context_image_token_id,
                         downsample_ratio=0.5, projector_hidden_act="gelu", vision_feature_layer=-1)  # fmt: skip
    ip = GotOcr2ImageProcessor(size={"height": 28, "width": 28}, crop_to_patches=False)
    proc = InternVLProcessor(image_processor=ip, tokenizer=tok, video_processor=InternVLVideoProcessor(),
                             image_seq_length=1, chat_template=family_template(**_CHATML, image="<IMG_CONTEXT>"))  # fmt: skip
    return _seeded(InternVLForConditionalGeneration, cfg, seed), proc


def _llava_onevision(seed: int):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )
    from transformers.models.llava_onevision.video_processing_llava_onevision import LlavaOnevisionVideoProcessor

    tok = _tokenizer(["<image>", "<video>"], image_token="<image>", video_token="<video>")
    vis = SiglipVisionConfig(**_VISION, image_size=28, patch_size=14)
    text = Qwen2Config(**_TEXT, **_text_common(tok))
    pin = [[28, 28], [28, 56], [56, 28], [56, 56]]
    cfg = LlavaOnevisionConfig(vision_config=vis, text_config=text, image_token_index=tok.image_token_id,
                               video_token_index=tok.video_token_id, image_grid_pinpoints=pin,
                               vision_feature_select_strategy="full", vision_feature_layer=-1)  # fmt: skip
    ip = LlavaOnevisionImageProcessor(size={"height": 28, "width": 28}, image_grid_pinpoints=pin)
    proc = LlavaOnevisionProcessor(image_processor=ip, tokenizer=tok, video_processor=LlavaOnevisionVideoProcessor(),
                                   num_image_tokens=4, vision_feature_select_strategy="full",
                                   chat_template=family_template(**_CHATML, image="<image>"))  # fmt: skip
    return _seeded(LlavaOnevisionForConditionalGeneration, cfg, seed), proc


def _idefics3(seed: int):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        LlamaConfig,
        SiglipVisionConfig,
    )

    tok = _tokenizer(["<image>", "<fake_token_around_image>", "<end_of_utterance>", "<global-img>"], image_token="<image>")
    text = LlamaConfig(**_TEXT, **_text_common(tok))
    vis = SiglipVisionConfig(**_VISION, image_size=28, patch_size=14)
    cfg = Idefics3Config(vision_config=vis.to_dict(), text_config=text.to_dict(), image_token_id=tok.image_token_id,
                         scale_factor=1)  # fmt: skip
    ip = Idefics3ImageProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 28})
    tpl = family_template("<|im_start|>User:", "<|im_start|>Assistant:", "<end_of_utterance>", "<image>")
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=tpl)
    return _seeded(Idefics3ForConditionalGeneration, cfg, seed), proc


def _gemma3(seed: int):
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    tok = _tokenizer(["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"],
                     boi_token="<start_of_image>", eoi_token="<end_of_image>", image_token="<image_soft_token>")  # fmt: skip
    text = Gemma3TextConfig(**_TEXT, **_text_common(tok), sliding_window=64)
    vis = SiglipVisionConfig(**_VISION, image_size=56, patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vis, mm_tokens_per_image=4, boi_token_index=tok.boi_token_id,
                       eoi_token_index=tok.eoi_token_id, image_token_index=tok.image_token_id)  # fmt: skip
    ip = Gemma3ImageProcessor(size={"height": 56, "width": 56})
    tpl = family_template("<start_of_turn>{role}\n", "<start_of_turn>model\n", "<end_of_turn>", "<start_of_image>")
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=4, chat_template=tpl)
    return _seeded(Gemma3ForConditionalGeneration, cfg, seed), proc


def _llava(seed: int):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = _tokenizer(["<image>"], image_token="<image>")
    text = LlamaConfig(**_TEXT, **_text_common(tok))
    vis = CLIPVisionConfig(**_VISION, image_size=28, patch_size=14)
    cfg = LlavaConfig(vision_config=vis, text_config=text, image_token_index=tok.image_token_id)
    ip = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    tpl = family_template("USER: ", "ASSISTANT: ", "<|im_end|>", "<image>\n", user_end="")
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, chat_template=tpl)  # fmt: skip
    return _seeded(LlavaForConditionalGeneration, cfg, seed), proc


def _mistral3(seed: int):
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralImageProcessor,
        PixtralProcessor,
        PixtralVisionConfig,
    )

    tok = _tokenizer(["[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]", "</s>"])
    text = MistralConfig(**_TEXT, **_text_common(tok), sliding_window=None)
    vis = PixtralVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              head_dim=16, image_size=56, patch_size=14)  # fmt: skip
    cfg = Mistral3Config(vision_config=vis, text_config=text, image_token_index=tok.convert_tokens_to_ids("[IMG]"),
                         spatial_merge_size=2, vision_feature_layer=-1)  # fmt: skip
    ip = PixtralImageProcessor(size={"longest_edge": 56}, patch_size=14)
    tpl = family_template("[INST]", "", "</s>", "[IMG]", user_end="[/INST]")
    proc = PixtralProcessor(image_processor=ip, tokenizer=tok, patch_size=14, spatial_merge_size=2, chat_template=tpl)
    return _seeded(Mistral3ForConditionalGeneration, cfg, seed), proc


def _paligemma(seed: int):
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    tok = _tokenizer(["<image>"], image_token="<image>")
    tok.chat_template = None
    text = GemmaConfig(**_TEXT, **_text_common(tok))
    vis = SiglipVisionConfig(**_VISION, image_size=28, patch_size=14, projection_dim=64)
    cfg = PaliGemmaConfig(vision_config=vis, text_config=text, image_token_index=tok.image_token_id, projection_dim=64)
    ip = SiglipImageProcessor(size={"height": 28, "width": 28}, image_seq_length=4)
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)
    return _seeded(PaliGemmaForConditionalGeneration, cfg, seed), proc


def _seeded(cls, cfg, seed: int):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg)


_BUILDERS = {"internvl": _internvl, "llava_onevision": _llava_onevision, "idefics3": _idefics3, "gemma3": _gemma3,
             "llava": _llava, "mistral3": _mistral3, "paligemma": _paligemma}  # fmt: skip


def make_family_model(family: str, seed: int = 0):
    """A tiny random-weight model of ``family`` (:data:`FAMILIES`) and its processor, in memory.

    The model is in eval mode (float32, CPU); its generation config stops at the family's end-of-turn
    tokens (:meth:`~getok.vocab.adapters.ModelAdapter.end_of_turn_tokens`). Deterministic per ``seed``.
    """
    from transformers import GenerationConfig

    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; one of {list(FAMILIES)}")
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe"):
        model, proc = _qwen(family, seed)
    else:
        model, proc = _BUILDERS[family](seed)
    model.eval()
    tok = proc.tokenizer
    ends = adapter_for(model).end_of_turn_tokens(proc) if getattr(proc, "chat_template", None) else [tok.eos_token]
    model.generation_config = GenerationConfig(eos_token_id=_ids(tok, *ends), pad_token_id=tok.pad_token_id,
                                               bos_token_id=model.config.get_text_config().bos_token_id)  # fmt: skip
    return model, proc


def build_family_model(family: str, out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """:func:`make_family_model` written to ``out_dir`` (model + processor), loadable with
    :func:`~getok.vocab.loading.load_model_and_processor` offline."""

    model, proc = make_family_model(family, seed)
    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        proc.save_pretrained(tmp)
    return out
