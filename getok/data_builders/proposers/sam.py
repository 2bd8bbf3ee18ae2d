"""``SamProposer``: segment-anything prompted at every grid point.

Every grid point of the ``n x n`` grid is a one-point positive prompt; the prompts run in batches through
``SamPredictor.predict_torch`` on one image embedding, and each point keeps the best of SAM's three
multimask outputs by predicted IoU (that IoU is the point's score). This is deliberately not
``SamAutomaticMaskGenerator``: its filtering and NMS drop masks, and the grid builders need exactly one
mask per grid point.

The image embedding is computed once per image (``set_image``; repeated calls for the same pixels, e.g.
for another grid size, reuse it) and, with ``embedding_cache=DIR``, saved as safetensors and loaded on
the next run. Checkpoints are read with ``torch.load(weights_only=True)`` or safetensors — never unpickled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...backends.sam import build_tiny_sam, load_sam, model_fingerprint
from ...errors import ConfigError, GeometryError, require
from ...ops.grid import grid_points
from .base import ProposalStack, StackBuilder
from .registry import register_proposer

__all__ = ["SamProposer", "load_sam", "build_tiny_sam"]



def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@register_proposer("sam")
class SamProposer:
    """segment-anything, one prompt per grid point, batched.

    Parameters
    ----------
    checkpoint : path, optional
        SAM weights (``.pth`` state dict or ``.safetensors``); required unless ``model`` is given.
    model_type : {"vit_b", "vit_l", "vit_h"}
    model : segment_anything.modeling.Sam, optional
        A prebuilt model (e.g. :func:`build_tiny_sam`) instead of ``checkpoint``.
    points_per_batch : int
        Prompts per ``predict_torch`` call (memory vs speed; does not change the output).
    multimask : bool
        Ask for three masks per point and keep the best by predicted IoU (SAM's advice for one-point
        prompts); ``False`` takes the single-mask output.
    device : str
    embedding_cache : path, optional
        Directory where image embeddings are saved (safetensors) and looked up by image hash and model.

    Attributes
    ----------
    embedding_calls : int
        How many times the image encoder ran (tests check it runs once per image).
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        model_type: str = "vit_b",
        *,
        model=None,
        points_per_batch: int = 64,
        multimask: bool = True,
        device: str = "cpu",
        embedding_cache: str | Path | None = None,
    ) -> None:
        require("torch", "sam", "the SAM proposer")
        sa = require("segment_anything", "sam", "the SAM proposer")
        if points_per_batch < 1:
            raise ConfigError(f"points_per_batch must be >= 1, got {points_per_batch}")
        if model is None:
            if checkpoint is None:
                raise ConfigError("SamProposer needs a checkpoint path or a prebuilt model")
            model = load_sam(checkpoint, model_type)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.model_type = model_type if checkpoint is not None else "prebuilt"
        self.model = model.to(device).eval()
        self.device = device
        self.points_per_batch = int(points_per_batch)
        self.multimask = bool(multimask)
        self.embedding_cache = None if embedding_cache is None else Path(embedding_cache)
        self.predictor = sa.SamPredictor(self.model)
        self.embedding_calls = 0
        self._image_key: str | None = None
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """sha256 of the weights (of the checkpoint file when there is one); computed once."""
        if self._fingerprint is None:
            if self.checkpoint is not None:
                self._fingerprint = _file_sha256(self.checkpoint)
            else:
                self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def settings(self) -> dict:
        return {"model_type": self.model_type, "weights_sha256": self.fingerprint, "multimask": self.multimask}

    # ------------------------------------------------------------------ the embedding
    def _embedding_path(self, key: str) -> Path | None:
        if self.embedding_cache is None:
            return None
        return self.embedding_cache / f"{key}.safetensors"

    def set_image(self, image: np.ndarray) -> None:
        """Compute (or load, or keep) the embedding of ``image`` ``(H, W, 3)`` uint8 RGB."""
        import torch

        from ...provenance import image_hash

        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise GeometryError(f"image must be (H, W, 3) uint8 RGB, got {img.dtype} {img.shape}")
        key = hashlib.sha256(f"{image_hash(img)}|{self.fingerprint}".encode()).hexdigest()
        if key == self._image_key and self.predictor.is_image_set:
            return
        path = self._embedding_path(key)
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            meta = load_file(str(path))
            p = self.predictor
            p.reset_image()
            p.features = meta["features"].to(self.device)
            p.original_size = tuple(int(v) for v in meta["original_size"].tolist())
            p.input_size = tuple(int(v) for v in meta["input_size"].tolist())
            p.is_image_set = True
        else:
            with torch.no_grad():
                self.predictor.set_image(img, image_format="RGB")
            self.embedding_calls += 1
            if path is not None:
                from safetensors.torch import save_file

                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")  # written whole, then renamed (atomic)
                p = self.predictor
                save_file(
                    {
                        "features": p.features.detach().cpu().contiguous(),
                        "original_size": torch.tensor(p.original_size),
                        "input_size": torch.tensor(p.input_size),
                    },
                    str(tmp),
                )
                tmp.replace(path)
        self._image_key = key

    # ------------------------------------------------------------------ proposals
    def predict_points(self, points_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best mask and its predicted IoU for each single-point prompt (image already set).

        Parameters
        ----------
        points_xy : (P, 2) float, pixels

        Returns
        -------
        masks : (P, H, W) bool
        scores : (P,) float
        """
        import torch

        p = self.predictor
        pts = np.asarray(points_xy, dtype=np.float32).reshape(-1, 2)
        out_m, out_s = [], []
        with torch.no_grad():
            for s in range(0, len(pts), self.points_per_batch):
                chunk = torch.as_tensor(pts[s : s + self.points_per_batch], device=self.device)[:, None, :]  # (B, 1, 2)
                coords = p.transform.apply_coords_torch(chunk, p.original_size)
                labels = torch.ones(coords.shape[:2], dtype=torch.int, device=self.device)  # (B, 1)
                masks, iou, _ = p.predict_torch(coords, labels, multimask_output=self.multimask)  # (B, M, H, W), (B, M)
                best = iou.argmax(dim=1)
                rows = torch.arange(len(best), device=best.device)
                out_m.append(masks[rows, best].cpu().numpy())
                out_s.append(iou[rows, best].float().cpu().numpy())
        h, w = p.original_size
        if not out_m:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float64)
        return np.concatenate(out_m).astype(bool), np.concatenate(out_s).astype(np.float64)

    def propose(self, image: np.ndarray, n: int) -> ProposalStack:
        """One mask per grid point of an ``n x n`` grid over ``image`` (``(H, W, 3)`` uint8 RGB)."""
        n = int(n)
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        self.set_image(image)
        size = tuple(np.shape(image)[:2])
        pts = grid_points(n, size)
        builder = StackBuilder(n, size)
        scores = np.zeros(n * n, dtype=np.float64)
        step = self.points_per_batch
        for s in range(0, len(pts), step):
            masks, sc = self.predict_points(pts[s : s + step])
            scores[s : s + len(sc)] = sc
            for j, m in enumerate(masks):
                builder.add(s + j, m)
        return builder.build(scores)

    def propose_at(self, image: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
        """SAM's best mask for each single-point prompt at arbitrary points ``(K, 2)`` XY pixels:
        ``(K, H, W)`` bool (the embedding of ``image`` is reused when already set)."""
        self.set_image(image)
        return self.predict_points(points_xy)[0]
