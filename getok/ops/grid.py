"""Grid cells: points and masks ↔ cells of an ``n x n`` grid, cell rasters and offsets.

Cell ``(cx, cy)`` (column, row) of an ``n x n`` grid over an image of size ``(H, W)`` covers pixels
``[cx W/n, (cx+1) W/n) x [cy H/n, (cy+1) H/n)``; its centre, the *grid point*, is at
``((cx + 0.5) W/n, (cy + 0.5) H/n)`` pixels. Flat indices are row-major: ``index = cy * n + cx``.
"""

from __future__ import annotations

import numpy as np

from ..conventions import as_size, normalize_points
from ..errors import GeometryError
from .masks import as_mask
from .quantize import dequantize, quantize

__all__ = [
    "cell_size",
    "grid_points",
    "cell_centers",
    "cell_index",
    "index_to_cells",
    "points_to_cells",
    "sort_cells",
    "mask_to_cells",
    "apply_offsets",
    "points_to_cells_offsets",
    "pixel_cell_lookup",
]


def cell_size(n: int, size: tuple[int, int]) -> tuple[float, float]:
    """Cell width and height in pixels ``(W / n, H / n)``."""
    h, w = as_size(size)
    return w / n, h / n


def grid_points(n: int, size: tuple[int, int]) -> np.ndarray:
    """All ``n * n`` cell centres in pixels, ``(n*n, 2)`` XY, in row-major index order."""
    centers = dequantize(np.arange(n), n)
    gx, gy = np.meshgrid(centers, centers)  # gy varies along rows → row-major flattening
    h, w = as_size(size)
    return np.stack([gx.ravel() * w, gy.ravel() * h], axis=1)


def cell_centers(cells, n: int, size: tuple[int, int]) -> np.ndarray:
    """Centres of cells ``(K, 2)`` (cx, cy) in pixels, ``(K, 2)`` XY."""
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    h, w = as_size(size)
    return dequantize(c, n) * np.array([w, h], dtype=np.float64)


def cell_index(cells, n: int) -> np.ndarray:
    """Row-major flat indices ``cy * n + cx`` of cells ``(K, 2)``."""
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    return c[:, 1] * n + c[:, 0]


def index_to_cells(index, n: int) -> np.ndarray:
    """Flat row-major indices → cells ``(K, 2)`` (cx, cy)."""
    i = np.asarray(index, dtype=np.int64).reshape(-1)
    return np.stack([i % n, i // n], axis=1)


def sort_cells(cells, n: int) -> np.ndarray:
    """Unique cells in row-major order (the stable target order for a set of cells)."""
    idx = np.unique(cell_index(cells, n))
    return index_to_cells(idx, n)


def points_to_cells(points_xy, n: int, size: tuple[int, int]) -> np.ndarray:
    """Pixel points ``(K, 2)`` → the cells that contain them, ``(K, 2)`` (cx, cy); edges clip inward."""
    return quantize(normalize_points(points_xy, size), n)


def pixel_cell_lookup(n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel row / column, the grid row / column its centre falls in: ``(H,)``, ``(W,)``."""
    h, w = as_size(size)
    rows = quantize((np.arange(h) + 0.5) / h, n)
    cols = quantize((np.arange(w) + 0.5) / w, n)
    return rows, cols


def mask_to_cells(mask, n: int) -> np.ndarray:
    """Cells whose grid point (centre) lies on a mask pixel, in row-major order.

    A non-empty mask too small to contain any grid point gets the one cell whose grid point is nearest
    to the mask, so a target never silently gets zero cells. An empty mask gives no cells.

    >>> m = np.zeros((40, 40), bool); m[0:20, 0:10] = True
    >>> mask_to_cells(m, 4).tolist()
    [[0, 0], [0, 1]]
    """
    m = as_mask(mask)
    size = m.shape
    if not m.any():
        return np.zeros((0, 2), dtype=np.int64)
    pts = grid_points(n, size)
    h, w = size
    rr = np.clip(np.floor(pts[:, 1]).astype(np.int64), 0, h - 1)
    cc = np.clip(np.floor(pts[:, 0]).astype(np.int64), 0, w - 1)
    inside = m[rr, cc]
    if inside.any():
        return index_to_cells(np.flatnonzero(inside), n)
    ys, xs = np.nonzero(m)
    pix = np.stack([xs + 0.5, ys + 0.5], axis=1)
    # nearest (grid point, mask pixel) pair; masks with no grid point inside are small, so this is cheap
    d = ((pts[:, None, :] - pix[None, :, :]) ** 2).sum(-1).min(axis=1) if len(pix) <= 4096 else None
    if d is None:
        from scipy.ndimage import distance_transform_edt

        dist = distance_transform_edt(~m)
        d = dist[rr, cc]
    return index_to_cells([int(np.argmin(d))], n)


def apply_offsets(cells, n, size, offsets=None, step=None, deleted=None) -> np.ndarray:
    """Refined points: cell centres moved by ``offsets * step`` cells, deleted ones dropped, clipped.

    Parameters
    ----------
    cells : (K, 2) int
    n : int
    size : (H, W)
    offsets : (K, 2) int, optional
        ``(dx, dy)`` in steps; ``None`` means no move.
    step : float, optional
        Step as a fraction of a cell.
    deleted : (K,) bool, optional

    Returns
    -------
    (K', 2) float
        XY pixels, inside ``[0, W] x [0, H]``.
    """
    pts = cell_centers(cells, n, size)
    if offsets is not None:
        if step is None:
            raise GeometryError("offsets need a step (fraction of a cell)")
        cw, ch = cell_size(n, size)
        pts = pts + np.asarray(offsets, dtype=np.float64).reshape(-1, 2) * step * np.array([cw, ch])
    if deleted is not None:
        pts = pts[~np.asarray(deleted, dtype=bool)]
    h, w = as_size(size)
    return np.clip(pts, 0.0, np.array([w, h], dtype=np.float64))


def points_to_cells_offsets(points_xy, n: int, r: int, step: float, size: tuple[int, int]):
    """Quantise pixel points to (cell, offset) pairs: the nearest reachable position.

    The reachable positions of a cell are its centre plus ``(dx, dy) * step`` cells, ``|dx|, |dy| <= r``.
    Per axis this picks the cell and the offset whose position is closest to the point; a position
    reachable two ways (a cell edge) takes the smaller move, then the lower cell.

    Returns
    -------
    cells, offsets : (K, 2) int arrays
    """
    pn = normalize_points(points_xy, size) * n  # in cell units, [0, n]
    base = np.clip(np.floor(pn), 0, n - 1).astype(np.int64)
    cand = np.stack([np.clip(base + dc, 0, n - 1) for dc in (-1, 0, 1)])  # (3, K, 2)
    resid = pn[None] - (cand + 0.5)
    off = np.clip(np.rint(resid / step), -r, r).astype(np.int64)
    err = np.abs(resid - off * step)
    # canonical among equally close positions (a cell edge is reachable from both sides): the smallest
    # move, then the lower cell, so that re-encoding a decoded point gives the same tokens
    key = np.where(err <= err.min(axis=0, keepdims=True) + 1e-9, np.abs(off) * (n + 1) + cand, np.iinfo(np.int64).max)
    pick = np.argmin(key, axis=0)  # (K, 2)
    k_idx = np.arange(pn.shape[0])[:, None]
    a_idx = np.arange(2)[None, :]
    return cand[pick, k_idx, a_idx], off[pick, k_idx, a_idx]
