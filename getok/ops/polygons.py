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


def _square_corners(ring: np.ndarray, min_run: float = 2.0) -> np.ndarray:
    """Marching squares cuts every pixel corner diagonally. Where a cut joins two axis-aligned runs of at
    least ``min_run`` pixels (a real corner of a box-like shape, not a step of a curve), put the corner
    back: the pixel corner between the cut's ends (the integer x and the integer y of the two)."""
    ring = _drop_collinear(ring)
    prev, nxt, nxt2 = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0), np.roll(ring, -2, axis=0)
    d_in = ring - prev  # run arriving at ring[i]
    d_cut = nxt - ring  # the candidate cut ring[i] -> ring[i+1]
    d_out = nxt2 - nxt  # run leaving ring[i+1]
    cut = (np.abs(np.abs(d_cut[:, 0]) - 0.5) < 1e-6) & (np.abs(np.abs(d_cut[:, 1]) - 0.5) < 1e-6)
    axis_in = (np.abs(d_in) < 1e-9).any(axis=1) & (np.abs(d_in).max(axis=1) >= min_run)
    axis_out = (np.abs(d_out) < 1e-9).any(axis=1) & (np.abs(d_out).max(axis=1) >= min_run)
    fix = cut & axis_in & axis_out
    if not fix.any():
        return ring
    x_int = np.abs(ring[:, 0] - np.rint(ring[:, 0])) < 1e-6
    y_int = np.abs(ring[:, 1] - np.rint(ring[:, 1])) < 1e-6
    corner = np.stack([np.where(x_int, ring[:, 0], nxt[:, 0]), np.where(y_int, ring[:, 1], nxt[:, 1])], axis=1)
    out = ring.copy()
    out[fix] = corner[fix]  # the cut's start moves to the corner ...
    drop = np.roll(fix, 1)  # ... and its end (the next vertex) goes
    return _drop_collinear(out[~drop])


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """Remove vertices that lie on the straight line through their neighbours (exactly)."""
    prev, nxt = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
    cross = (ring[:, 0] - prev[:, 0]) * (nxt[:, 1] - ring[:, 1]) - (ring[:, 1] - prev[:, 1]) * (nxt[:, 0] - ring[:, 0])
    keep = np.abs(cross) > 1e-12
    return ring[keep] if keep.sum() >= 3 else ring


def perimeter(ring) -> float:
    """Length of the closed ring in pixels."""
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    return float(np.linalg.norm(r - np.roll(r, -1, axis=0), axis=1).sum())


def _simplify(ring: np.ndarray, eps_rel: float) -> np.ndarray:
    """Douglas–Peucker on a closed ring with tolerance ``eps_rel * perimeter`` (OpenCV ``approxPolyDP``)."""
    import cv2

    if eps_rel <= 0 or len(ring) <= 3:
        return ring
    c = ring.astype(np.float32).reshape(-1, 1, 2)
    out = cv2.approxPolyDP(c, eps_rel * cv2.arcLength(c, True), True).reshape(-1, 2).astype(np.float64)
    return out if len(out) >= 3 and abs(signed_area(out)) > 0 else ring


