"""segment-anything (SAM v1) models: safe checkpoint loading and a tiny random-weight twin.

Used by both the grid proposer (:mod:`getok.data_builders.proposers.sam`) and the mask decoder
(:mod:`getok.decoding.sam`). Checkpoints are read with ``torch.load(..., weights_only=True)`` (tensors
only, never arbitrary pickles) or from ``.safetensors``.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

from ..errors import ConfigError, DataError, require

__all__ = ["SAM_MODEL_TYPES", "load_state_dict", "load_sam", "build_tiny_sam", "model_fingerprint"]

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "default")


def load_state_dict(path: str | Path) -> dict:
    """Tensors of a checkpoint: ``.safetensors``, or a ``torch.save``-d state dict read with ``weights_only``.

    Raises :class:`ConfigError` when the file is missing and :class:`DataError` when it holds anything but
    tensors (nothing is unpickled).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        st = require("safetensors.torch", "hf", "safetensors checkpoints")
        return st.load_file(str(p))
    torch = require("torch", "sam", "SAM checkpoints")
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError / EOFError on non-tensor content
        raise DataError(f"{p} is not a plain tensor state dict (refusing to unpickle objects): {exc}") from exc
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise DataError(f"{p} holds a {type(sd).__name__}, not a state dict")
    return sd


def load_sam(checkpoint: str | Path | None = None, model_type: str = "vit_b", device: str = "cpu"):
    """A segment-anything ``Sam`` of ``model_type`` with ``checkpoint`` loaded (random weights if ``None``)."""
    if model_type not in SAM_MODEL_TYPES:
        raise ConfigError(f"model_type must be one of {SAM_MODEL_TYPES}, got {model_type!r}")
    state = load_state_dict(checkpoint) if checkpoint is not None else None  # fail fast, before building
    sa = require("segment_anything", "sam", "SAM")
    model = sa.sam_model_registry[model_type](checkpoint=None)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DataError(
                f"checkpoint {checkpoint} does not fit SAM {model_type}: "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
    return model.to(device).eval()


def build_tiny_sam(img_size: int = 128, embed_dim: int = 32, prompt_dim: int = 32, depth: int = 1, seed: int = 0):
    """A tiny ``Sam`` from ``segment_anything.modeling`` classes with random weights (tests, benchmarks).

    The real code path (ViT image encoder, prompt encoder, two-way transformer mask decoder, SAM's
    pre- and post-processing) at toy sizes: ``img_size`` input (patch 16), ``depth`` encoder blocks, one
    decoder block; embedding ``(prompt_dim, img_size / 16, img_size / 16)``; ~0.1 M parameters.
    """
    torch = require("torch", "sam", "the tiny SAM")
    require("segment_anything", "sam", "the tiny SAM")
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if img_size % 16:
        raise ConfigError(f"img_size must be a multiple of the patch size 16, got {img_size}")
    torch.manual_seed(seed)
    grid = img_size // 16
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=16,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=prompt_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_abs_pos=True,
            use_rel_pos=False,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=prompt_dim,
            transformer=TwoWayTransformer(depth=1, embedding_dim=prompt_dim, mlp_dim=2 * prompt_dim, num_heads=2),
            num_multimask_outputs=3,
            iou_head_depth=2,
            iou_head_hidden_dim=prompt_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return model.eval()


def model_fingerprint(model) -> str:
    """sha256 of a torch module's parameters and buffers (names, shapes, dtypes, values): a cache key."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(a.shape)}|{a.dtype}|".encode())
        h.update(a.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
