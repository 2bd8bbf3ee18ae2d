"""A tiny, offline Qwen-VL: random weights from a config, a locally trained tokenizer, a real processor.

``build_tiny_model(out_dir, TinyModelConfig())`` writes a directory that the stock Auto classes load with
``HF_HUB_OFFLINE=1``::

    AutoModelForImageTextToText.from_pretrained(out_dir)   # Qwen3VLForConditionalGeneration
    AutoProcessor.from_pretrained(out_dir)                 # Qwen3VLProcessor

It is the embedded default model for everything in getok that needs a VLM on a CPU: the code paths are the
ones a real ``Qwen/Qwen3-VL-8B-Instruct`` (``family="qwen3_vl"``, the default),
``Qwen/Qwen3-VL-30B-A3B-Instruct`` (``family="qwen3_vl_moe"``: ``Qwen3VLMoeForConditionalGeneration``, a
sparse MoE block of ``num_experts`` experts, ``num_experts_per_tok`` routed per token, in every decoder layer)
or ``Qwen/Qwen2.5-VL-7B-Instruct`` (``family="qwen2_5_vl"``) directory takes (same classes, same special
tokens, same image processor), only the sizes differ. ``patch_size=16`` gives the real Qwen3-VL's 32-px unit
(patch 16 x merge 2 per image token; a 112-px scene is 4 x 4 tokens once the pixel bounds are in that unit,
:class:`~getok.vocab.adapters.Qwen3VLAdapter`).

Why the default differs from the 7B recipe's base (docs/tiny_grounding.md has the measurements):

* **Qwen3-VL, not Qwen2.5-VL**: its vision tower adds a learned absolute position table to the patches, so
  an image token's *content* says where it is. Qwen2.5-VL's tower has only rotary positions, and a tiny
  random language model cannot read a position back out of M-RoPE in a CPU budget.
* **Patch 7** (a 14-px merged unit): a 112-px scene is 8 x 8 image tokens, one per cell of the 8 x 8 answer
  grid, instead of 4 x 4 tokens that each hold four answer cells.
* **The question before the image** (``text_before_image``) and no system turn: with causal attention the
  image tokens then read the question and can mark the object it names; with the image first, a tiny model
  never learned to bind the words to the pixels.

A 7B model keeps its own chat template and sizes; none of this applies to it.

Contents of the directory:

* ``config.json`` / ``model.safetensors`` / ``generation_config.json`` — the model (seeded random init);
* ``tokenizer.json`` / ``tokenizer_config.json`` — a byte-level BPE trained with ``tokenizers`` on a
  built-in corpus (any text encodes), Qwen's special tokens, eos ``<|im_end|>``, pad ``<|endoftext|>``,
  left padding;
* ``chat_template.jinja`` — a Qwen-style ChatML template whose assistant turns sit inside
  ``{% generation %}`` markers (TRL's ``assistant_only_loss`` needs them), :func:`chat_template`;
* ``processor_config.json`` / image and video processor configs — Qwen2-VL image processors with
  configurable min / max pixels;
* ``getok_tiny.json`` — the :class:`TinyModelConfig` it was built from.

Build time on a 2-core CPU: about 3 s (tokenizer training included); 3.5 M parameters with the defaults.

The settings are :mod:`getok.vocab.tiny_config`, the chat template and tokenizer :mod:`getok.vocab.tiny_text`;
this module builds the processor and the model and re-exports their names.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_dir, atomic_write_json
from .tiny_config import FAMILIES, MOE_FIELDS, TinyModelConfig
from .tiny_text import CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS, _train_tokenizer, build_tiny_tokenizer, chat_template

__all__ = [
    "TinyModelConfig",
    "TINY_CONFIG_FILE",
    "QWEN_SPECIAL_TOKENS",
    "CHAT_TEMPLATE",
    "FAMILIES",
    "MOE_FIELDS",
    "chat_template",
    "build_tiny_model",
    "make_tiny_model",
    "build_tiny_tokenizer",
    "read_tiny_config",
]

TINY_CONFIG_FILE = "getok_tiny.json"


# ---------------------------------------------------------------------------------------------- processor
def _make_processor(cfg: TinyModelConfig, tokenizer):
    from transformers import Qwen2VLImageProcessor

    if cfg.family in ("qwen3_vl", "qwen3_vl_moe"):  # the MoE model's processor is Qwen3-VL's
        from transformers import Qwen3VLProcessor as Processor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor as Video
    else:
        from transformers import Qwen2_5_VLProcessor as Processor
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor as Video

    common = dict(
        patch_size=cfg.patch_size,
        temporal_patch_size=cfg.temporal_patch_size,
        merge_size=cfg.spatial_merge_size,
    )
    image_processor = Qwen2VLImageProcessor(**common, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    video_processor = Video(**common, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    template = chat_template(cfg.system_prompt, cfg.text_before_image)
    return Processor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=template
    )


# ------------------------------------------------------------------------------------------------- model
def _model_config(cfg: TinyModelConfig, tokenizer):
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    rows = len(tokenizer)
    rows = -(-rows // cfg.vocab_multiple) * cfg.vocab_multiple
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta, "mrope_section": list(cfg.mrope_section)}
    text = dict(
        vocab_size=rows,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    vision = dict(
        depth=cfg.vision_depth,
        hidden_size=cfg.vision_hidden_size,
        intermediate_size=cfg.vision_intermediate_size,
        num_heads=cfg.vision_num_heads,
        out_hidden_size=cfg.vision_out_hidden_size,
        patch_size=cfg.patch_size,
        spatial_merge_size=cfg.spatial_merge_size,
        temporal_patch_size=cfg.temporal_patch_size,
    )
    tokens = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    if cfg.family in ("qwen3_vl", "qwen3_vl_moe"):
        text.update(head_dim=cfg.hidden_size // cfg.num_heads, rope_parameters={**rope, "mrope_interleaved": True})
        vision.update(
            num_position_embeddings=cfg.num_position_embeddings,
            deepstack_visual_indexes=list(cfg.deepstack_visual_indexes),
        )
        if cfg.family == "qwen3_vl":
            from transformers import Qwen3VLConfig

            return Qwen3VLConfig(text_config=text, vision_config=vision, **tokens)
        from transformers import Qwen3VLMoeConfig

        text.update(num_experts=cfg.num_experts, num_experts_per_tok=cfg.num_experts_per_tok,
                    moe_intermediate_size=cfg.moe_intermediate_size, decoder_sparse_step=1)  # fmt: skip
        return Qwen3VLMoeConfig(text_config=text, vision_config=vision, **tokens)
    from transformers import Qwen2_5_VLConfig

    text.update(max_window_layers=cfg.num_layers, use_sliding_window=False, rope_parameters=rope)
    vision.update(window_size=cfg.window_size, fullatt_block_indexes=list(cfg.fullatt_block_indexes))
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens)


def _model_class(cfg: TinyModelConfig):
    import transformers

    names = {"qwen3_vl": "Qwen3VLForConditionalGeneration", "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration",
             "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}  # fmt: skip
    return getattr(transformers, names[cfg.family])


def make_tiny_model(config: TinyModelConfig | None = None):
    """Build the tiny model and its processor in memory (nothing written).

    Returns
    -------
    (model, processor)
        ``Qwen3VLForConditionalGeneration`` / ``Qwen3VLMoeForConditionalGeneration`` /
        ``Qwen2_5_VLForConditionalGeneration`` (per ``family``) in
        eval mode (float32, CPU) and its processor. Deterministic: the same config gives bit-identical
        weights and the same tokenizer on every call.
    """
    import torch
    from transformers import GenerationConfig

    cfg = config or TinyModelConfig()
    tokenizer = _train_tokenizer(cfg)
    processor = _make_processor(cfg, tokenizer)
    mcfg = _model_config(cfg, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = _model_class(cfg)(mcfg)
    model.eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=mcfg.text_config.bos_token_id
    )
    return model, processor


def build_tiny_model(out_dir: str | Path, config: TinyModelConfig | None = None, overwrite: bool = False) -> Path:
    """Build the tiny model and write it (model, processor, ``getok_tiny.json``) to ``out_dir`` atomically.

    Parameters
    ----------
    out_dir
        Target directory; it must not exist unless ``overwrite``.
    config
        Sizes and seed (:class:`TinyModelConfig`; defaults when ``None``).

    Returns
    -------
    Path
        ``out_dir``, loadable with ``AutoModelForImageTextToText`` / ``AutoProcessor`` offline.
    """

    cfg = config or TinyModelConfig()
    model, processor = make_tiny_model(cfg)
    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        atomic_write_json(tmp / TINY_CONFIG_FILE, cfg.to_dict())
    return out


def read_tiny_config(path: str | Path) -> TinyModelConfig | None:
    """The :class:`TinyModelConfig` a directory was built from (``None`` for other models)."""
    p = Path(path) / TINY_CONFIG_FILE
    if not p.is_file():
        return None
    return TinyModelConfig.from_dict(json.loads(p.read_text()))
