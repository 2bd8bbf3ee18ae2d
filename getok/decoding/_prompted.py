"""The shared machinery of promptable decoders (SAM, SAM2): embedding cache, prompt modes, selection.

A subclass implements two methods, both torch-free at their edges:

* ``_embed(image) -> state``: the image embedding (and whatever the predictor needs) of one image;
* ``_predict(state, points, boxes) -> (masks, scores)``: for ``B`` prompts, ``points`` ``(B, P, 2)``
  float (SAM pixel-index coordinates, see :func:`~getok.decoding.sam_prompts.to_sam_points`) or ``None``,
  ``boxes`` ``(B, 4)`` or ``None``; returns the chosen mask per prompt ``(B, H, W)`` bool and its score
  ``(B,)``.

Modes (``mode=``):

* ``"joint"``: one prompt holding all the geometry's points (plus its box, if any) → one mask.
* ``"union"``: one prompt per point (each with the box, if any) → the union of the masks. This is the
  mode that mirrors the greedy builder, whose proposals were single-point masks.

Polygon answers are always prompted jointly, one prompt per outer ring (its box and interior points).

With ``multimask=True`` SAM returns three candidate masks per prompt and the one with the highest
predicted IoU is kept ("best-scoring multimask output"); ``multimask=False`` takes SAM's single mask.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from ..geometry import Geometry
from ..provenance import image_hash
from ._common import LRUCache, check_image, check_size
from .sam_prompts import Prompt, geometry_prompts, to_sam_box, to_sam_points

__all__ = ["PromptedDecoder", "MODES"]

MODES = ("joint", "union")


class PromptedDecoder:
    """Base class; see the module docstring. Subclasses set ``name`` and implement ``_embed`` / ``_predict``."""

    name = "prompted"

    def __init__(
        self,
        mode: str = "union",
        multimask: bool = True,
        cache_size: int = 4,
        batch_size: int = 32,
        interior_points: int = 1,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if int(interior_points) < 1:
            raise ConfigError(f"interior_points must be >= 1, got {interior_points}")
        self.mode = mode
        self.multimask = bool(multimask)
        self.batch_size = int(batch_size)
        self.interior_points = int(interior_points)
        self._cache = LRUCache(cache_size)
        self._state = None
        self._size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ protocol
    def settings(self) -> dict:
        return {"name": self.name, "mode": self.mode, "multimask": self.multimask}

    @property
    def embeddings_computed(self) -> int:
        """How many image embeddings were computed so far (cache misses)."""
        return self._cache.misses

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        """Embed ``image`` ``(H, W, 3)`` uint8 RGB, or reuse its cached embedding.

        ``key`` names the image in the cache (a path or id) and must always name the same pixels; without
        one the image content is hashed (~1 ms per megapixel).
        """
        if image is None:
            raise DataError(f"the {self.name} decoder needs the image (it computes an image embedding)")
        img = check_image(image)
        if size is not None and tuple(size) != img.shape[:2]:
            raise DataError(f"size {tuple(size)} differs from the image's (H, W)={img.shape[:2]}")
        k = key if key is not None else image_hash(img)
        self._state = self._cache.get_or_compute(k, lambda: self._embed(img))
        self._size = tuple(img.shape[:2])

    def decode(self, geometry: Geometry) -> np.ndarray:
        """The mask ``(H, W)`` bool of one geometry (a geometry's own ``mask`` is returned as it is)."""
        if self._state is None:
            raise DataError("no image set: call set_image(image) before decode()")
        check_size(geometry, self._size)
        if geometry.mask is not None:
            return np.asarray(geometry.mask, dtype=bool)
        out = np.zeros(self._size, dtype=bool)
        for p in geometry_prompts(geometry, interior_k=self.interior_points):
            # a polygon part is one object region: its box and interior points go in one prompt
            out |= self.decode_prompt(p, mode="joint" if p.source == "polygons" else None)
        return out

    def decode_prompt(self, prompt: Prompt, mode: str | None = None) -> np.ndarray:
        """The mask ``(H, W)`` bool of one prompt under ``mode`` (default: the decoder's)."""
        if self._state is None:
            raise DataError("no image set: call set_image(image) before decode()")
        mode = mode or self.mode
        h, w = self._size
        if prompt.is_empty:
            return np.zeros((h, w), dtype=bool)
        pts = to_sam_points(prompt.points)
        box = None if prompt.box is None else to_sam_box(prompt.box)
        if mode == "joint" or len(pts) <= 1:
            points = pts[None] if len(pts) else None  # (1, P, 2)
            boxes = None if box is None else box[None]
            masks, _ = self._predict_batched(points, boxes)
            return masks[0]
        out = np.zeros((h, w), dtype=bool)
        points = pts[:, None, :]  # (K, 1, 2): one prompt per point
        boxes = None if box is None else np.repeat(box[None], len(pts), axis=0)
        masks, _ = self._predict_batched(points, boxes)
        np.any(masks, axis=0, out=out)
        return out

    # ------------------------------------------------------------------ internals
    def _predict_batched(self, points, boxes):
        b = len(points) if points is not None else len(boxes)
        masks, scores = [], []
        for i in range(0, b, self.batch_size):
            sl = slice(i, i + self.batch_size)
            m, s = self._predict(
                self._state,
                None if points is None else np.ascontiguousarray(points[sl]),
                None if boxes is None else np.ascontiguousarray(boxes[sl]),
            )
            masks.append(m)
            scores.append(s)
        return np.concatenate(masks, axis=0), np.concatenate(scores, axis=0)

    def _embed(self, image: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, state, points, boxes):  # pragma: no cover - abstract
        raise NotImplementedError
