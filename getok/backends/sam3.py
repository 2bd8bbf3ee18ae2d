"""SAM 3 through transformers' ``Sam3TrackerModel``: loading from a local directory and a tiny random-weight twin.

``Sam3TrackerModel`` is SAM 3's promptable (point / box / mask) segmenter on one image, with SAM 2's API:
``get_image_embeddings(pixel_values)`` then ``forward(image_embeddings=..., input_points=...,
input_boxes=...)``. Its image encoder is SAM 3's ViT (patch 14, 1008-px input) with an FPN neck.
Weights come from a local directory (``Sam3TrackerModel.from_pretrained(dir, local_files_only=True)``,
safetensors; the ``facebook/sam3`` checkpoint is gated and loads as is: its detector weights are
ignored); nothing is downloaded.

:class:`Sam3Engine` runs it: :class:`~getok.backends.sam2.Sam2Engine` with another model class and the
image normalisation of transformers' ``Sam3ImageProcessor`` (mean = std = 0.5 per channel; 1008-px input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, require
from ._transformers import load_pretrained
from .sam2 import Sam2Engine

__all__ = ["Sam3Engine", "load_sam3", "build_tiny_sam3"]


def load_sam3(checkpoint: str | Path, device: str = "cpu", dtype: str | None = None):
    """``Sam3TrackerModel`` from a local transformers checkpoint directory (never downloads); ``dtype``
    ``None`` keeps the checkpoint's (``"float32"``, ``"bfloat16"``, ``"float16"``)."""
    return load_pretrained("Sam3TrackerModel", checkpoint, device, dtype, what="SAM 3")


def build_tiny_sam3(image_size: int = 112, seed: int = 0):
    """A tiny transformers ``Sam3TrackerModel`` with random weights (tests, benchmarks), ~0.1 M parameters.

    SAM 3's ViT (2 layers, width 32, rotary positions, 4-patch windows with one global layer) and FPN
    neck (width 32), one two-way transformer layer in the mask decoder; ``image_size`` input (a multiple
    of the patch size 14; 112 → an 8 × 8 embedding, masks at 32 × 32).
    """
    torch = require("torch", "hf", "the tiny SAM 3")
    tf = require("transformers", "hf", "the tiny SAM 3")
    if not hasattr(tf, "Sam3TrackerModel"):
        raise ConfigError(f"transformers {tf.__version__} has no Sam3TrackerModel; upgrade transformers")
    s, patch = int(image_size), 14
    if s % patch:
        raise ConfigError(f"image_size must be a multiple of the patch size {patch}, got {image_size}")
    g = s // patch  # embedding side; the FPN adds 4x and 2x levels for the mask decoder
    backbone = tf.Sam3ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=s,
        patch_size=patch,
        pretrain_image_size=4 * patch,
        window_size=4,
        global_attn_indexes=[1],
    )
    cfg = tf.Sam3TrackerConfig(
        vision_config=tf.Sam3VisionConfig(
            backbone_config=backbone,
            fpn_hidden_size=32,
            backbone_feature_sizes=[[4 * g, 4 * g], [2 * g, 2 * g], [g, g]],
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=s, patch_size=patch, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=32, mlp_dim=64, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(seed)
    return tf.Sam3TrackerModel(cfg).eval()


class Sam3Engine(Sam2Engine):
    """A transformers ``Sam3TrackerModel`` behind :class:`~getok.backends.sam2.Sam2Engine`'s API (same
    parameters); only the model class and the pixel normalisation differ."""

    what = "SAM 3"
    model_class = "Sam3TrackerModel"
    model_type = "sam3_tracker"
    pixel_mean = np.full(3, 0.5, dtype=np.float32)
    pixel_std = np.full(3, 0.5, dtype=np.float32)

    @staticmethod
    def _load_model(checkpoint, device: str, dtype: str | None):
        return load_sam3(checkpoint, device, dtype)
