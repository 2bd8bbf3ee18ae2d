"""``raster``: the weight-free default decoder — a geometry's region rasterised, no image needed.

What each kind of answer becomes:

* ``mask`` → itself.
* ``polygons`` → filled outer rings minus holes (:func:`getok.geom.polygons.polygons_to_mask`).
* ``cells`` → the union of the cells' squares (every pixel whose centre lies in a listed cell).
  ``<DELETE>``-d cells are dropped. A cell with an offset ``(dx, dy)`` contributes **its square shifted by
  the offset**, i.e. by ``(dx, dy) * offset_step`` cells (GETok: half a cell per step), clipped to the
  image. So an offset moves a cell's share of the mask with its point; with all offsets ``(0, 0)`` the
  result equals the plain cell raster.
* ``box`` → the pixels whose centre lies in the box.
* points only (a point answer) → an **empty** mask: points name no region. Use ``sam`` or ``proposals``
  to grow a region from points.

Speed: the cell raster is an ``n x n`` table expanded by ``np.repeat`` with per-size cached run lengths
(~0.04 ms for 640 x 480), offsets work on a finer table with ``1 / offset_step`` sub-cells per cell.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..conventions import as_size
from ..errors import GeometryError
from ..geom.boxes import box_to_mask
from ..geom.grid import pixel_cell_lookup
from ..geom.polygons import polygons_to_mask
from ..geometry import Geometry
from ._common import check_size, image_size
from .base import register_decoder

__all__ = ["RasterDecoder", "cells_mask", "shifted_cells_mask", "raster_mask"]


@lru_cache(maxsize=64)
def _runs(n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows / columns per grid row / column (run lengths of :func:`pixel_cell_lookup`)."""
    rows, cols = pixel_cell_lookup(n, (h, w))
    rr = np.bincount(rows, minlength=n)
    cc = np.bincount(cols, minlength=n)
    rr.setflags(write=False)
    cc.setflags(write=False)
    return rr, cc


def _expand(table: np.ndarray, h: int, w: int) -> np.ndarray:
    """A ``(m, m)`` cell table → ``(H, W)`` pixels, every pixel taking the cell its centre falls in."""
    rr, cc = _runs(table.shape[0], h, w)
    return np.repeat(np.repeat(table, rr, axis=0), cc, axis=1)


def cells_mask(cells: np.ndarray, n: int, size: tuple[int, int]) -> np.ndarray:
    """Union of grid cells ``(K, 2)`` ``(cx, cy)`` as an ``(H, W)`` bool mask (pixel-centre rule).

    Same result as :func:`getok.geom.grid.cells_to_mask`, ~15x faster on real-sized images.

    >>> cells_mask(np.array([[1, 0]]), 2, (2, 4)).astype(int).tolist()
    [[0, 0, 1, 1], [0, 0, 0, 0]]
    """
    h, w = as_size(size)
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    if c.size and ((c < 0).any() or (c >= n).any()):
        raise GeometryError(f"cells must satisfy 0 <= cx, cy < n={n}")
    table = np.zeros((n, n), dtype=bool)  # [cy, cx]
    table[c[:, 1], c[:, 0]] = True
    return _expand(table, h, w)


def _sub_steps(step: float) -> int | None:
    """``1 / step`` when it is a whole number (the fine-table path), else ``None``."""
    inv = 1.0 / step
    m = int(round(inv))
    return m if m >= 1 and abs(inv - m) < 1e-9 else None


