"""The rasteriser: the region a geometry describes, as pixels — one implementation, three outputs.

* :func:`raster_mask` — an ``(H, W)`` bool mask (the weight-free ``raster`` decoder's output);
* :func:`raster_crop` — the same pixels as a tight crop ``(crop, row0, col0)``, without building the
  full-size mask for grid answers (the rewards' path);
* :func:`raster_cells` — for grid answers, the same pixels as cells of a grid (the cell-space path:
  ``n x n`` cells, or ``n m`` sub-cells for offsets of ``1 / m`` cell).

What each kind of geometry becomes: a ``mask`` itself; ``polygons`` filled outer rings minus holes;
``cells`` the union of the cells' squares (every pixel whose centre lies in a listed cell), ``<DELETE>``-d
cells dropped, a cell with an offset ``(dx, dy)`` contributing its square shifted by ``(dx, dy) * step``
cells and clipped to the image; a ``box`` the pixels whose centre lies in it; points alone nothing.

Speed: cells are drawn on an ``n x n`` table (an ``n m`` sub-cell table for offsets of ``1 / m`` cell) and
expanded to pixels by ``np.repeat`` with cached run lengths (:func:`pixel_cell_lookup`'s runs), over the
cells' bounding rows and columns only; other steps fill each square by slicing.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ..conventions import as_size
from ..errors import GeometryError
from .boxes import box_to_mask, mask_to_box
from .grid import pixel_cell_lookup
from .polygons import polygons_to_mask

if TYPE_CHECKING:  # the maths sit below the answer type: no import at run time
    from ..geometry import Geometry

__all__ = [
    "cells_to_mask",
    "shifted_cells_mask",
    "raster_mask",
    "raster_crop",
    "raster_cells",
    "shifted_squares",
    "crop_to_content",
    "trim_crop",
    "cells_crop",
    "grid_runs",
]

_EMPTY = (np.zeros((0, 0), dtype=bool), 0, 0)


@functools.lru_cache(maxsize=64)
def grid_runs(m: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels per row / column of an ``m x m`` grid and the first pixel of each (as
    :func:`~getok.ops.grid.pixel_cell_lookup` assigns pixels): ``row_runs, row_start, col_runs, col_start``."""
    rows, cols = pixel_cell_lookup(m, (h, w))
    rr, cc = np.bincount(rows, minlength=m), np.bincount(cols, minlength=m)
    out = (rr, np.concatenate([[0], np.cumsum(rr)[:-1]]), cc, np.concatenate([[0], np.cumsum(cc)[:-1]]))
    for a in out:
        a.setflags(write=False)
    return out


def _sub_steps(step: float) -> int | None:
    """``1 / step`` when it is a whole number (the sub-cell table path), else ``None``."""
    inv = 1.0 / step
    m = int(round(inv))
    return m if m >= 1 and abs(inv - m) < 1e-9 else None


def _check_cells(c: np.ndarray, n: int) -> None:
    if c.size and ((c < 0).any() or (c >= n).any()):
        raise GeometryError(f"cells must satisfy 0 <= cx, cy < n={n}")


def _blocks_crop(cells: np.ndarray, offsets: np.ndarray | None, n: int, m: int, size) -> tuple[np.ndarray, int, int]:
    """Cell squares on the ``n m`` sub-cell table, shifted by ``offsets`` sub-cells and clipped to the
    table, expanded to pixels over their bounding box only; a tight crop."""
    if len(cells) == 0:
        return _EMPTY
    nm = n * m
    lo = m * cells if offsets is None else m * cells + offsets  # (K, 2) first sub-cell (x, y)
    hi = np.minimum(lo + m, nm)
    lo = np.maximum(lo, 0)
    ok = np.all(hi > lo, axis=1)
    if not ok.all():
        lo, hi = lo[ok], hi[ok]
        if len(lo) == 0:
            return _EMPTY
    x0, y0 = lo.min(axis=0)
    x1, y1 = hi.max(axis=0)
    table = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    if m == 1:
        table[lo[:, 1] - y0, lo[:, 0] - x0] = True
    else:
        span = np.arange(m)
        ys = np.minimum(lo[:, 1:2] + span, hi[:, 1:2] - 1) - y0  # (K, m); clipped squares repeat an index
        xs = np.minimum(lo[:, 0:1] + span, hi[:, 0:1] - 1) - x0
        table[ys[:, :, None], xs[:, None, :]] = True
    rr, rs, cc, cs = grid_runs(nm, *size)
    crop = np.repeat(np.repeat(table, rr[y0:y1], axis=0), cc[x0:x1], axis=1)
    r0, c0 = int(rs[y0]), int(cs[x0])
    # the extreme table rows / columns each hold a square, and every table row / column covers at least
    # one pixel when the table is no finer than the image: then the crop is tight
    if nm <= min(size):
        return crop, r0, c0
    return trim_crop(crop, r0, c0)


