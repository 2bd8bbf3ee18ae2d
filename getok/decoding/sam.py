"""``sam``: a plug-in segment-anything (SAM v1) decoder, prompted by the decoded geometry.

``get_decoder("sam:checkpoint=/models/sam_vit_b.pth,model_type=vit_b,mode=union")``, or with a model
already in memory ``get_decoder("sam", model=sam)``. Prompts (:mod:`getok.decoding.prompts`): grid
cells → cell centres as positive points (refined by offsets, ``<DELETE>``-d cells dropped), points →
points, boxes → box, polygons → box + interior points. Modes and multimask selection:
:mod:`getok.decoding._prompted`.

The image embedding is computed once per ``set_image`` and kept in an LRU cache keyed by the image's
``key`` (or a hash of its pixels), so returning to an image costs nothing. SAM's input pipeline is
followed exactly (longest side resized to the encoder size, pixel normalisation, padding); the masks
are upsampled from SAM's low-resolution logits only for the chosen output of each prompt.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (tensors only, never arbitrary
pickles) or from ``.safetensors``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..errors import ConfigError, require
from ._prompted import PromptedDecoder
from .base import register_decoder

__all__ = ["SamDecoder", "load_sam", "build_tiny_sam", "SAM_MODEL_TYPES"]

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "default")


def _torch():
    return require("torch", "sam", "the SAM decoder")


def load_state_dict(path: str | Path) -> dict:
    """Tensors of a checkpoint: ``.safetensors``, or a ``torch.save``-d state dict read with ``weights_only``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        st = require("safetensors.torch", "hf", "safetensors checkpoints")
        return st.load_file(str(p))
    torch = _torch()
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError on non-tensor content
        raise ConfigError(f"{p} is not a plain tensor state dict (refusing to unpickle objects): {exc}") from exc
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise ConfigError(f"{p} does not hold a state dict")
    return sd


def load_sam(model_type: str = "vit_b", checkpoint: str | Path | None = None, device: str = "cpu"):
    """Build a segment-anything ``Sam`` of ``model_type`` and load ``checkpoint`` (if given) onto ``device``."""
    if model_type not in SAM_MODEL_TYPES:
        raise ConfigError(f"model_type must be one of {SAM_MODEL_TYPES}, got {model_type!r}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ConfigError(f"SAM checkpoint not found: {checkpoint}")
    sa = require("segment_anything", "sam", "the SAM decoder")
    model = sa.sam_model_registry[model_type](checkpoint=None)
    if checkpoint is not None:
        missing, unexpected = model.load_state_dict(load_state_dict(checkpoint), strict=False)
        if missing or unexpected:
            raise ConfigError(
                f"checkpoint {checkpoint} does not fit SAM {model_type}: "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
    return model.to(device).eval()


def build_tiny_sam(img_size: int = 128, embed_dim: int = 32, prompt_dim: int = 32, seed: int = 0):
    """A tiny ``Sam`` from ``segment_anything.modeling`` classes with random weights (tests, benchmarks).

    The real code path (ViT image encoder, prompt encoder, two-way transformer mask decoder, SAM's
    pre- and post-processing) at toy sizes: ``img_size`` input (patch 16), one encoder block, one
    decoder block; embedding ``(prompt_dim, img_size / 16, img_size / 16)``; ~0.1 M parameters.
    """
    torch = _torch()
    require("segment_anything", "sam", "the SAM decoder")
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
            depth=1,
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


@register_decoder("sam")
class SamDecoder(PromptedDecoder):
    """segment-anything decoder.

    Parameters
    ----------
    checkpoint : str, optional
        Path to SAM weights (``sam_vit_b_01ec64.pth`` or a ``.safetensors`` file).
    model_type : {"vit_b", "vit_l", "vit_h", "default"}
    model : segment_anything.modeling.Sam, optional
        A model already built (takes precedence over ``checkpoint``).
    device : str
        Torch device for a model built here (``"cpu"``, ``"cuda"``).
    mode : {"union", "joint"}
        Per-point masks unioned (matches the greedy builder), or one joint prompt.
    multimask : bool
        Keep the best-scoring of SAM's three masks (default) instead of its single-mask output.
    cache_size : int
        Image embeddings kept (vit_b: 4 MB each).
    batch_size : int
        Prompts per mask-decoder call in union mode.
    interior_points : int
        Interior points per polygon when a polygon answer is prompted.
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        model=None,
        device: str = "cpu",
        mode: str = "union",
        multimask: bool = True,
        cache_size: int = 4,
        batch_size: int = 32,
        interior_points: int = 1,
    ) -> None:
        super().__init__(mode=mode, multimask=multimask, cache_size=cache_size, batch_size=batch_size,
                         interior_points=interior_points)
        if model is None:
            if checkpoint is None:
                raise ConfigError(
                    "the sam decoder needs weights: 'sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b' "
                    "or get_decoder('sam', model=sam_model)"
                )
            model = load_sam(model_type, checkpoint, device)
        for part in ("image_encoder", "prompt_encoder", "mask_decoder", "postprocess_masks"):
            if not hasattr(model, part):
                raise ConfigError(f"model is not a segment-anything Sam (no {part!r})")
        from segment_anything.utils.transforms import ResizeLongestSide

        self.model = model.eval()
        self.model_type = model_type if checkpoint is not None else type(model).__name__
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.transform = ResizeLongestSide(model.image_encoder.img_size)

    def settings(self) -> dict:
        return {**super().settings(), "model_type": self.model_type, "checkpoint": self.checkpoint}

    # ------------------------------------------------------------------ model calls
    def _embed(self, image: np.ndarray):
        torch = _torch()
        model = self.model
        resized = self.transform.apply_image(image)  # (h', w', 3), long side = encoder size
        x = torch.as_tensor(resized, device=model.device).permute(2, 0, 1).contiguous()[None]
        with torch.inference_mode():
            features = model.image_encoder(model.preprocess(x))  # (1, C, h, w)
        return {"features": features, "original_size": tuple(image.shape[:2]), "input_size": tuple(x.shape[-2:])}

    def _predict(self, state, points, boxes):
        torch = _torch()
        model = self.model
        dev = model.device
        orig = state["original_size"]
        pts_arg = None
        if points is not None:
            coords = self.transform.apply_coords_torch(torch.as_tensor(points, dtype=torch.float32, device=dev), orig)
            labels = torch.ones(coords.shape[:2], dtype=torch.int, device=dev)
            pts_arg = (coords, labels)
        box_arg = None
        if boxes is not None:
            box_arg = self.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float32, device=dev), orig)
        with torch.inference_mode():
            sparse, dense = model.prompt_encoder(points=pts_arg, boxes=box_arg, masks=None)
            low_res, iou = model.mask_decoder(
                image_embeddings=state["features"],
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=self.multimask,
            )  # (B, C, 256, 256), (B, C)
            best = iou.argmax(dim=1)  # (B,)
            ar = torch.arange(len(best), device=dev)
            chosen = low_res[ar, best][:, None]  # (B, 1, 256, 256)
            masks = model.postprocess_masks(chosen, state["input_size"], orig)[:, 0] > model.mask_threshold
        return masks.cpu().numpy(), iou[ar, best].float().cpu().numpy()
