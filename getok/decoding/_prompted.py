"""The shared machinery of promptable decoders (SAM, SAM 2, SAM 3): prompts from a geometry, modes, batching.

The model calls belong to a SAM engine (:mod:`getok.backends._engine`: :class:`~getok.backends.sam.SamEngine`,
:class:`~getok.backends.sam2.Sam2Engine`, :class:`~getok.backends.sam3.Sam3Engine`), the same one the grid
proposers use: ``set_image`` is ``engine.embed(image, key)`` (its in-memory LRU of embeddings, keyed by the
image's ``key`` or a hash of its pixels, and its optional on-disk cache), and every prompt goes through
``engine.predict(embedding, points, boxes, multimask=..., batch_size=...)`` with ``points`` ``(B, P, 2)`` in
SAM's pixel-index coordinates (:func:`~getok.decoding.sam_prompts.to_sam_points`) and ``boxes`` ``(B, 4)``
(:func:`~getok.decoding.sam_prompts.to_sam_box`). A subclass only builds its engine. Several decoders, and a
proposer, may share one engine (``engine=``): an image embedded by one is not embedded again by another.

Modes (``mode=``):

* ``"joint"``: one prompt holding all the geometry's points (plus its box, if any) → one mask.
* ``"union"``: one prompt per point (each with the box, if any) → the union of the masks. This is the
  mode that mirrors the greedy builder, whose point masks each come from a single-point prompt.

Polygon answers are always prompted jointly, one prompt per outer ring (its box and interior points).

With ``multimask=True`` SAM returns three candidate masks per prompt and the one with the highest
predicted IoU is kept ("best-scoring multimask output"); ``multimask=False`` takes SAM's single mask.
"""

from __future__ import annotations

import numpy as np

from ..backends._common import check_image, check_size
from ..errors import ConfigError, DataError
from ..geometry import Geometry
from .sam_prompts import Prompt, geometry_prompts, to_sam_box, to_sam_points

__all__ = ["PromptedDecoder", "MODES"]

MODES = ("joint", "union")


class PromptedDecoder:
    """Base class; see the module docstring. Subclasses set ``name`` and pass their engine."""

    name = "prompted"

    def __init__(
        self,
        engine,
        mode: str = "union",
        multimask: bool = True,
        batch_size: int = 32,
        interior_points: int = 1,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if int(interior_points) < 1:
            raise ConfigError(f"interior_points must be >= 1, got {interior_points}")
        self.engine = engine
        self.mode = mode
        self.multimask = bool(multimask)
        self.batch_size = int(batch_size)
        self.interior_points = int(interior_points)
        self._state = None
        self._size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ protocol
    @property
    def model(self):
        """The engine's torch model."""
        return self.engine.model

    def settings(self) -> dict:
        return {"name": self.name, "mode": self.mode, "multimask": self.multimask}

    @property
    def embeddings_computed(self) -> int:
        """How many image embeddings the engine computed so far (image-encoder runs; with an engine shared
        with a proposer or another decoder, theirs count too)."""
        return self.engine.embedding_calls

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        """Embed ``image`` ``(H, W, 3)`` uint8 RGB, or reuse its cached embedding.

        ``key`` names the image in the engine's cache (a path or id) and must always name the same pixels;
        without one the image content is hashed (~1 ms per megapixel).
        """
        if image is None:
            raise DataError(f"the {self.name} decoder needs the image (it computes an image embedding)")
        img = check_image(image)
        if size is not None and tuple(size) != img.shape[:2]:
            raise DataError(f"size {tuple(size)} differs from the image's (H, W)={img.shape[:2]}")
        self._state = self.engine.embed(img, key=key)
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
            return self._predict(points, boxes)[0][0]
        out = np.zeros((h, w), dtype=bool)
        points = pts[:, None, :]  # (K, 1, 2): one prompt per point
        boxes = None if box is None else np.repeat(box[None], len(pts), axis=0)
        np.any(self._predict(points, boxes)[0], axis=0, out=out)
        return out

    # ------------------------------------------------------------------ internals
    def _predict(self, points, boxes):
        """``engine.predict`` on the image set: masks ``(B, H, W)`` bool and scores ``(B,)``."""
        return self.engine.predict(self._state, points, boxes, multimask=self.multimask, batch_size=self.batch_size)
