"""SAM 2 through transformers' ``Sam2Model``: loading from a local directory, a tiny random-weight twin, and
:class:`Sam2Engine`.

:class:`Sam2Engine` is the one place that runs a SAM 2 model: it embeds images (in-memory LRU, optional
on-disk cache; :mod:`getok.backends._engine`) and answers batched point / box prompts. The SAM 2 proposer
(:mod:`getok.data_builders.proposers.sam2`) and decoder (:mod:`getok.decoding.sam2`) both use it, and can
share one; :class:`~getok.backends.sam3.Sam3Engine` is the same with SAM 3's tracker. Weights come from a
local directory (``Sam2Model.from_pretrained(dir, local_files_only=True)``, safetensors); nothing is
downloaded. Meta's ``sam2`` package is not wired: convert its checkpoints with transformers' script.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, require
from ._engine import ImageEmbedding, PromptEngine
from ._transformers import load_pretrained, torch_dtype

__all__ = ["Sam2Engine", "load_sam2", "build_tiny_sam2", "IMAGENET_MEAN", "IMAGENET_STD"]

#: the image processor's normalisation (fractions of 255)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


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


class Sam2Engine(PromptEngine):
    """A transformers ``Sam2Model``, its input transform, image embeddings and batched prompts.

    Pre- and post-processing follow transformers' ``Sam2Processor``, done here with OpenCV and torch (no
    processor, no torchvision): the image is resized to the square model input ``S x S`` (``S = 1024`` for the
    released models, aspect not kept) and normalised with :attr:`pixel_mean` / :attr:`pixel_std`; prompt
    coordinates are scaled per axis to the square, in float32 as the processor does; of each prompt's outputs
    the one with the highest predicted IoU is upsampled bilinearly to ``(H, W)`` in float32 and thresholded
    (at 0 unless ``mask_threshold`` says otherwise).

    Parameters
    ----------
    model : transformers.Sam2Model, optional
        A model already built (e.g. :func:`build_tiny_sam2`); used in its own dtype.
    checkpoint : path, optional
        Local transformers checkpoint directory, loaded when no ``model`` is given.
    device : str, optional
        Where a loaded model goes (default ``"cpu"``); a ``model`` given is moved there only when set.
    dtype : {"float32", "bfloat16", "float16"}, optional
        Dtype of a loaded model (default: the checkpoint's); the name is checked in any case.
    cache_size, embedding_cache
        As for :class:`~getok.backends.sam.SamEngine` (saved as ``features_0``, ``features_1``, ... finest first).
    """

    what = "SAM 2"
    #: the transformers class a checkpoint is loaded as, and the ``config.model_type`` a model must have
    model_class = "Sam2Model"
    model_type = "sam2"
    pixel_mean = IMAGENET_MEAN
    pixel_std = IMAGENET_STD

    def __init__(self, model=None, *, checkpoint: str | Path | None = None, device: str | None = None,
                 dtype: str | None = None, cache_size: int = 4, embedding_cache: str | Path | None = None) -> None:
        torch_dtype(dtype)  # a bad name fails here, also when a model given is used in its own dtype
        if model is None:
            if checkpoint is None:
                raise ConfigError(f"{type(self).__name__} needs a checkpoint directory or a prebuilt model")
            model = self._load_model(checkpoint, device or "cpu", dtype)
        for part in ("get_image_embeddings", "prompt_encoder", "mask_decoder"):
            if not hasattr(model, part):
                raise ConfigError(f"model is not a transformers {self.model_class} (no {part!r})")
        found = getattr(getattr(model, "config", None), "model_type", None)
        if found != self.model_type:
            raise ConfigError(
                f"{self.what} needs a transformers {self.model_class} (config.model_type {self.model_type!r}), "
                f"got a {type(model).__name__} ({found!r}): its image preprocessing differs"
            )
        if device is not None:
            model = model.to(device)
        super().__init__(model, checkpoint=checkpoint, cache_size=cache_size, embedding_cache=embedding_cache)
        #: the side ``S`` of the square model input
        self.input_size = int(model.config.prompt_encoder_config.image_size)

    @staticmethod
    def _load_model(checkpoint, device: str, dtype: str | None):
        return load_sam2(checkpoint, device, dtype)

    def _encode(self, image: np.ndarray) -> ImageEmbedding:
        import cv2

        torch = _torch()
        s = self.input_size
        x = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        x = (x - self.pixel_mean) / self.pixel_std
        pv = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]  # (1, 3, S, S)
        pv = pv.to(device=self.model.device, dtype=self.model.dtype)
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(pv)  # list of (1, C_l, h_l, w_l), finest first
        return ImageEmbedding(list(emb), tuple(image.shape[:2]), (s, s))

    def _predict(self, embedding: ImageEmbedding, points, boxes, multimask: bool, mask_threshold):
        torch = _torch()
        import torch.nn.functional as F

        h, w = embedding.original_size
        s = self.input_size
        scale = np.array([s / w, s / h], dtype=np.float32)
        dev = self.model.device
        kw = {}
        if points is not None:
            p = torch.as_tensor(points * scale, device=dev)[None]  # (1, B, P, 2) float32
            kw["input_points"] = p
            kw["input_labels"] = torch.ones(p.shape[:3], dtype=torch.int64, device=dev)
        if boxes is not None:
            b = (boxes.reshape(-1, 2, 2) * scale).reshape(-1, 4)
            kw["input_boxes"] = torch.as_tensor(b, device=dev)[None]  # (1, B, 4)
        thr = 0.0 if mask_threshold is None else float(mask_threshold)
        with torch.inference_mode():
            out = self.model(image_embeddings=embedding.features, multimask_output=multimask, **kw)
            low, iou = out.pred_masks[0], out.iou_scores[0]  # (B, C, h', w'), (B, C)
            best = iou.argmax(dim=1)
            ar = torch.arange(len(best), device=low.device)
            chosen = low[ar, best][:, None].float()  # (B, 1, h', w')
            masks = F.interpolate(chosen, size=(h, w), mode="bilinear", align_corners=False)[:, 0] > thr
        return masks.cpu().numpy(), iou[ar, best].float().cpu().numpy()
