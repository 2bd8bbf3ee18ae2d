"""The coordinate conventions, written once.

* Images are ``(H, W, 3)`` ``uint8`` RGB arrays. Sizes are ``(H, W)``.
* Points are ``(x, y)``; arrays of points have shape ``(K, 2)`` with columns x then y.
* Boxes are ``x1, y1, x2, y2`` (XYXY) with ``x1 <= x2`` and ``y1 <= y2``.
* Everything is in **pixels** unless the name says ``_norm`` (normalised to ``[0, 1]`` by W and H).
  Pixel coordinates are continuous: pixel ``(i, j)`` (row i, column j) covers ``[j, j+1) x [i, i+1)``
  and its centre is ``(j + 0.5, i + 0.5)``. A box that covers exactly that pixel is ``(j, i, j+1, i+1)``.
* Masks are ``(H, W)`` ``bool`` arrays.
* Grid cells are ``(cx, cy)``, column then row, ``0 <= cx, cy < n``. Cell ``(cx, cy)`` covers
  ``[cx/n, (cx+1)/n) x [cy/n, (cy+1)/n)`` normalised; its centre is ``((cx + 0.5) / n, (cy + 0.5) / n)``.
* Offsets move a point by ``(dx, dy) * step`` cells with integer ``dx, dy`` in ``[-r, r]``; ``step`` is a
  fraction of a cell (GETok: ``r = 1``, ``step = 0.5``).
"""

from __future__ import annotations

import numpy as np

from .errors import GeometryError

__all__ = [
    "normalize_points",
    "denormalize_points",
    "normalize_box",
    "denormalize_box",
    "as_size",
]


def as_size(size) -> tuple[int, int]:
    """Validate an image size ``(H, W)`` and return it as a tuple of two positive ints."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"size must be (H, W), got {size!r}") from exc
    if h <= 0 or w <= 0:
        raise GeometryError(f"size must be positive (H, W), got {size!r}")
    return h, w


def normalize_points(points_xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel points ``(K, 2)`` XY → normalised ``[0, 1]`` points, dividing x by W and y by H."""
    h, w = as_size(size)
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    return pts / np.array([w, h], dtype=np.float64)


def denormalize_points(points_xy_norm: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Normalised points ``(K, 2)`` XY → pixel points."""
    h, w = as_size(size)
    pts = np.asarray(points_xy_norm, dtype=np.float64).reshape(-1, 2)
    return pts * np.array([w, h], dtype=np.float64)


def normalize_box(box_xyxy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel box XYXY → normalised box XYXY."""
    return normalize_points(np.asarray(box_xyxy, dtype=np.float64).reshape(2, 2), size).reshape(4)


def denormalize_box(box_xyxy_norm: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Normalised box XYXY → pixel box XYXY."""
    return denormalize_points(np.asarray(box_xyxy_norm, dtype=np.float64).reshape(2, 2), size).reshape(4)