def _squares_crop(cells: np.ndarray, offsets: np.ndarray, n: int, step: float, size) -> tuple[np.ndarray, int, int]:
    """Cell squares shifted by ``offsets * step`` cells (pixels whose centre lies in a square), as a tight
    crop: the path for steps that are not ``1 / m``."""
    h, w = size
    cw, ch = w / n, h / n
    x0 = (cells[:, 0] + offsets[:, 0] * step) * cw
    y0 = (cells[:, 1] + offsets[:, 1] * step) * ch
    # pixels j with centre j + 0.5 in [x0, x0 + cw)
    c1 = np.maximum(np.ceil(x0 - 0.5), 0).astype(np.int64)
    c2 = np.maximum(np.ceil(x0 + cw - 0.5), 0).astype(np.int64)
    r1 = np.maximum(np.ceil(y0 - 0.5), 0).astype(np.int64)
    r2 = np.maximum(np.ceil(y0 + ch - 0.5), 0).astype(np.int64)
    c1, c2, r1, r2 = (np.minimum(v, lim) for v, lim in ((c1, w), (c2, w), (r1, h), (r2, h)))
    ok = (r2 > r1) & (c2 > c1)
    if not ok.any():
        return _EMPTY
    r1, r2, c1, c2 = r1[ok], r2[ok], c1[ok], c2[ok]
    ra, ca = int(r1.min()), int(c1.min())
    crop = np.zeros((int(r2.max()) - ra, int(c2.max()) - ca), dtype=bool)
    for a, b, c, d in zip(r1 - ra, r2 - ra, c1 - ca, c2 - ca):
        crop[a:b, c:d] = True
    return crop, ra, ca


def trim_crop(crop: np.ndarray, r0: int, c0: int) -> tuple[np.ndarray, int, int]:
    """Shrink a crop placed at ``(r0, c0)`` to the tight box of its pixels: ``(crop, row0, col0)``."""
    box = mask_to_box(crop) if crop.size else None
    if box is None:
        return _EMPTY
    c, a, d, b = (int(v) for v in box)
    if (a, b, c, d) == (0, crop.shape[0], 0, crop.shape[1]):
        return crop, r0, c0
    return crop[a:b, c:d], r0 + a, c0 + c


