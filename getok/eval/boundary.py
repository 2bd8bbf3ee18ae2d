"""Shape metrics: boundary F-score (DAVIS-style) and vertex Chamfer distance between polygons.

Pure numpy / scipy. Masks are ``(H, W)`` bool, polygons ``(V, 2)`` XY pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import GeometryError
from ..ops.masks import as_mask

__all__ = ["mask_boundary", "boundary_tolerance", "boundary_f_score", "boundary_precision_recall", "vertex_chamfer"]

#: DAVIS's default tolerance: 0.008 of the image diagonal.
DAVIS_TOL = 0.008


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels ``(H, W)`` bool: mask pixels with a 4-neighbour outside the mask.

    Neighbours beyond the image border do not count (an object cut by the image edge has no boundary
    along the edge, as in DAVIS's ``seg2bmap``).

    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> mask_boundary(m).astype(int).sum(), bool(mask_boundary(m)[2, 2])
    (np.int64(8), False)
    """
    m = as_mask(mask)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def boundary_tolerance(tol: float, size: tuple[int, int]) -> int:
    """Tolerance in whole pixels: ``tol`` itself when ``>= 1``, else ``ceil(tol * diagonal)`` (DAVIS).

    >>> boundary_tolerance(0.008, (480, 640)), boundary_tolerance(2, (480, 640))
    (7, 2)
    """
    if not tol > 0:
        raise GeometryError(f"boundary tolerance must be > 0, got {tol}")
    if tol >= 1:
        return int(round(tol))
    h, w = size
    return int(math.ceil(tol * math.hypot(h, w)))


def boundary_precision_recall(pred: np.ndarray, gt: np.ndarray, tol: float = DAVIS_TOL) -> tuple[float, float]:
    """Boundary precision and recall: the share of each boundary within ``tol`` pixels of the other.

    Both boundaries empty → ``(1, 1)``; one empty → ``(0, 0)``.
    """
    from scipy.ndimage import distance_transform_edt

    p = as_mask(pred, name="pred")
    g = as_mask(gt, name="gt")
    if p.shape != g.shape:
        raise GeometryError(f"masks differ in shape: {p.shape} vs {g.shape}")
    r = boundary_tolerance(tol, p.shape)
    pb, gb = mask_boundary(p), mask_boundary(g)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 and n_g == 0:
        return 1.0, 1.0
    if n_p == 0 or n_g == 0:
        return 0.0, 0.0
    # crop to the boundaries' joint box plus the tolerance: distances beyond it never matter
    rows = np.flatnonzero((pb | gb).any(axis=1))
    cols = np.flatnonzero((pb | gb).any(axis=0))
    y1, y2 = max(rows[0] - r - 1, 0), rows[-1] + r + 2
    x1, x2 = max(cols[0] - r - 1, 0), cols[-1] + r + 2
    pb, gb = pb[y1:y2, x1:x2], gb[y1:y2, x1:x2]
    near_g = distance_transform_edt(~gb) <= r  # within r of the gt boundary (disk dilation)
    near_p = distance_transform_edt(~pb) <= r
    precision = float(np.count_nonzero(pb & near_g)) / n_p
    recall = float(np.count_nonzero(gb & near_p)) / n_g
    return precision, recall


def boundary_f_score(pred: np.ndarray, gt: np.ndarray, tol: float = DAVIS_TOL) -> float:
    """Boundary F-score (DAVIS ``F``): harmonic mean of boundary precision and recall.

    Parameters
    ----------
    pred, gt : (H, W) bool
    tol : float
        Match tolerance: pixels when ``>= 1``, else a fraction of the image diagonal (DAVIS: 0.008).

    Returns
    -------
    float in [0, 1]
        1 when both masks are empty, 0 when exactly one is.

    Examples
    --------
    >>> m = np.zeros((20, 20), bool); m[5:15, 5:15] = True
    >>> boundary_f_score(m, m), boundary_f_score(m, np.roll(m, 1, axis=1), tol=1)
    (1.0, 1.0)
    >>> boundary_f_score(m, np.roll(m, 3, axis=1), tol=1)  # 18 of 36 boundary pixels within 1 px each way
    0.5
    """
    p, r = boundary_precision_recall(pred, gt, tol)
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def _vertices(polys) -> np.ndarray:
    if polys is None:
        return np.zeros((0, 2))
    if isinstance(polys, np.ndarray):
        arr = polys.astype(np.float64)
        if arr.size == 0:
            return arr.reshape(0, 2)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise GeometryError(f"polygon vertices must be (V, 2) XY, got shape {arr.shape}")
        return arr
    parts = [_vertices(np.asarray(p, dtype=np.float64)) for p in polys]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 2))


def vertex_chamfer(a: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray]) -> float:
    """Symmetric vertex Chamfer distance between two polygon sets, in pixels.

    ``0.5 * (mean_{u in A} min_{v in B} |u - v| + mean_{v in B} min_{u in A} |u - v|)`` over the
    vertices of all rings of each set (Euclidean, not squared). ``nan`` when either set has no vertex.

    Parameters
    ----------
    a, b : (V, 2) array or sequence of (V_i, 2) arrays
        XY pixels.

    Examples
    --------
    >>> sq = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    >>> vertex_chamfer(sq, sq), vertex_chamfer(sq, sq + [3, 0])
    (0.0, 2.0)
    """
    from scipy.spatial import cKDTree

    va, vb = _vertices(a), _vertices(b)
    if len(va) == 0 or len(vb) == 0:
        return float("nan")
    if len(va) * len(vb) <= 250_000:
        d = np.sqrt(((va[:, None, :] - vb[None, :, :]) ** 2).sum(-1))
        return float(0.5 * (d.min(axis=1).mean() + d.min(axis=0).mean()))
    da, _ = cKDTree(vb).query(va)
    db, _ = cKDTree(va).query(vb)
    return float(0.5 * (da.mean() + db.mean()))
