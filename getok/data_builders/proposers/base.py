"""Point masks: exactly one mask per grid point, the point → mask mapping kept.

A :class:`MaskProposer` looks at an image and, for every grid point of an ``n x n`` grid (cell centres,
row-major index ``cy * n + cx``), returns the mask that the point selects. Many grid points often select
the same region, so a :class:`PointMaskStack` stores the *unique* masks once and, per grid point, the
index of its mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ...conventions import as_size
from ...errors import GeometryError, require
from ...ops.grid import grid_points

__all__ = ["PointMaskStack", "MaskProposer", "StackBuilder", "grid_pixels", "point_pixels"]


def point_pixels(points_xy, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, column) indices ``(K,)`` of points ``(K, 2)`` XY pixels (floor, clipped to the image)."""
    h, w = as_size(size)
    p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    rows = np.clip(np.floor(p[:, 1]).astype(np.int64), 0, h - 1)
    cols = np.clip(np.floor(p[:, 0]).astype(np.int64), 0, w - 1)
    return rows, cols


def grid_pixels(n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, column) indices of the ``n * n`` grid points, row-major, ``(n*n,)`` int64 each.

    A grid point at ``(x, y)`` pixels lies on pixel ``(floor(y), floor(x))`` (clipped to the image), the
    same rule :func:`getok.ops.grid.mask_to_cells` uses.
    """
    h, w = as_size(size)
    pts = grid_points(n, (h, w))
    rows = np.clip(np.floor(pts[:, 1]).astype(np.int64), 0, h - 1)
    cols = np.clip(np.floor(pts[:, 0]).astype(np.int64), 0, w - 1)
    return rows, cols


@dataclass(eq=False)
class PointMaskStack:
    """Point masks of one image on an ``n x n`` grid.

    Attributes
    ----------
    n : int
        Grid size.
    size : (H, W)
    masks : (U, H, W) bool
        The distinct point masks.
    point_to_mask : (n * n,) int64
        For grid point ``cy * n + cx``, the index into ``masks`` of its point mask; ``-1`` where the
        proposer returned nothing for that point.
    scores : (n * n,) float, optional
        The proposer's confidence per grid point (SAM's predicted IoU), when it has one.
    """

    n: int
    size: tuple[int, int]
    masks: np.ndarray
    point_to_mask: np.ndarray
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        self.point_to_mask = np.asarray(self.point_to_mask, dtype=np.int64).reshape(-1)
        h, w = self.size
        if self.masks.ndim != 3 or self.masks.shape[1:] != (h, w):
            raise GeometryError(f"masks must be (U, {h}, {w}), got {self.masks.shape}")
        if self.point_to_mask.shape != (self.n * self.n,):
            raise GeometryError(f"point_to_mask must have n*n={self.n * self.n} entries")
        if self.point_to_mask.max(initial=-1) >= len(self.masks) or self.point_to_mask.min(initial=0) < -1:
            raise GeometryError("point_to_mask indexes outside masks")

    def mask_of(self, cx: int, cy: int) -> np.ndarray:
        """The point mask selected by grid point ``(cx, cy)`` (an empty mask where there is none)."""
        k = self.point_to_mask[cy * self.n + cx]
        return self.masks[k] if k >= 0 else np.zeros(self.size, dtype=bool)

    # ------------------------------------------------------------------ added by the data builders
    @property
    def num_masks(self) -> int:
        """``U``, the number of distinct point masks."""
        return int(len(self.masks))

    def point_masks(self) -> np.ndarray:
        """Dense per-point view ``(n*n, H, W)`` bool (empty where a point has no point mask); memory heavy."""
        out = np.zeros((self.n * self.n, *self.size), dtype=bool)
        ok = self.point_to_mask >= 0
        out[ok] = self.masks[self.point_to_mask[ok]]
        return out

    def rles(self) -> list[dict]:
        """Compressed COCO RLEs of ``masks`` (pycocotools dicts, ``counts`` as bytes), computed once.

        The point-mask cache sets them when it loads a stack, so a loaded stack never re-encodes.
        """
        cached = getattr(self, "_rles", None)
        if cached is None or len(cached) != len(self.masks):
            mask_utils = require("pycocotools.mask", "coco", "RLE point masks")
            if len(self.masks) == 0:
                cached = []
            else:
                # (U, H, W) → (H, W, U) Fortran order: what pycocotools encodes in one call
                cached = mask_utils.encode(np.asfortranarray(self.masks.transpose(1, 2, 0)).view(np.uint8))
            self._rles = cached
        return cached

    def set_rles(self, rles: list[dict]) -> None:
        """Attach RLEs that are known to encode ``masks`` (no check beyond the count)."""
        if len(rles) != len(self.masks):
            raise GeometryError(f"{len(rles)} RLEs for {len(self.masks)} masks")
        self._rles = list(rles)

    @classmethod
    def from_label_map(
        cls,
        labels: np.ndarray,
        n: int,
        *,
        ignore: int | None = None,
        scores: np.ndarray | None = None,
    ) -> PointMaskStack:
        """Point masks of a partition: grid point → the region of its label.

        Parameters
        ----------
        labels : (H, W) int
            A label per pixel (any integers; regions need not be connected).
        n : int
            Grid size.
        ignore : int, optional
            A label whose grid points get no point mask (``point_to_mask == -1``).
        scores : (n*n,) float, optional

        Examples
        --------
        >>> lab = np.zeros((4, 4), int); lab[:, 2:] = 7
        >>> st = PointMaskStack.from_label_map(lab, 2)
        >>> st.point_to_mask.tolist(), st.masks.shape
        ([0, 1, 0, 1], (2, 4, 4))
        """
        lab = np.asarray(labels)
        if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
            raise GeometryError(f"labels must be a 2-D integer array (H, W), got {lab.dtype} {lab.shape}")
        if int(n) <= 0:
            raise GeometryError(f"n must be positive, got {n}")
        n = int(n)
        rows, cols = grid_pixels(n, lab.shape)
        point_labels = lab[rows, cols]
        keep = np.ones(point_labels.shape, dtype=bool) if ignore is None else point_labels != ignore
        uniq, inverse = np.unique(point_labels[keep], return_inverse=True)
        p2m = np.full(n * n, -1, dtype=np.int64)
        p2m[keep] = inverse
        masks = lab[None, :, :] == uniq[:, None, None] if len(uniq) else np.zeros((0, *lab.shape), bool)
        return cls(n=n, size=lab.shape, masks=masks, point_to_mask=p2m, scores=scores)

    @classmethod
    def from_point_masks(cls, point_masks: np.ndarray, n: int, scores: np.ndarray | None = None) -> PointMaskStack:
        """Point masks given one mask per grid point: identical masks are stored once, empty ones map to -1.

        Parameters
        ----------
        point_masks : (n*n, H, W) bool
            The mask of each grid point, row-major.
        n : int
        scores : (n*n,) float, optional
        """
        pm = np.asarray(point_masks, dtype=bool)
        n = int(n)
        if pm.ndim != 3 or len(pm) != n * n:
            raise GeometryError(f"point_masks must be (n*n={n * n}, H, W), got {pm.shape}")
        builder = StackBuilder(n, pm.shape[1:])
        for i in range(len(pm)):
            builder.add(i, pm[i])
        return builder.build(scores)


class StackBuilder:
    """Collects one mask per grid point, storing each distinct mask once (for proposers that predict
    masks point by point, e.g. SAM in batches).

    >>> b = StackBuilder(2, (2, 2)); m = np.eye(2, dtype=bool)
    >>> for i in range(4):
    ...     _ = b.add(i, m if i < 3 else np.zeros((2, 2), bool))
    >>> st = b.build(); st.point_to_mask.tolist(), len(st.masks)
    ([0, 0, 0, -1], 1)
    """

    def __init__(self, n: int, size: tuple[int, int]) -> None:
        self.n = int(n)
        self.size = as_size(size)
        self._seen: dict[bytes, int] = {}
        self._masks: list[np.ndarray] = []
        self._p2m = np.full(self.n * self.n, -1, dtype=np.int64)

    def add(self, point_index: int, mask: np.ndarray) -> int:
        """Record the mask of grid point ``point_index``; returns its index into the stack (-1: empty)."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != self.size:
            raise GeometryError(f"mask of point {point_index} has shape {m.shape}, expected {self.size}")
        if not m.any():
            self._p2m[point_index] = -1
            return -1
        key = np.packbits(m).tobytes()
        k = self._seen.get(key)
        if k is None:
            k = self._seen[key] = len(self._masks)
            self._masks.append(m.copy())
        self._p2m[point_index] = k
        return k

    def build(self, scores: np.ndarray | None = None) -> PointMaskStack:
        masks = np.stack(self._masks) if self._masks else np.zeros((0, *self.size), dtype=bool)
        return PointMaskStack(n=self.n, size=self.size, masks=masks, point_to_mask=self._p2m.copy(), scores=scores)


@runtime_checkable
class MaskProposer(Protocol):
    """Anything that proposes one mask per grid point of an image."""

    name: str

    def settings(self) -> dict:
        """Everything that changes the output (model type, checkpoint hash, thresholds): the cache key."""
        ...

    def propose(self, image: np.ndarray, n: int) -> PointMaskStack:
        """Point masks for ``image`` (``(H, W, 3)`` uint8 RGB) on an ``n x n`` grid."""
        ...
