"""SAM 2 through transformers' ``Sam2Model``: loading from a local directory and a tiny random-weight twin.

Used by the SAM 2 proposer and decoder. Weights come from a local directory
(``Sam2Model.from_pretrained(dir, local_files_only=True)``, safetensors); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, require
from ._transformers import load_pretrained

__all__ = ["load_sam2", "build_tiny_sam2"]


def _torch():
    return require("torch", "hf", "SAM 2")


def load_sam2(checkpoint: str | Path, device: str = "cpu", dtype: str | None = None):
    """``Sam2Model`` from a local transformers checkpoint directory (never downloads); ``dtype`` ``None``
    keeps the checkpoint's (``"float32"``, ``"bfloat16"``, ``"float16"``)."""
    return load_pretrained("Sam2Model", checkpoint, device, dtype, what="SAM2")


def build_tiny_sam2(image_size: int = 128, seed: int = 0):
    """A tiny transformers ``Sam2Model`` with random weights (tests, benchmarks), ~0.3 M parameters.

    Hiera backbone with 4 stages of 1-1-2-1 blocks (16-128 channels), FPN width 32, one two-way
    transformer layer; ``image_size`` input (a multiple of 32).
    """
    torch = _torch()
    tf = require("transformers", "hf", "the SAM2 decoder")
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig

    s = int(image_size)
    if s % 32:
        raise ConfigError(f"image_size must be a multiple of 32, got {image_size}")
    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[s, s],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 2],
        global_attention_blocks=[3],  # a global block must not be a query-pooling (stage-first) block
        window_positional_embedding_background_size=[2, 2],
    )
    cfg = tf.Sam2Config(
        vision_config=dict(
            backbone_config=backbone,
            backbone_channel_list=[128, 64, 32, 16],
            backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            fpn_hidden_size=32,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=s, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=32, mlp_dim=64, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    torch.manual_seed(seed)
    return tf.Sam2Model(cfg).eval()
