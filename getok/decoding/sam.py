"""``sam``: a plug-in segment-anything (SAM v1) decoder, prompted by the decoded geometry.

``get_decoder("sam:checkpoint=/models/sam_vit_b.pth,model_type=vit_b,mode=union")``, or with a model
already in memory ``get_decoder("sam", model=sam)``. Prompts (:mod:`getok.decoding.sam_prompts`): grid
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

import numpy as np

from ..backends.sam import SAM_MODEL_TYPES, build_tiny_sam, load_sam, load_state_dict
from ..errors import ConfigError, require
from ._prompted import PromptedDecoder
from .base import register_decoder

__all__ = ["SamDecoder", "load_sam", "build_tiny_sam", "load_state_dict", "SAM_MODEL_TYPES"]


def _torch():
    return require("torch", "sam", "the SAM decoder")


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
            model = load_sam(checkpoint, model_type, device)
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