def shifted_cells_mask(
    cells: np.ndarray, n: int, size: tuple[int, int], offsets: np.ndarray, step: float
) -> np.ndarray:
    """Union of cell squares shifted by ``offsets * step`` cells, clipped to the image. ``(H, W)`` bool.

    Parameters
    ----------
    cells : (K, 2) int
        ``(cx, cy)``.
    n : int
        Grid size.
    size : (H, W)
    offsets : (K, 2) int
        ``(dx, dy)`` in steps.
    step : float
        Step as a fraction of a cell (``> 0``).

    Notes
    -----
    A pixel belongs to a shifted square when its centre does (the same rule as the plain cell raster).
    When ``1 / step`` is a whole number ``m`` the squares are drawn on an ``(n m) x (n m)`` table of
    sub-cells and expanded like cells; otherwise each square is filled by slicing.

    Examples
    --------
    >>> shifted_cells_mask(np.array([[0, 0]]), 2, (2, 4), np.array([[1, 0]]), 0.5).astype(int).tolist()
    [[0, 1, 1, 0], [0, 0, 0, 0]]
    """
    h, w = as_size(size)
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    o = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(o) != len(c):
        raise GeometryError(f"offsets ({len(o)}) must align with cells ({len(c)})")
    if not step > 0:
        raise GeometryError(f"step must be > 0, got {step}")
    if c.size and ((c < 0).any() or (c >= n).any()):
        raise GeometryError(f"cells must satisfy 0 <= cx, cy < n={n}")
    m = _sub_steps(step)
    if m is not None:
        nm = n * m
        lo = c * m + o  # (K, 2) first sub-cell (x, y) of each shifted square
        table = np.zeros((nm, nm), dtype=bool)
        for (x0, y0) in lo:
            table[max(y0, 0) : max(y0 + m, 0), max(x0, 0) : max(x0 + m, 0)] = True
        return _expand(table, h, w)
    out = np.zeros((h, w), dtype=bool)
    cw, ch = w / n, h / n
    for (cx, cy), (dx, dy) in zip(c, o):
        x0 = (cx + dx * step) * cw
        y0 = (cy + dy * step) * ch
        # pixels j with centre j + 0.5 in [x0, x0 + cw)
        j0, j1 = int(np.ceil(x0 - 0.5)), int(np.ceil(x0 + cw - 0.5))
        i0, i1 = int(np.ceil(y0 - 0.5)), int(np.ceil(y0 + ch - 0.5))
        out[max(i0, 0) : max(i1, 0), max(j0, 0) : max(j1, 0)] = True
    return out


def raster_mask(geometry: Geometry) -> np.ndarray:
    """The region of a geometry as an ``(H, W)`` bool mask (empty for points-only / empty geometries).

    Order: ``mask``, ``polygons``, ``cells`` (deleted dropped, offsets shift squares), ``box``.

    Examples
    --------
    >>> g = Geometry(size=(4, 4), cells=[[0, 0], [1, 1]], grid_n=2, deleted=[False, True])
    >>> int(raster_mask(g).sum())
    4
    >>> int(raster_mask(Geometry(size=(4, 4), points=[[1, 1]])).sum())
    0
    """
    if not isinstance(geometry, Geometry):
        raise GeometryError(f"expected a Geometry, got {type(geometry).__name__}")
    g = geometry
    h, w = g.size
    if g.mask is not None:
        return np.asarray(g.mask, dtype=bool)
    if g.polygons:
        return polygons_to_mask(g.polygons, g.size, g.holes)
    if g.cells is not None:
        keep = np.ones(len(g.cells), dtype=bool) if g.deleted is None else ~g.deleted
        cells = g.cells[keep]
        if g.offsets is not None and np.any(g.offsets[keep]):
            return shifted_cells_mask(cells, g.grid_n, g.size, g.offsets[keep], g.offset_step)
        return cells_mask(cells, g.grid_n, g.size)
    if g.box is not None:
        return box_to_mask(g.box, g.size)
    return np.zeros((h, w), dtype=bool)


@register_decoder("raster")
class RasterDecoder:
    """Weight-free decoder: :func:`raster_mask` of each geometry (the module docstring says what each
    answer becomes). ``set_image`` only records the expected size; the image itself is not needed.

    Examples
    --------
    >>> from getok.decoding import get_decoder
    >>> dec = get_decoder("raster")
    >>> dec.set_image(None, size=(4, 6))
    >>> dec.decode(Geometry(size=(4, 6), box=[0, 0, 3, 2])).sum()
    np.int64(6)
    """

    name = "raster"

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None

    def settings(self) -> dict:
        return {"name": self.name}

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        self._size = image_size(image, size)

    def decode(self, geometry: Geometry) -> np.ndarray:
        check_size(geometry, self._size)
        return raster_mask(geometry)

