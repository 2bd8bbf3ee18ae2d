"""What the SAM grid proposers share: one positive point prompt per grid point, through a SAM engine.

The engine (:class:`~getok.backends.sam.SamEngine`, :class:`~getok.backends.sam2.Sam2Engine`) owns the model,
the image embeddings (in-memory LRU, optional on-disk cache) and the batched prompt call; the mask decoders
use the same engines, and a proposer and a decoder may share one (``engine=``), so an image embedded while
building data is not embedded again when decoding.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError, DataError
from ...ops.grid import grid_points
from .base import PointMaskStack, StackBuilder

__all__ = ["PromptedProposer"]


class PromptedProposer:
    """One mask per grid point: each grid point is a one-point positive prompt, ``points_per_batch`` prompts
    per mask-decoder call on one image embedding, the best multimask output by predicted IoU (that IoU is the
    point's score). Not SAM's automatic mask generator: its filtering and NMS drop masks, and the grid builders
    need exactly one mask per grid point.

    Grid points are given to the model as they are (getok's continuous pixel coordinates read as SAM's
    pixel indices), as the SAM proposers always did.
    """

    name = "prompted"

    def __init__(self, engine, *, points_per_batch: int = 64, multimask: bool = True,
                 mask_threshold: float | None = None) -> None:
        if int(points_per_batch) < 1:
            raise ConfigError(f"points_per_batch must be >= 1, got {points_per_batch}")
        self.engine = engine
        self.points_per_batch = int(points_per_batch)
        self.multimask = bool(multimask)
        self._mask_threshold = mask_threshold
        self._embedding = None

    # ------------------------------------------------------------------ the engine's
    @property
    def model(self):
        return self.engine.model

    @property
    def embedding_cache(self):
        """The engine's on-disk embedding directory (``None``: none)."""
        return self.engine.embedding_cache

    @property
    def embedding_calls(self) -> int:
        """How many times the image encoder ran (the engine's count: a shared engine counts all its users)."""
        return self.engine.embedding_calls

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights (of the checkpoint file when there is one); computed once."""
        return self.engine.fingerprint

    # ------------------------------------------------------------------ point masks
    def set_image(self, image: np.ndarray, key: str | None = None) -> None:
        """Compute (or load, or keep) the embedding of ``image`` ``(H, W, 3)`` uint8 RGB
        (:meth:`~getok.backends._engine.PromptEngine.embed`)."""
        self._embedding = self.engine.embed(image, key=key)

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
        if self._embedding is None:
            raise DataError("no image set: call set_image(image) before predict_points()")
        pts = np.asarray(points_xy, dtype=np.float32).reshape(-1, 1, 2)  # (P, 1, 2): one prompt per point
        masks, scores = self.engine.predict(self._embedding, pts, multimask=self.multimask,
                                            batch_size=self.points_per_batch, mask_threshold=self._mask_threshold)
        return masks, scores.astype(np.float64)

    def propose(self, image: np.ndarray, n: int) -> PointMaskStack:
        """One mask per grid point of an ``n x n`` grid over ``image`` (``(H, W, 3)`` uint8 RGB)."""
        n = int(n)
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        self.set_image(image)
        size = self._embedding.original_size
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
        """The best mask for each single-point prompt at arbitrary points ``(K, 2)`` XY pixels:
        ``(K, H, W)`` bool (the embedding of ``image`` is reused when already computed)."""
        self.set_image(image)
        return self.predict_points(points_xy)[0]
