"""The settings of the tiny model: :class:`TinyModelConfig` (family, text and vision sizes, chat template
choices, tokenizer and image processor bounds, seed), validated on creation, and the :data:`FAMILIES` it
knows. The builder is :mod:`getok.vocab.tiny`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["TinyModelConfig", "FAMILIES", "MOE_FIELDS"]

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
