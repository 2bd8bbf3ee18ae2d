"""``ExactProposer``: the exact regions of a procedural scene (no model, no guessing).

A procedural scene knows which object covers each pixel: its *label map* ``(H, W)`` int with ``0`` for
the background and ``k + 1`` for object ``k`` (stored by the scene generator in
``AnnotatedImage.meta["label_map"]``). The point mask of a grid point is the region of its label — the
visible part of the object under the point, or the background.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ...errors import DataError, GeometryError
from ..scenes import label_map_from_objects  # rebuilds it from disjoint object masks
from .base import PointMaskStack, point_pixels
from .registry import register_proposer

__all__ = ["ExactProposer"]


@register_proposer("exact")
class ExactProposer:
    """Point masks from a label map.

    Parameters
    ----------
    label_map : (H, W) int
        ``0`` background, ``k + 1`` object ``k``; any non-negative integers work.
    background : bool
        Whether grid points on the background (label 0) get the background region as their point mask
        (like a SAM prompt on the background would); ``False`` leaves them without one (``-1``).

    Examples
    --------
    >>> lab = np.zeros((40, 40), np.int32); lab[0:20, 0:20] = 1
    >>> st = ExactProposer(lab).propose(None, 2)
    >>> st.point_to_mask.tolist(), int(st.masks[st.point_to_mask[0]].sum())
    ([1, 0, 0, 0], 400)
    """

    name = "exact"

    def __init__(self, label_map: np.ndarray, background: bool = True) -> None:
        lab = np.asarray(label_map)
        if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
            raise GeometryError(f"label_map must be a 2-D integer array (H, W), got {lab.dtype} {lab.shape}")
        if lab.size and lab.min() < 0:
            raise GeometryError("label_map must be non-negative (0 background, k+1 object k)")
        self.label_map = lab
        self.background = bool(background)
        self._digest = hashlib.sha256(
            np.ascontiguousarray(lab, dtype=np.int64).tobytes() + str(lab.shape).encode()
        ).hexdigest()

    @classmethod
    def from_image(cls, record, key: str = "label_map", background: bool = True) -> ExactProposer:
        """The proposer of an :class:`~getok.records.AnnotatedImage` whose ``meta[key]``
        holds its label map (procedural scenes)."""
        lab = record.meta.get(key) if getattr(record, "meta", None) is not None else None
        if lab is None:
            if key != "label_map":
                raise DataError(f"image {getattr(record, 'image_id', '?')}: no meta[{key!r}] label map for ExactProposer")

            lab = label_map_from_objects(record)
        return cls(np.asarray(lab), background=background)

    def settings(self) -> dict:
        return {"label_map_sha256": self._digest, "background": self.background}

    def propose(self, image: np.ndarray | None, n: int) -> PointMaskStack:
        """Point masks on an ``n x n`` grid; ``image`` (``(H, W, 3)``) is only checked against the label map."""
        if image is not None and tuple(np.shape(image)[:2]) != self.label_map.shape:
            raise GeometryError(f"image size {np.shape(image)[:2]} differs from the label map {self.label_map.shape}")
        return PointMaskStack.from_label_map(self.label_map, n, ignore=None if self.background else 0)

    def propose_at(self, image: np.ndarray | None, points_xy: np.ndarray) -> np.ndarray:
        """The region under arbitrary points ``(K, 2)`` XY pixels: masks ``(K, H, W)`` bool."""
        lab = self.label_map
        rows, cols = point_pixels(points_xy, lab.shape)
        vals = lab[rows, cols]
        out = lab[None] == vals[:, None, None]
        if not self.background:
            out[vals == 0] = False
        return out