def mask_to_polygons(
    mask,
    eps_rel: float = 0.01,
    *,
    holes: bool = False,
    min_area: float = 0.0,
    max_polygons: int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Trace a mask into simplified polygons.

    The outline is traced on the pixel boundary (marching squares over pixel centres at level 0.5,
    scikit-image ``find_contours`` with 8-connected foreground; a corner cut between two straight runs
    becomes the pixel corner again): it runs half way between inside and outside pixel centres, so
    rasterising it (pixel centres inside, :func:`polygons_to_mask`) gives the mask back exactly, and
    simplification errs to both sides instead of only cutting into the object (as a trace through
    boundary pixel centres, OpenCV's ``findContours``, does). Each ring is then simplified by Douglas–Peucker
    (``approxPolyDP``) with tolerance ``eps_rel * perimeter`` (SimpleSeg's recipe with 0.01).
    Connected components give several polygons; with ``holes=True`` holes are returned too (islands
    inside holes come back as outer rings; :func:`polygons_to_mask` resolves nesting by parity).

    Parameters
    ----------
    mask : (H, W) bool
    eps_rel : float
        Simplification tolerance as a fraction of each ring's perimeter; 0 keeps every vertex.
    holes : bool
        Also return the holes (counter-clockwise rings).
    min_area : float
        Drop outer rings whose area (pixels) is below this, unless that would drop them all.
    max_polygons : int, optional
        Keep only the largest outer rings.

    Returns
    -------
    outers, holes : lists of (V, 2) float arrays
        XY pixels; outer rings clockwise on screen, holes counter-clockwise; each starts at its top-most,
        then left-most vertex; largest outer first.

    Examples
    --------
    >>> m = np.zeros((8, 8), bool); m[2:6, 1:5] = True
    >>> outers, _ = mask_to_polygons(m)
    >>> outers[0].tolist()
    [[1.0, 2.0], [5.0, 2.0], [5.0, 6.0], [1.0, 6.0]]
    >>> bool((polygons_to_mask(outers, m.shape) == m).all())
    True
    """
    from skimage.measure import find_contours

    if eps_rel < 0:
        raise GeometryError(f"eps_rel must be >= 0, got {eps_rel}")
    m = as_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return [], []
    cols = np.flatnonzero(m.any(axis=0))
    r0, c0 = rows[0], cols[0]
    crop = np.pad(m[r0 : rows[-1] + 1, c0 : cols[-1] + 1], 1).astype(np.uint8)
    outers: list[np.ndarray] = []
    hole_rings: list[np.ndarray] = []
    # positive_orientation="high" winds rings around foreground with a negative signed area in (x, y)
    # (counter-clockwise on screen); holes come out the other way round
    for c in find_contours(crop, 0.5, fully_connected="high", positive_orientation="high"):
        ring = c[:-1, ::-1] + [c0 - 1 + 0.5, r0 - 1 + 0.5]  # (row, col) of padded crop → XY pixels
        ring = _square_corners(ring)
        is_hole = signed_area(ring) > 0
        if is_hole and not holes:
            continue
        ring = _simplify(ring, eps_rel)
        if is_hole:
            hole_rings.append(orient(ring, clockwise=False))
        else:
            outers.append(orient(ring, clockwise=True))
    outers.sort(key=lambda r: -abs(signed_area(r)))
    if min_area > 0:
        kept = [r for r in outers if abs(signed_area(r)) >= min_area]
        outers = kept or outers[:1]
    if max_polygons is not None:
        outers = outers[: max(1, int(max_polygons))]
    return outers, hole_rings


_EPS = 1e-9


def _crossings(rings, h: int):
    """Scanline crossings of closed rings with the pixel-centre rows ``y = row + 0.5``.

    Returns ``(ring_id, row, x)`` for crossings (half-open rule per edge, so every ring crosses each row
    an even number of times) and ``(row, x0, x1)`` boundary segments: horizontal edges lying on a centre
    row, and vertices on a centre row (which the half-open rule can miss at local extrema).
    """
    ids, rows, xs = [], [], []
    seg_r, seg_a, seg_b = [], [], []
    for k, ring in enumerate(rings):
        r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        x1, y1 = r[:, 0], r[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        sloped = y1 != y2
        ylo, yhi = np.minimum(y1, y2), np.maximum(y1, y2)
        r0 = np.ceil(ylo - 0.5).astype(np.int64)
        r1 = np.ceil(yhi - 0.5).astype(np.int64) - 1
        cnt = np.where(sloped, np.maximum(r1 - r0 + 1, 0), 0)
        if cnt.sum():
            e = np.repeat(np.arange(len(r)), cnt)
            start = np.repeat(np.cumsum(cnt) - cnt, cnt)
            row = r0[e] + (np.arange(len(e)) - start)
            yc = row + 0.5
            x = x1[e] + (yc - y1[e]) * (x2[e] - x1[e]) / (y2[e] - y1[e])
            ids.append(np.full(len(e), k))
            rows.append(row)
            xs.append(x)
        on_row = np.abs((y1 - 0.5) - np.rint(y1 - 0.5)) <= _EPS
        flat = ~sloped & on_row
        seg_r.append(np.rint(y1[flat] - 0.5).astype(np.int64))
        seg_a.append(np.minimum(x1, x2)[flat])
        seg_b.append(np.maximum(x1, x2)[flat])
        seg_r.append(np.rint(y1[on_row] - 0.5).astype(np.int64))
        seg_a.append(x1[on_row])
        seg_b.append(x1[on_row])
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return (
        (cat(ids, np.int64), cat(rows, np.int64), cat(xs, np.float64)),
        (cat(seg_r, np.int64), cat(seg_a, np.float64), cat(seg_b, np.float64)),
    )


def _paint(shape, rows, xa, xb, inclusive: bool = True) -> np.ndarray:
    """Set, per row, the pixels whose centre ``c + 0.5`` lies in ``[xa, xb]`` (or ``(xa, xb)``)."""
    h, w = shape
    out = np.zeros((h, w), dtype=bool)
    if inclusive:
        c0 = np.ceil(xa - 0.5 - _EPS).astype(np.int64)
        c1 = np.floor(xb - 0.5 + _EPS).astype(np.int64)
    else:
        c0 = np.floor(xa - 0.5 + _EPS).astype(np.int64) + 1
        c1 = np.ceil(xb - 0.5 - _EPS).astype(np.int64) - 1
    c0 = np.maximum(c0, 0)
    c1 = np.minimum(c1, w - 1)
    ok = (rows >= 0) & (rows < h) & (c0 <= c1)
    rows, c0, c1 = rows[ok], c0[ok], c1[ok]
    if len(rows) == 0:
        return out
    r_lo, c_lo = rows.min(), c0.min()
    r_hi, c_hi = rows.max(), c1.max()
    diff = np.zeros((r_hi - r_lo + 1, c_hi - c_lo + 2), dtype=np.int32)  # only the bounding box
    np.add.at(diff, (rows - r_lo, c0 - c_lo), 1)
    np.add.at(diff, (rows - r_lo, c1 + 1 - c_lo), -1)
    out[r_lo : r_hi + 1, c_lo : c_hi + 1] = np.cumsum(diff, axis=1)[:, :-1] > 0
    return out


def _scan_fill(rings, shape, strict: bool = False, joint: bool = False) -> np.ndarray:
    """Pixels whose centre is inside (or on, unless ``strict``) the union of rings (even-odd per ring),
    or, with ``joint``, inside an odd number of rings (nested outer / hole / island rings)."""
    (ids, rows, xs), (sr, sa, sb) = _crossings(rings, shape[0])
    if joint:
        ids = np.zeros_like(ids)
    order = np.lexsort((xs, rows, ids))
    rows, xs = rows[order], xs[order]
    fill = _paint(shape, rows[0::2], xs[0::2], xs[1::2], inclusive=not strict)
    crossing_on_centre = np.abs((xs - 0.5) - np.rint(xs - 0.5)) <= _EPS
    boundary = _paint(
        shape,
        np.concatenate([sr, rows[crossing_on_centre]]),
        np.concatenate([sa, xs[crossing_on_centre]]),
        np.concatenate([sb, xs[crossing_on_centre]]),
    )
    return fill & ~boundary if strict else fill | boundary


def polygons_to_mask(polygons, size: tuple[int, int], holes=()) -> np.ndarray:
    """Rasterise polygons into an ``(H, W)`` bool mask: exact, boundary-inclusive.

    A pixel is set when its centre lies on any ring, or inside the union of the outer rings (no holes),
    or — with holes — inside an odd number of rings (even-odd over outer rings and holes together, so an
    island inside a hole is kept). A vectorised scanline fill over pixel-centre rows; OpenCV's
    ``fillPoly`` rounds edges that fall on half pixels outward, which made COCO polygons a pixel too
    large on two sides, hence our own.

    >>> int(polygons_to_mask([[[10, 10], [20, 10], [20, 30], [10, 30]]], (40, 40)).sum())  # 10 x 20 pixels
    200
    """
    shape = as_size(size)
    rings = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in polygons]
    flat = [r for r in rings if len(r) and abs(signed_area(r)) < 1e-9]
    rings = [r for r in rings if len(r) >= 3 and abs(signed_area(r)) >= 1e-9]
    hole_list = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in holes]
    hole_list = [r for r in hole_list if len(r) >= 3 and abs(signed_area(r)) >= 1e-9]
    if not rings:
        out = np.zeros(shape, dtype=bool)
    elif hole_list:
        out = _scan_fill(rings + hole_list, shape, joint=True)
    else:
        out = _scan_fill(rings, shape)
    for r in flat:  # a ring collapsed to a point or a segment: the pixels it passes through
        _trace(out, r)
    return out


def _trace(out: np.ndarray, ring: np.ndarray) -> None:
    h, w = out.shape
    a, b = ring, np.roll(ring, -1, axis=0)
    n = np.maximum(2, np.ceil(np.abs(b - a).max(axis=1) * 2).astype(np.int64) + 1)
    t = np.concatenate([np.linspace(0, 1, k) for k in n])
    seg = np.repeat(np.arange(len(a)), n)
    pts = a[seg] + (b[seg] - a[seg]) * t[:, None]
    out[np.clip(np.floor(pts[:, 1]).astype(np.int64), 0, h - 1), np.clip(np.floor(pts[:, 0]).astype(np.int64), 0, w - 1)] = True
