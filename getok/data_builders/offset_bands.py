"""Refinement bands: the band (Inside, Ring, Far, Hard-Delete) and the refinement label (an offset move or
``<DELETE>``) of grid points for a target mask.

DESIGN.md, "Offset-aware samples". A grid point ``p`` (pixel coordinates of its cell centre) may move by
``(dx, dy) * step`` cells with ``|dx|, |dy| <= r``; in pixels one step is ``(sx, sy) = step * (W / n, H / n)``.
For a target mask ``M``, with axis-aligned rectangular ("square" in grid units) structuring elements of
half-widths ``ceil(w * r * sx), ceil(w * r * sy)`` pixels, every grid point falls in exactly one band,
tested in this order:

1. **Inside** — ``p`` in ``erode(M, inside_steps)``: every one-step move stays in ``M`` → ``<off_0_0>``.
2. **Ring** — some move (the null move included) lands on a pixel of ``M`` (the one-step hit test) → the
   move whose landing pixel lies deepest in ``M`` by the Euclidean distance transform (ties: the shorter
   move, then the first in row-major move order). *Our decision where DESIGN.md is silent:* a point
   inside ``M`` but not Inside (the inner boundary strip) belongs to Ring too — its null move already
   lands in ``M``, and it gets the deepest landing move, which is ``<off_0_0>`` only when staying put is
   the deepest option. Points outside ``M`` with a landing move are DESIGN's Ring proper.
3. **Far** — ``p`` outside ``dilate(M, far_steps)``: no move can reach ``M`` → ``<DELETE>``.
4. **Hard-Delete** — the rest: near ``M`` but no move lands in it (``M`` passes between the landing
   points, e.g. a thin part) → ``<DELETE>``.

Landing positions follow :func:`getok.ops.grid.apply_offsets` exactly (cell centre plus the move, clipped
to the image) and a position ``(x, y)`` lies on pixel ``(min(floor(y), H-1), min(floor(x), W-1))``; the
erosion treats the image border as part of ``M`` for the same reason (a clipped move stays on the border).

These labels answer the refinement turn of :func:`~getok.data_builders.offsets.offset_sample`; the
stage-2 reward and self-correction evaluation use them too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..conventions import as_size
from ..errors import ConfigError
from ..ops.boxes import mask_to_box
from ..ops.grid import grid_points
from ..ops.masks import as_mask
from ..ops.refine import landing_pixels, offset_moves
from .proposers.base import grid_pixels

__all__ = [
    "INSIDE",
    "RING",
    "FAR",
    "HARD_DELETE",
    "BAND_NAMES",
    "BandConfig",
    "PointLabels",
    "step_pixels",
    "label_points",
    "label_grid",
]

INSIDE, RING, FAR, HARD_DELETE = 0, 1, 2, 3
BAND_NAMES = ("inside", "ring", "far", "hard_delete")


@dataclass(frozen=True)
class BandConfig:
    """Band widths, in offset steps (``None``: ``r``, the reach of one move).

    Attributes
    ----------
    inside_steps : float, optional
        Half-width of the erosion that defines Inside. With the default ``r`` every move from an Inside
        point stays in the mask; a smaller value labels more points ``<off_0_0>``.
    far_steps : float, optional
        Half-width of the dilation outside which points are Far. With the default ``r`` no move from a
        Far point can reach the mask.
    """

    inside_steps: float | None = None
    far_steps: float | None = None

    def __post_init__(self):
        for name in ("inside_steps", "far_steps"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ConfigError(f"bands.{name} must be >= 0, got {v}")


@dataclass
class PointLabels:
    """Refinement labels of points.

    Attributes
    ----------
    band : (P,) int8
        ``INSIDE`` 0, ``RING`` 1, ``FAR`` 2, ``HARD_DELETE`` 3.
    offsets : (P, 2) int64
        Moves ``(dx, dy)`` in steps (zero where deleted).
    deleted : (P,) bool
        ``<DELETE>`` (Far and Hard-Delete).
    """

    band: np.ndarray
    offsets: np.ndarray
    deleted: np.ndarray


def step_pixels(n: int, size: tuple[int, int], step: float) -> tuple[float, float]:
    """One offset step in pixels ``(sx, sy)``: ``step`` cells of ``W / n`` by ``H / n`` pixels."""
    h, w = as_size(size)
    return step * w / n, step * h / n


def _moves_by_length(r: int) -> np.ndarray:
    mv = offset_moves(r)
    return mv[np.argsort(np.abs(mv).sum(axis=1), kind="stable")]


def _half_widths(n, size, r, step, steps):
    sx, sy = step_pixels(n, size, step)
    w = r if steps is None else steps
    return int(math.ceil(w * sx - 1e-9)), int(math.ceil(w * sy - 1e-9))


def label_points(mask, points, n: int, r: int, step: float, bands: BandConfig | None = None) -> PointLabels:
    """Band and refinement label of each point (vectorised; morphology on the mask's box only).

    Parameters
    ----------
    mask : (H, W) bool
        Target mask ``M`` (an empty mask makes every point Far).
    points : (P, 2) float
        Points XY in pixels (grid points, i.e. cell centres, in practice).
    n, r, step : grid size, offset radius, step as a fraction of a cell (the ``grid_offset`` codec's).
    bands : BandConfig, optional

    Returns
    -------
    PointLabels

    Examples
    --------
    >>> m = np.zeros((40, 40), bool); m[10:30, 10:30] = True
    >>> lab = label_points(m, [[20, 20], [8, 20], [2, 2], [35, 5]], n=8, r=1, step=0.5)
    >>> [BAND_NAMES[b] for b in lab.band], lab.offsets[1].tolist()
    (['inside', 'ring', 'far', 'far'], [1, 0])
    """
    m = as_mask(mask, name="target mask")
    return _label_points(m, points, n, r, step, bands or BandConfig(), mask_to_box(m))


def _label_points(m: np.ndarray, points, n: int, r: int, step: float, bands: BandConfig, box, pix=None) -> PointLabels:
    """:func:`label_points` for a validated mask whose tight box XYXY (or ``None`` if empty) is known;
    ``pix`` = the points' pixel (rows, cols) when already known (grid points)."""
    import cv2

    if r < 0 or not 0 < step <= 1 or n < 1:
        raise ConfigError(f"need n >= 1, r >= 0 and 0 < step <= 1; got n={n}, r={r}, step={step}")
    h, w = m.shape
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    npts = len(pts)
    band = np.full(npts, FAR, dtype=np.int8)
    offsets = np.zeros((npts, 2), dtype=np.int64)
    if npts == 0 or box is None:
        return PointLabels(band, offsets, np.ones(npts, dtype=bool))
    bx0, by0, bx1, by1 = (int(v) for v in box)
    ix_in, iy_in = _half_widths(n, (h, w), r, step, bands.inside_steps)
    ix_far, iy_far = _half_widths(n, (h, w), r, step, bands.far_steps)
    ix_mv, iy_mv = _half_widths(n, (h, w), r, step, None)
    px = max(ix_far, ix_mv) + 2
    py = max(iy_far, iy_mv) + 2
    y0, y1 = max(by0 - py, 0), min(by1 + py, h)
    x0, x1 = max(bx0 - px, 0), min(bx1 + px, w)

    if pix is None:
        pr = np.minimum(np.floor(np.clip(pts[:, 1], 0, h)).astype(np.int64), h - 1)
        pc = np.minimum(np.floor(np.clip(pts[:, 0], 0, w)).astype(np.int64), w - 1)
    else:
        pr, pc = pix
    near = np.flatnonzero((pr >= y0) & (pr < y1) & (pc >= x0) & (pc < x1))  # others are Far
    if near.size == 0:
        return PointLabels(band, offsets, np.ones(npts, dtype=bool))
    crop = np.ascontiguousarray(m[y0:y1, x0:x1]).view(np.uint8)
    lr, lc = pr[near] - y0, pc[near] - x0

    # 1. Inside: erosion; the replicated border makes the image edge count as mask where the edge pixel
    #    is mask (a move clipped at the edge lands on that pixel); inner crop edges are background anyway
    if ix_in == 0 and iy_in == 0:
        inside = crop[lr, lc].astype(bool)
    else:
        er = cv2.erode(crop, np.ones((2 * iy_in + 1, 2 * ix_in + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
        inside = er[lr, lc].astype(bool)
    band[near[inside]] = INSIDE

    # 2. Ring: one-step hit test, deepest landing by the distance transform
    rest = near[~inside]
    if rest.size:
        depth = cv2.distanceTransform(crop, cv2.DIST_L2, 3)
        mv = _moves_by_length(r)  # argmax takes the first maximum: ties go to the shorter move
        rr, cc = landing_pixels(pts[rest], mv, n, step, (h, w))  # (P', M) image pixels
        okr = (rr >= y0) & (rr < y1) & (cc >= x0) & (cc < x1)
        d = np.where(okr, depth[np.clip(rr - y0, 0, y1 - y0 - 1), np.clip(cc - x0, 0, x1 - x0 - 1)], 0.0)
        best = np.argmax(d, axis=1)
        hit = d[np.arange(len(rest)), best] > 0
        band[rest[hit]] = RING
        offsets[rest[hit]] = mv[best[hit]]
        # 3. Far / 4. Hard-Delete
        miss = rest[~hit]
        if miss.size:
            if ix_far == 0 and iy_far == 0:
                dil = crop
            else:
                dil = cv2.dilate(crop, np.ones((2 * iy_far + 1, 2 * ix_far + 1), np.uint8))
            close = dil[pr[miss] - y0, pc[miss] - x0].astype(bool)
            band[miss[close]] = HARD_DELETE
    deleted = (band == FAR) | (band == HARD_DELETE)
    return PointLabels(band, offsets, deleted)


def label_grid(mask, n: int, r: int, step: float, bands: BandConfig | None = None) -> PointLabels:
    """:func:`label_points` for all ``n * n`` grid points (row-major cell order)."""
    m = as_mask(mask, name="target mask")
    pts, rows, cols = _grid(n, m.shape)
    return _label_points(m, pts, n, r, step, bands or BandConfig(), mask_to_box(m), (rows, cols))


@functools.lru_cache(maxsize=64)
def _grid(n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid points ``(n*n, 2)`` XY and their pixel rows / columns (cached, read-only)."""

    pts = grid_points(n, size)
    rows, cols = grid_pixels(n, size)
    for a in (pts, rows, cols):
        a.setflags(write=False)
    return pts, rows, cols
