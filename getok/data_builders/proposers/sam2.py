"""``Sam2Proposer``: SAM 2 (through transformers' ``Sam2Model``) prompted at every grid point.

Same contract as :class:`~getok.data_builders.proposers.sam.SamProposer`: one positive point prompt per
grid point, batched over one image embedding (computed once per image), best of the multimask outputs by
predicted IoU. SAM 2 resizes the image to a square ``S x S`` (``S = 1024`` for the released models,
without keeping the aspect ratio), normalises with the ImageNet mean / std, and its low-resolution masks
are upsampled straight to the image size — this module does the same with OpenCV and torch, so it needs
neither torchvision nor a processor from the hub.

Weights come from a local directory (``Sam2Model.from_pretrained(dir, local_files_only=True)``, safetensors)
or a prebuilt model (tests build a tiny one from a ``Sam2Config``). The ``sam2`` package (Meta's
reference code) is not wired: convert its checkpoints with transformers' conversion script instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...backends.sam2 import build_tiny_sam2
from ...errors import ConfigError, DataError, GeometryError, require
from ...ops.grid import grid_points
from .base import ProposalStack, StackBuilder
from .registry import register_proposer

__all__ = ["Sam2Proposer", "build_tiny_sam2"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@register_proposer("sam2")
class Sam2Proposer:
    """SAM 2, one prompt per grid point, batched.

    Parameters
    ----------
    pretrained : path, optional
        Local directory of a transformers SAM 2 checkpoint (``config.json`` + safetensors).
    model : transformers.Sam2Model, optional
        A prebuilt model instead of ``pretrained``.
    points_per_batch : int
    multimask : bool
    mask_threshold : float
        Logit threshold of the upsampled masks.
    device : str

    Attributes
    ----------
    embedding_calls : int
        How many times the image encoder ran.
    """

    name = "sam2"

    def __init__(
        self,
        pretrained: str | Path | None = None,
        *,
        model=None,
        points_per_batch: int = 64,
        multimask: bool = True,
        mask_threshold: float = 0.0,
        device: str = "cpu",
    ) -> None:
        require("torch", "hf", "the SAM 2 proposer")
        tr = require("transformers", "hf", "the SAM 2 proposer")
        if not hasattr(tr, "Sam2Model"):
            raise ConfigError(f"transformers {tr.__version__} has no Sam2Model; SAM 2 needs transformers >= 4.56")
        if points_per_batch < 1:
            raise ConfigError(f"points_per_batch must be >= 1, got {points_per_batch}")
        if model is None:
            if pretrained is None:
                raise ConfigError("Sam2Proposer needs a local pretrained directory or a prebuilt model")
            path = Path(pretrained)
            if not path.is_dir():
                raise DataError(f"SAM 2 directory not found: {path}")
            model = tr.Sam2Model.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        self.pretrained = None if pretrained is None else Path(pretrained)
        self.model = model.to(device).eval()
        self.device = device
        self.points_per_batch = int(points_per_batch)
        self.multimask = bool(multimask)
        self.mask_threshold = float(mask_threshold)
        self.input_size = int(self.model.config.prompt_encoder_config.image_size)
        self.embedding_calls = 0
        self._image_key: str | None = None
        self._embeddings = None
        self._size: tuple[int, int] | None = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from ...backends.sam import model_fingerprint

            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def settings(self) -> dict:
        return {
            "weights_sha256": self.fingerprint,
            "multimask": self.multimask,
            "mask_threshold": self.mask_threshold,
            "input_size": self.input_size,
        }

    def _pixels(self, img: np.ndarray):
        import cv2
        import torch

        s = self.input_size
        x = cv2.resize(img, (s, s), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)  # (1, 3, S, S)

    def set_image(self, image: np.ndarray) -> None:
        """Compute the multi-scale embedding of ``image`` ``(H, W, 3)`` uint8 RGB (kept for the same pixels)."""
        from ...provenance import image_hash

        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise GeometryError(f"image must be (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
        key = hashlib.sha256(f"{image_hash(img)}|{self.fingerprint}".encode()).hexdigest()
        if key == self._image_key and self._embeddings is not None:
            return
        self._embeddings = self.model.get_image_embeddings(self._pixels(img))
        self.embedding_calls += 1
        self._size = img.shape[:2]
        self._image_key = key

    def predict_points(self, points_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best mask ``(P, H, W)`` bool and predicted IoU ``(P,)`` per single-point prompt (image set)."""
        import torch
        import torch.nn.functional as F

        h, w = self._size
        s = self.input_size
        pts = np.asarray(points_xy, dtype=np.float32).reshape(-1, 2) * np.array([s / w, s / h], np.float32)
        out_m, out_s = [], []
        with torch.no_grad():
            for a in range(0, len(pts), self.points_per_batch):
                chunk = torch.as_tensor(pts[a : a + self.points_per_batch], device=self.device)
                b = len(chunk)
                out = self.model(
                    image_embeddings=self._embeddings,
                    input_points=chunk[None, :, None, :],  # (1, B, 1, 2)
                    input_labels=torch.ones((1, b, 1), dtype=torch.long, device=self.device),
                    multimask_output=self.multimask,
                )
                low = out.pred_masks[0]  # (B, M, h', w') logits
                iou = out.iou_scores[0]  # (B, M)
                best = iou.argmax(dim=1)
                rows = torch.arange(b, device=best.device)
                sel = low[rows, best][:, None]  # (B, 1, h', w')
                up = F.interpolate(sel.float(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
                out_m.append((up > self.mask_threshold).cpu().numpy())
                out_s.append(iou[rows, best].float().cpu().numpy())
        if not out_m:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float64)
        return np.concatenate(out_m), np.concatenate(out_s).astype(np.float64)

    def propose(self, image: np.ndarray, n: int) -> ProposalStack:
        """One mask per grid point of an ``n x n`` grid over ``image`` (``(H, W, 3)`` uint8 RGB)."""
        n = int(n)
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        self.set_image(image)
        size = self._size
        pts = grid_points(n, size)
        builder = StackBuilder(n, size)
        scores = np.zeros(n * n, dtype=np.float64)
        for a in range(0, len(pts), self.points_per_batch):
            masks, sc = self.predict_points(pts[a : a + self.points_per_batch])
            scores[a : a + len(sc)] = sc
            for j, m in enumerate(masks):
                builder.add(a + j, m)
        return builder.build(scores)

    def propose_at(self, image: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
        """SAM's best mask for each single-point prompt at arbitrary points ``(K, 2)`` XY pixels:
        ``(K, H, W)`` bool (the embedding of ``image`` is reused when already set)."""
        self.set_image(image)
        return self.predict_points(points_xy)[0]