def crop_to_content(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A full ``(H, W)`` mask → ``(crop, row0, col0)`` of its tight box (``(0, 0)`` crop when empty)."""
    return trim_crop(np.asarray(mask, dtype=bool), 0, 0)


def cells_crop(cells, n: int, size, offsets=None, step: float | None = None) -> tuple[np.ndarray, int, int]:
    """Cells ``(K, 2)`` (shifted by ``offsets * step`` cells when given) as a tight crop ``(crop, row0, col0)``."""
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    _check_cells(c, n)
    if offsets is None or not np.any(offsets):
        return _blocks_crop(c, None, n, 1, size)
    o = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    m = _sub_steps(step)
    if m is not None:
        return _blocks_crop(c, o, n, m, size)
    return _squares_crop(c, o, n, step, size)


def _paste(crop: np.ndarray, r0: int, c0: int, size) -> np.ndarray:
    out = np.zeros(size, dtype=bool)
    out[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return out


def cells_to_mask(cells, n: int, size: tuple[int, int]) -> np.ndarray:
    """Union of grid cells ``(K, 2)`` ``(cx, cy)`` as an ``(H, W)`` bool mask (pixel-centre rule).

    >>> cells_to_mask(np.array([[1, 0]]), 2, (2, 4)).astype(int).tolist()
    [[0, 0, 1, 1], [0, 0, 0, 0]]
    """
    size = as_size(size)
    return _paste(*cells_crop(cells, n, size), size)


def shifted_cells_mask(cells, n: int, size: tuple[int, int], offsets, step: float) -> np.ndarray:
    """Union of cell squares shifted by ``offsets * step`` cells, clipped to the image. ``(H, W)`` bool.

    ``cells`` ``(K, 2)`` int ``(cx, cy)``; ``offsets`` ``(K, 2)`` int ``(dx, dy)`` in steps; ``step`` a fraction
    of a cell (``> 0``). A pixel belongs to a shifted square when its centre does (the plain cell rule).

    >>> shifted_cells_mask(np.array([[0, 0]]), 2, (2, 4), np.array([[1, 0]]), 0.5).astype(int).tolist()
    [[0, 1, 1, 0], [0, 0, 0, 0]]
    """
    size = as_size(size)
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    o = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(o) != len(c):
        raise GeometryError(f"offsets ({len(o)}) must align with cells ({len(c)})")
    if not step > 0:
        raise GeometryError(f"step must be > 0, got {step}")
    if not np.any(o):  # no move: the plain cells (whatever the step)
        return cells_to_mask(c, n, size)
    return _paste(*cells_crop(c, n, size, o, step), size)


def _kept(g: Geometry) -> tuple[np.ndarray, np.ndarray | None]:
    keep = None if g.deleted is None else ~g.deleted
    cells = g.cells if keep is None else g.cells[keep]
    offs = None if g.offsets is None else (g.offsets if keep is None else g.offsets[keep])
    return cells, offs


def raster_mask(geometry: Geometry) -> np.ndarray:
    """The region of a geometry as an ``(H, W)`` bool mask (empty for points-only / empty geometries).

    Order: ``mask``, ``polygons``, ``cells`` (deleted dropped, offsets shift squares), ``box``.

    >>> from getok import Geometry
    >>> g = Geometry(size=(4, 4), cells=[[0, 0], [1, 1]], grid_n=2, deleted=[False, True])
    >>> int(raster_mask(g).sum())
    4
    >>> int(raster_mask(Geometry(size=(4, 4), points=[[1, 1]])).sum())
    0
    """
    if not all(hasattr(geometry, a) for a in ("size", "mask", "polygons", "cells", "box")):
        raise GeometryError(f"expected a Geometry, got {type(geometry).__name__}")
    g = geometry
    if g.mask is not None:
        return np.asarray(g.mask, dtype=bool)
    if g.polygons:
        return polygons_to_mask(g.polygons, g.size, g.holes)
    if g.cells is not None:
        cells, offs = _kept(g)
        return _paste(*cells_crop(cells, g.grid_n, g.size, offs, g.offset_step), g.size)
    if g.box is not None:
        return box_to_mask(g.box, g.size)
    return np.zeros(g.size, dtype=bool)


def raster_crop(geometry: Geometry) -> tuple[np.ndarray, int, int]:
    """:func:`raster_mask` as the tight crop that holds it: ``(crop, row0, col0)`` with
    ``mask[row0:row0+h, col0:col0+w] == crop`` and the mask empty elsewhere (an empty region is a ``(0, 0)``
    crop). Grid answers never build the full-size mask."""
    g = geometry
    if g.mask is not None or g.polygons or g.cells is None or len(g.cells) == 0:
        return crop_to_content(raster_mask(g))
    cells, offs = _kept(g)
    return cells_crop(cells, g.grid_n, g.size, offs, g.offset_step)


def shifted_squares(lo: np.ndarray, m: int, big: int) -> tuple[np.ndarray, np.ndarray]:
    """The sub-cells of ``m x m`` squares whose first sub-cell (x, y) is ``lo`` (``(..., 2)``) on the
    ``big x big`` sub-cell grid: row-major indices ``(..., m, m)`` and whether each lies on the grid."""
    span = np.arange(m)
    xs, ys = lo[..., 0:1] + span, lo[..., 1:2] + span  # (..., m) each
    flat = ys[..., :, None] * big + xs[..., None, :]
    ok = ((ys >= 0) & (ys < big))[..., :, None] & ((xs >= 0) & (xs < big))[..., None, :]
    return flat, ok


def raster_cells(geometry: Geometry) -> tuple[np.ndarray, int] | None:
    """What :func:`raster_mask` draws for grid cells, as cells of a grid: ``(indices, N)`` with row-major
    indices ``cy * N + cx`` (repeats possible) on the ``N x N`` grid — ``N = n`` for cells that do not move,
    ``N = n m`` (sub-cells) for offsets of ``1 / m`` cell. ``None`` when the region is not a union of such
    cells (masks, polygons, boxes, other steps)."""
    g = geometry
    if g.mask is not None or g.polygons or g.cells is None:
        return None
    n = g.grid_n
    cells, offs = _kept(g)
    if offs is None or not np.any(offs):
        return cells[:, 1] * n + cells[:, 0], n
    m = _sub_steps(g.offset_step)
    if m is None:
        return None
    big = n * m
    flat, ok = shifted_squares(m * cells + offs, m, big)
    return flat[ok], big
