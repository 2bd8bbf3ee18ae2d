"""Polygons: mask → polygons by border following, polygons → mask, orientation, simplification.

Rings are ``(V, 2)`` float arrays of XY pixel coordinates in the continuous convention (pixel ``(i, j)``
has its centre at ``(j + 0.5, i + 0.5)``). Outer rings are **clockwise on screen** (y pointing down),
which is a positive shoelace area in image coordinates; holes are counter-clockwise.
"""

from __future__ import annotations

import numpy as np

from ..conventions import as_size
from ..errors import GeometryError
from .masks import as_mask

__all__ = [
    "signed_area",
    "is_clockwise",
    "orient",
    "perimeter",
    "mask_to_polygons",
    "polygons_to_mask",
]

_SHIFT = 8  # OpenCV sub-pixel bits for fillPoly


def signed_area(ring) -> float:
    """Shoelace area in image coordinates: positive for clockwise-on-screen rings.

    >>> signed_area([[0, 0], [1, 0], [1, 1], [0, 1]])
    1.0
    """
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    x, y = r[:, 0], r[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def is_clockwise(ring) -> bool:
    """True when the ring turns clockwise on screen (y down)."""
    return signed_area(ring) > 0


def orient(ring, clockwise: bool = True) -> np.ndarray:
    """Return the ring with the requested orientation, starting at its top-most, then left-most vertex.

    The fixed start makes the written polygon of a mask unique (a stable training target).
    """
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    if is_clockwise(r) != clockwise:
        r = r[::-1]
    start = int(np.lexsort((r[:, 0], r[:, 1]))[0])
    return np.roll(r, -start, axis=0).copy()


def perimeter(ring) -> float:
    """Length of the closed ring in pixels."""
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    return float(np.linalg.norm(r - np.roll(r, -1, axis=0), axis=1).sum())


def _pixel_ring(contour: np.ndarray) -> np.ndarray:
    """A degenerate contour (fewer than 3 vertices: a pixel or a thin line) → the box of its pixels."""
    x0, y0 = contour.min(axis=0)
    x1, y1 = contour.max(axis=0) + 1.0
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def mask_to_polygons(
    mask,
    eps_rel: float = 0.01,
    *,
    holes: bool = False,
    min_area: float = 0.0,
    max_polygons: int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Trace a mask into simplified polygons.

    Border following (Suzuki–Abe, OpenCV ``findContours``) through boundary pixel centres, then
    Douglas–Peucker (``approxPolyDP``) with tolerance ``eps_rel * perimeter`` of each contour
    (SimpleSeg's recipe with ``eps_rel = 0.01``). Several connected components give several polygons;
    with ``holes=True`` the holes are returned too. A contour that simplifies to fewer than 3 vertices
    (one pixel, a one-pixel-wide line) becomes the box of its pixels, so no part is silently lost.

    Parameters
    ----------
    mask : (H, W) bool
    eps_rel : float
        Simplification tolerance as a fraction of each contour's perimeter; 0 keeps every vertex.
    holes : bool
        Also return the holes (counter-clockwise rings).
    min_area : float
        Drop outer rings whose area (pixels) is below this, unless that would drop them all.
    max_polygons : int, optional
        Keep only the largest outer rings.

    Returns
    -------
    outers, holes : lists of (V, 2) float arrays
        Outer rings clockwise, hole rings counter-clockwise, XY pixels, largest outer first.

    Examples
    --------
    >>> m = np.zeros((8, 8), bool); m[2:6, 1:5] = True
    >>> outers, _ = mask_to_polygons(m)
    >>> outers[0].tolist()
    [[1.5, 2.5], [4.5, 2.5], [4.5, 5.5], [1.5, 5.5]]
    """
    import cv2

    if eps_rel < 0:
        raise GeometryError(f"eps_rel must be >= 0, got {eps_rel}")
    m = as_mask(mask).astype(np.uint8)
    if not m.any():
        return [], []
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    contours, hierarchy = cv2.findContours(m, mode, cv2.CHAIN_APPROX_NONE)
    outers: list[np.ndarray] = []
    hole_rings: list[np.ndarray] = []
    for i, c in enumerate(contours):
        c = c.reshape(-1, 2).astype(np.float64)
        is_hole = holes and hierarchy is not None and hierarchy[0][i][3] >= 0
        if len(c) >= 3 and eps_rel > 0:
            eps = eps_rel * cv2.arcLength(c.astype(np.float32).reshape(-1, 1, 2), True)
            simp = cv2.approxPolyDP(c.astype(np.float32).reshape(-1, 1, 2), eps, True).reshape(-1, 2)
            c = simp.astype(np.float64)
        if len(c) < 3 or abs(signed_area(c)) == 0:
            if is_hole:
                continue  # a hole too small to have an interior rasterises to nothing
            c = _pixel_ring(c)
        c = c + 0.5  # pixel indices → continuous coordinates (pixel centres)
        if is_hole:
            hole_rings.append(orient(c, clockwise=False))
        else:
            outers.append(orient(c, clockwise=True))
    outers.sort(key=lambda r: -abs(signed_area(r)))
    if min_area > 0:
        kept = [r for r in outers if abs(signed_area(r)) >= min_area]
        outers = kept or outers[:1]
    if max_polygons is not None:
        outers = outers[: max(1, int(max_polygons))]
    return outers, hole_rings


def _cv_points(ring) -> np.ndarray:
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2) - 0.5  # continuous → pixel-index coordinates
    return np.rint(r * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def polygons_to_mask(polygons, size: tuple[int, int], holes=()) -> np.ndarray:
    """Rasterise outer rings (union) minus hole interiors into an ``(H, W)`` bool mask.

    A pixel is set when its centre lies inside or on an outer ring; a hole clears the pixels strictly
    inside it (its boundary pixels belong to the object, as border following traced them).
    """
    import cv2

    h, w = as_size(size)
    out = np.zeros((h, w), dtype=np.uint8)
    rings = [_cv_points(r) for r in polygons if len(np.asarray(r).reshape(-1, 2)) >= 3]
    if rings:
        cv2.fillPoly(out, rings, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    hole_list = [_cv_points(r) for r in holes if len(np.asarray(r).reshape(-1, 2)) >= 3]
    if hole_list:
        inner = np.zeros_like(out)
        cv2.fillPoly(inner, hole_list, 1, lineType=cv2.LINE_8, shift=_SHIFT)
        edge = np.zeros_like(out)
        cv2.polylines(edge, hole_list, True, 1, lineType=cv2.LINE_8, shift=_SHIFT)
        out[(inner == 1) & (edge == 0)] = 0
    return out.astype(bool)
