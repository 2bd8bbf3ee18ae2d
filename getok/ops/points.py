"""Points on pixels: the one rule for which pixel a point reads, and lookups of masks / images at points.

A point ``(x, y)`` (XY pixels, continuous) reads the pixel that contains it, ``(row, col) = (floor y,
floor x)``, clipped to the image: points on or beyond the right / bottom edge read the last pixel (refined
points are clipped to ``[0, W] x [0, H]``, so ``x = W`` happens).

>>> m = np.zeros((4, 4), bool); m[3, 3] = True
>>> points_in_mask([[3.5, 3.5], [4.0, 4.0], [0.5, 0.5]], m).tolist()
[True, True, False]
"""

from __future__ import annotations

import numpy as np

__all__ = ["pixel_of", "pixel_values", "points_in_mask", "hit_ratio"]


def pixel_of(points_xy, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` int64 of the pixels holding points ``(..., 2)`` XY in an image of ``size = (H, W)``
    (the points' leading shape is kept)."""
    pts = np.asarray(points_xy, dtype=np.float64)
    h, w = int(size[0]), int(size[1])
    cols = np.minimum(np.maximum(np.floor(pts[..., 0]), 0), w - 1).astype(np.int64)
    rows = np.minimum(np.maximum(np.floor(pts[..., 1]), 0), h - 1).astype(np.int64)
    return rows, cols


def pixel_values(points_xy, image: np.ndarray) -> np.ndarray:
    """Values of an ``(H, W)`` image at the pixel holding each point ``(K, 2)`` XY, ``(K,)`` of its dtype."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    rows, cols = pixel_of(pts, image.shape)
    return image.reshape(-1)[rows * image.shape[1] + cols]


def points_in_mask(points_xy, mask: np.ndarray, origin: tuple[int, int] | None = None) -> np.ndarray:
    """Whether each point ``(K, 2)`` XY pixels falls on a mask pixel, ``(K,)`` bool.

    ``mask`` is a full ``(H, W)`` mask (:func:`pixel_of`'s rule), or a crop of one whose top-left pixel is at
    ``origin = (row0, col0)`` (points outside the crop are outside the mask).
    """
    m = np.asarray(mask)
    if origin is None:
        return pixel_values(points_xy, m)
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    h, w = m.shape
    col = np.floor(pts[:, 0]) - origin[1]
    row = np.floor(pts[:, 1]) - origin[0]
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.zeros(len(pts), dtype=bool)
    if ok.any():
        out[ok] = m.reshape(-1)[row[ok].astype(np.int64) * w + col[ok].astype(np.int64)]
    return out


def hit_ratio(points_xy, mask: np.ndarray, origin: tuple[int, int] | None = None) -> float:
    """Fraction of points on the mask (:func:`points_in_mask`); 0 for no points."""
    inside = points_in_mask(points_xy, mask, origin)
    return float(np.count_nonzero(inside) / len(inside)) if len(inside) else 0.0
