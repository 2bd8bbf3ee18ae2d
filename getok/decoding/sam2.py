"""``sam2``: a SAM 2 decoder through Hugging Face transformers' ``Sam2Model`` (image mode).

``get_decoder("sam2:checkpoint=/models/sam2.1-hiera-tiny")`` loads a local transformers checkpoint
directory (``Sam2Model.from_pretrained(dir, local_files_only=True)``, safetensors; nothing is
downloaded), or ``get_decoder("sam2", model=sam2_model)`` uses a model in memory. Prompts, modes,
multimask selection and the embedding LRU are those of the ``sam`` decoder
(:mod:`getok.decoding._prompted`).

Pre- and post-processing follow transformers' ``Sam2Processor``: the image is resized to the square
model input (no aspect preservation), normalised with the ImageNet mean / std; point and box
coordinates are scaled per axis to that square; low-resolution mask logits are upsampled bilinearly to
the original size and thresholded at 0.

Only transformers' implementation is wired: the ``sam2`` package of facebookresearch
(``SAM2ImagePredictor``) is not (``backend="sam2"`` raises :class:`~getok.errors.ConfigError`).
"""

from __future__ import annotations

import numpy as np

from ..backends._transformers import torch_dtype
from ..backends.sam2 import build_tiny_sam2, load_sam2
from ..errors import ConfigError, require
from ._prompted import PromptedDecoder
from .base import register_decoder

__all__ = ["Sam2Decoder", "build_tiny_sam2", "load_sam2"]

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _torch():
    return require("torch", "hf", "the SAM2 decoder")


@register_decoder("sam2")
class Sam2Decoder(PromptedDecoder):
    """SAM 2 decoder (transformers ``Sam2Model``).

    Parameters
    ----------
    checkpoint : str, optional
        Local transformers checkpoint directory.
    model : transformers.Sam2Model, optional
        A model already built (takes precedence; used on its own device, in its own dtype).
    backend : {"transformers"}
        Only transformers is wired.
    device : str
        Torch device for a model loaded here (``"cpu"``, ``"cuda"``).
    dtype : {"float32", "bfloat16", "float16"}, optional
        Torch dtype for a model loaded here (default: the checkpoint's). Prompts stay float32; masks are
        upsampled and thresholded in float32.
    mode, multimask, cache_size, batch_size, interior_points
        As for :class:`~getok.decoding.sam.SamDecoder`.
    """

    name = "sam2"
    #: the transformers class a checkpoint is loaded as, and the ``config.model_type`` a model must have
    model_class = "Sam2Model"
    model_type = "sam2"
    #: the image processor's normalisation (fractions of 255)
    pixel_mean = _IMAGENET_MEAN
    pixel_std = _IMAGENET_STD

    def __init__(
        self,
        checkpoint: str | None = None,
        model=None,
        backend: str = "transformers",
        device: str = "cpu",
        dtype: str | None = None,
        mode: str = "union",
        multimask: bool = True,
        cache_size: int = 4,
        batch_size: int = 32,
        interior_points: int = 1,
    ) -> None:
        super().__init__(mode=mode, multimask=multimask, cache_size=cache_size, batch_size=batch_size,
                         interior_points=interior_points)
        if backend != "transformers":
            raise ConfigError(
                f"{self.name} backend {backend!r} is not supported; use backend=transformers with a local "
                f"transformers checkpoint directory ({self.model_class}.save_pretrained)"
            )
        torch_dtype(dtype)  # a bad name fails here, also when a model given is used in its own dtype
        if model is None:
            if checkpoint is None:
                raise ConfigError(
                    f"the {self.name} decoder needs weights: '{self.name}:checkpoint=/path/to/transformers_dir' "
                    f"or get_decoder('{self.name}', model={self.name}_model)"
                )
            model = self._load(checkpoint, device, dtype)
        for part in ("get_image_embeddings", "prompt_encoder", "mask_decoder"):
            if not hasattr(model, part):
                raise ConfigError(f"model is not a transformers {self.model_class} (no {part!r})")
        found = getattr(getattr(model, "config", None), "model_type", None)
        if found != self.model_type:
            raise ConfigError(
                f"the {self.name} decoder needs a transformers {self.model_class} (config.model_type "
                f"{self.model_type!r}), got a {type(model).__name__} ({found!r}): its image preprocessing differs"
            )
        self.model = model.eval()
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.input_size = int(model.config.prompt_encoder_config.image_size)

    @staticmethod
    def _load(checkpoint: str, device: str, dtype: str | None):
        return load_sam2(checkpoint, device, dtype)

    def settings(self) -> dict:
        return {**super().settings(), "checkpoint": self.checkpoint, "input_size": self.input_size,
                "dtype": str(self.model.dtype).removeprefix("torch.")}

    def _embed(self, image: np.ndarray):
        import cv2

        torch = _torch()
        s = self.input_size
        x = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        x = (x - self.pixel_mean) / self.pixel_std
        pv = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]  # (1, 3, S, S)
        pv = pv.to(device=self.model.device, dtype=self.model.dtype)
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(pv)  # list of (1, C_l, h_l, w_l), finest first
        return {"embeddings": emb, "original_size": tuple(image.shape[:2])}

    def _predict(self, state, points, boxes):
        torch = _torch()
        import torch.nn.functional as F

        h, w = state["original_size"]
        s = self.input_size
        scale = np.array([s / w, s / h], dtype=np.float64)
        dev = self.model.device
        kw = {}
        if points is not None:
            p = torch.as_tensor(points * scale, dtype=torch.float32, device=dev)[None]  # (1, B, P, 2)
            kw["input_points"] = p
            kw["input_labels"] = torch.ones(p.shape[:3], dtype=torch.int64, device=dev)
        if boxes is not None:
            b = boxes.reshape(-1, 2, 2) * scale
            kw["input_boxes"] = torch.as_tensor(b.reshape(-1, 4), dtype=torch.float32, device=dev)[None]  # (1, B, 4)
        with torch.inference_mode():
            out = self.model(image_embeddings=state["embeddings"], multimask_output=self.multimask, **kw)
            low, iou = out.pred_masks[0], out.iou_scores[0]  # (B, C, h', w'), (B, C)
            best = iou.argmax(dim=1)
            ar = torch.arange(len(best), device=low.device)
            chosen = low[ar, best][:, None].float()  # (B, 1, h', w')
            masks = F.interpolate(chosen, size=(h, w), mode="bilinear", align_corners=False)[:, 0] > 0
        return masks.cpu().numpy(), iou[ar, best].float().cpu().numpy()
