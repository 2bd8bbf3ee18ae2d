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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

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

#: Qwen2.5-VL's special tokens, in Qwen's id order (they follow the BPE vocabulary).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Pre-tokenizer split (ours, in the spirit of Qwen's): contractions, letter runs with one optional leading
#: non-letter, single digits, punctuation runs, newlines, spaces.
_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_MEDIA = (
    "{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'video' or 'video' in item -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
)
_IS_MEDIA = "(item['type'] in ('image', 'video') or 'image' in item or 'image_url' in item or 'video' in item)"


def chat_template(system_prompt: str | None = "You are a helpful assistant.", text_before_image: bool = False) -> str:
    """ChatML with Qwen's image / video placeholders.

    Assistant content (and its ``<|im_end|>``) sits inside ``{% generation %}`` so
    ``return_assistant_tokens_mask`` marks exactly what the model must learn to write. ``system_prompt``
    ``None`` writes no system turn; ``text_before_image`` renders a user turn's text items before its images
    (the order of the items is otherwise kept).

    >>> "<|im_start|>system" in chat_template(None)
    False
    """
    system = ""
    if system_prompt is not None:
        if "'" in system_prompt or "{" in system_prompt:
            raise ConfigError("system_prompt must not contain quotes or braces")
        system = (
            "{%- if loop.first and message['role'] != 'system' -%}"
            f"{{{{- '<|im_start|>system\\n{system_prompt}<|im_end|>\\n' -}}}}"
            "{%- endif -%}"
        )
    text_item = "{%- if 'text' in item -%}{{- item['text'] -}}{%- endif -%}"
    if text_before_image:
        user_items = (
            "{%- for item in message['content'] -%}{%- if not " + _IS_MEDIA + " -%}" + text_item
            + "{%- endif -%}{%- endfor -%}"
            "{%- for item in message['content'] -%}" + _MEDIA + "{%- endif -%}{%- endfor -%}"
        )
    else:
        user_items = "{%- for item in message['content'] -%}" + _MEDIA + "{%- elif 'text' in item -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}"
    return (
        "{%- for message in messages -%}"
        + system
        + "{%- if message['role'] == 'assistant' -%}"
        "{{- '<|im_start|>assistant\\n' -}}"
        "{% generation %}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>' -}}"
        "{% endgeneration %}"
        "{{- '\\n' -}}"
        "{%- else -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}" + user_items + "{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


#: The Qwen2.5-VL-style template (system turn, images where the message puts them).
CHAT_TEMPLATE = chat_template()

#: Model families the tiny builder knows.
FAMILIES = ("qwen3_vl", "qwen3_vl_moe", "qwen2_5_vl")
_FAMILY_THETA = {"qwen3_vl": 5_000_000.0, "qwen3_vl_moe": 5_000_000.0, "qwen2_5_vl": 1_000_000.0}
#: Fields only ``qwen3_vl_moe`` uses (left out of the other families' ``getok_tiny.json``).
MOE_FIELDS = ("num_experts", "num_experts_per_tok", "moe_intermediate_size")


@dataclass(frozen=True)
class TinyModelConfig:
    """Family and sizes of the tiny model (defaults: the CPU grounding recipe, ~3.5 M parameters).

    ``family``: ``qwen3_vl`` (default), ``qwen3_vl_moe`` or ``qwen2_5_vl`` (:data:`FAMILIES`).
    Text model: ``hidden_size`` (must equal ``vision_out_hidden_size``), ``num_layers`` decoder layers with
    ``num_heads`` query and ``num_kv_heads`` key/value heads; multimodal RoPE sections ``mrope_section``
    (temporal, height, width) must sum to ``head_dim / 2`` with ``head_dim = hidden_size / num_heads``
    (interleaved for Qwen3-VL); ``rope_theta`` ``None`` takes the family's (5e6 / 1e6).
    Vision tower: ``vision_depth`` blocks of width ``vision_hidden_size``, patch ``patch_size`` pixels merged
    ``spatial_merge_size`` x ``spatial_merge_size`` into one image token (the "unit" is their product: 14 px,
    so a 112-px scene is 8 x 8 tokens). Qwen3-VL: a learned absolute position table of
    ``num_position_embeddings`` entries (a square, interpolated to the patch grid) and DeepStack features
    from ``deepstack_visual_indexes``; Qwen2.5-VL: window attention of ``window_size`` pixels except the
    blocks in ``fullatt_block_indexes``.
    Qwen3-VL MoE (``qwen3_vl_moe`` only, :data:`MOE_FIELDS`): every decoder layer's MLP is a sparse block of
    ``num_experts`` experts of width ``moe_intermediate_size``, ``num_experts_per_tok`` routed per token
    (``intermediate_size`` is then unused).
    Chat template: ``system_prompt`` (``None``: no system turn) and ``text_before_image`` (:func:`chat_template`).
    Tokenizer: BPE with at most ``bpe_vocab_size`` entries (256 bytes + merges) before the special tokens;
    ``vocab_multiple`` pads the model's embedding rows to a multiple (Qwen pads 151665 tokens to 152064
    rows; 1 = no padding). Image processor: ``min_pixels`` / ``max_pixels`` (H * W after resizing).
    """

    family: str = "qwen3_vl"
    hidden_size: int = 256
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    mrope_section: tuple[int, int, int] = (8, 12, 12)
    rope_theta: float | None = None
    max_position_embeddings: int = 4096
    vision_depth: int = 2
    vision_hidden_size: int = 128
    vision_intermediate_size: int = 256
    vision_num_heads: int = 4
    vision_out_hidden_size: int = 256
    patch_size: int = 7
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    num_position_embeddings: int = 256
    deepstack_visual_indexes: tuple[int, ...] = ()
    num_experts: int = 4
    num_experts_per_tok: int = 2
    moe_intermediate_size: int = 128
    window_size: int = 112
    fullatt_block_indexes: tuple[int, ...] = (1,)
    tie_word_embeddings: bool = False
    system_prompt: str | None = None
    text_before_image: bool = True
    bpe_vocab_size: int = 1024
    vocab_multiple: int = 1
    min_pixels: int = 56 * 56
    max_pixels: int = 448 * 448
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ConfigError(f"TinyModelConfig.family must be one of {list(FAMILIES)}, got {self.family!r}")
        object.__setattr__(self, "mrope_section", tuple(int(v) for v in self.mrope_section))
        object.__setattr__(self, "fullatt_block_indexes", tuple(int(v) for v in self.fullatt_block_indexes))
        object.__setattr__(self, "deepstack_visual_indexes", tuple(int(v) for v in self.deepstack_visual_indexes))
        if self.rope_theta is None:
            object.__setattr__(self, "rope_theta", _FAMILY_THETA[self.family])
        if not (isinstance(self.rope_theta, (int, float)) and self.rope_theta > 0):
            raise ConfigError(f"TinyModelConfig.rope_theta must be > 0, got {self.rope_theta!r}")
        object.__setattr__(self, "rope_theta", float(self.rope_theta))
        for name in (
            "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "vision_depth",
            "vision_hidden_size", "vision_intermediate_size", "vision_num_heads", "vision_out_hidden_size",
            "patch_size", "spatial_merge_size", "temporal_patch_size", "window_size", "vocab_multiple",
            "max_position_embeddings", "num_position_embeddings", *MOE_FIELDS,
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"TinyModelConfig.{name} must be a positive int, got {v!r}")
        if self.family != "qwen3_vl_moe":
            changed = [f for f in MOE_FIELDS if getattr(self, f) != type(self).__dataclass_fields__[f].default]
            if changed:
                raise ConfigError(f"TinyModelConfig.{', '.join(changed)}: only family qwen3_vl_moe has experts")
        if self.num_experts_per_tok > self.num_experts:
            raise ConfigError(
                f"TinyModelConfig.num_experts_per_tok ({self.num_experts_per_tok}) must be <= num_experts "
                f"({self.num_experts})"
            )
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"TinyModelConfig.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"TinyModelConfig.num_kv_heads ({self.num_kv_heads}) must divide num_heads ({self.num_heads})"
            )
        head_dim = self.hidden_size // self.num_heads
        if len(self.mrope_section) != 3 or sum(self.mrope_section) * 2 != head_dim:
            raise ConfigError(
                f"TinyModelConfig.mrope_section {list(self.mrope_section)} must be 3 ints summing to "
                f"head_dim / 2 = {head_dim // 2}"
            )
        if self.vision_hidden_size % self.vision_num_heads:
            raise ConfigError("TinyModelConfig.vision_hidden_size must be divisible by vision_num_heads")
        if self.vision_out_hidden_size != self.hidden_size:
            raise ConfigError(
                f"TinyModelConfig.vision_out_hidden_size ({self.vision_out_hidden_size}) must equal "
                f"hidden_size ({self.hidden_size}): the merger feeds image tokens into the text model"
            )
        for name in ("fullatt_block_indexes", "deepstack_visual_indexes"):
            idx = getattr(self, name)
            if any(not 0 <= i < self.vision_depth for i in idx):
                raise ConfigError(f"TinyModelConfig.{name} {list(idx)} must lie in [0, vision_depth={self.vision_depth})")
        unit = self.patch_size * self.spatial_merge_size
        if self.family == "qwen2_5_vl" and self.window_size % unit:
            raise ConfigError(f"TinyModelConfig.window_size must be a multiple of patch * merge = {unit}")
        if round(self.num_position_embeddings**0.5) ** 2 != self.num_position_embeddings:
            raise ConfigError(
                f"TinyModelConfig.num_position_embeddings must be a square (a side x side table), "
                f"got {self.num_position_embeddings}"
            )
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ConfigError(f"TinyModelConfig.system_prompt must be a string or None, got {self.system_prompt!r}")
        if not 256 < self.bpe_vocab_size <= 100_000:
            raise ConfigError(f"TinyModelConfig.bpe_vocab_size must be in (256, 100000], got {self.bpe_vocab_size}")
        if not unit * unit <= self.min_pixels <= self.max_pixels:
            raise ConfigError(
                f"TinyModelConfig.min_pixels / max_pixels must satisfy {unit * unit} <= min_pixels <= max_pixels, "
                f"got {self.min_pixels} / {self.max_pixels}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"TinyModelConfig.seed must be a non-negative int, got {self.seed!r}")

    def to_dict(self) -> dict:
        """Plain values (tuples as lists); the MoE fields only for ``qwen3_vl_moe``, so the dense families'
        dictionaries (``getok_tiny.json``, run keys) are what they were before MoE existed."""
        d = asdict(self)
        if self.family != "qwen3_vl_moe":
            for k in MOE_FIELDS:
                d.pop(k)
        d["mrope_section"] = list(self.mrope_section)
        d["fullatt_block_indexes"] = list(self.fullatt_block_indexes)
        d["deepstack_visual_indexes"] = list(self.deepstack_visual_indexes)
        return d

    @property
    def unit(self) -> int:
        """Pixels per side of one image token (``patch_size * spatial_merge_size``)."""
        return self.patch_size * self.spatial_merge_size

    @classmethod
    def from_dict(cls, d: dict) -> TinyModelConfig:
        cls._check_fields(d, "TinyModelConfig")
        if "family" not in d:  # written before the family existed: the Qwen2.5-VL tiny model of its time
            d = {"family": "qwen2_5_vl", "patch_size": 14, "system_prompt": "You are a helpful assistant.",
                 "text_before_image": False, **d}  # fmt: skip
        return cls(**d)

    @classmethod
    def for_run(cls, model_cfg) -> TinyModelConfig:
        """The tiny model a run config's ``model`` section asks for: its ``tiny_seed``, pixel bounds and
        ``tiny`` overrides (SFT's ``ModelConfig`` and GRPO's ``PolicyConfig`` both have them)."""
        kw = {"seed": model_cfg.tiny_seed}
        for k in ("min_pixels", "max_pixels"):
            if getattr(model_cfg, k, None) is not None:
                kw[k] = getattr(model_cfg, k)
        over = dict(model_cfg.tiny or {})
        cls._check_fields(over, "model.tiny", hint="; see getok.vocab.tiny.TinyModelConfig")
        return cls(**{**kw, **over})  # lists (YAML) become tuples in __post_init__

    @classmethod
    def _check_fields(cls, d: dict, what: str, hint: str = "") -> None:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{what} has no field(s) {unknown}{hint}")


# ---------------------------------------------------------------------------------------------- tokenizer
def _train_tokenizer(cfg: TinyModelConfig):
    """Byte-level BPE trained on the built-in corpus, wrapped as a transformers fast tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ._corpus import tokenizer_corpus

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.bpe_vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        padding_side="left",
        model_max_length=cfg.max_position_embeddings,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        chat_template=chat_template(cfg.system_prompt, cfg.text_before_image),
    )


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


def build_tiny_tokenizer(config: TinyModelConfig | None = None):
    """Only the tiny model's tokenizer (``PreTrainedTokenizerFast``, trained locally, deterministic)."""
    return _train_tokenizer(config or TinyModelConfig())


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
    from ..io import atomic_dir, atomic_write_json

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
