"""Prompts from geometries: which points and box a promptable decoder (SAM, SAM2) is given.

Pure functions, no model: a geometry's spatial content becomes positive points ``(K, 2)`` XY pixels and
an optional box XYXY pixels, following one fixed order of sources:

1. ``cells`` → the refined points (:meth:`Geometry.refined_points`): cell centres moved by their offsets,
   ``<DELETE>``-d cells dropped. A grid answer without offsets gives the plain cell centres.
2. ``points`` (a point answer, or refined points decoded without cells) → those points.
3. ``polygons`` → for each outer ring its box and ``k`` interior points (see :func:`interior_points`).
4. ``box`` → the box alone (combined with points when a geometry carries both).

A geometry that already carries a ``mask`` needs no prompt; decoders return that mask as it is.
Coordinates stay in getok's continuous pixel convention here; the SAM-specific shift to pixel indices
happens in :func:`to_sam_points`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GeometryError
from ..geometry import Geometry
from ..ops.boxes import mask_to_box
from ..ops.polygons import polygons_to_mask

__all__ = [
    "Prompt",
    "geometry_prompts",
    "polygon_prompts",
    "interior_points",
    "ring_regions",
    "to_sam_points",
    "to_sam_box",
]


@dataclass(frozen=True, eq=False)
class Prompt:
    """One prompt for a promptable segmenter.

    Attributes
    ----------
    points : (K, 2) float
        Positive points, XY pixels (continuous: pixel ``(i, j)`` has its centre at ``(j + .5, i + .5)``).
    box : (4,) float or None
        Box XYXY pixels.
    source : str
        Where the prompt came from: ``"cells"``, ``"points"``, ``"polygons"``, ``"box"`` or ``"none"``.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    box: np.ndarray | None = None
    source: str = "none"

    @property
    def is_empty(self) -> bool:
        """True when there is neither a point nor a box (e.g. every cell was deleted)."""
        return len(self.points) == 0 and self.box is None

    @property
    def labels(self) -> np.ndarray:
        """``(K,)`` int labels, all 1 (positive points)."""
        return np.ones(len(self.points), dtype=np.int64)


def interior_points(region: np.ndarray, k: int = 1) -> np.ndarray:
    """``k`` points well inside a region: the deepest pixel, then farthest-point samples of the deep part.

    The first point is the pixel farthest from the background (largest Euclidean distance transform, a
    discrete pole of inaccessibility), so it lies inside even a concave or ring-shaped region. Further
    points are picked by farthest-point sampling among pixels at least half as deep as the deepest one.

    Parameters
    ----------
    region : (H, W) bool
    k : int
        Number of points (>= 1); fewer are returned when the region has fewer pixels.

    Returns
    -------
    (k', 2) float
        XY pixel centres (continuous convention), ``k' <= k``; ``(0, 2)`` for an empty region.

    Examples
    --------
    >>> m = np.zeros((7, 9), bool); m[1:6, 1:8] = True
    >>> interior_points(m).tolist()
    [[4.5, 3.5]]
    """
    from scipy.ndimage import distance_transform_edt

    if k < 1:
        raise GeometryError(f"k must be >= 1, got {k}")
    m = np.asarray(region, dtype=bool)
    if m.ndim != 2:
        raise GeometryError(f"region must be (H, W), got shape {m.shape}")
    box = mask_to_box(m)
    if box is None:
        return np.zeros((0, 2))
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = np.pad(m[y1:y2, x1:x2], 1)  # pad so that the image border counts as background
    dist = distance_transform_edt(crop)[1:-1, 1:-1]
    ys, xs = np.nonzero(m[y1:y2, x1:x2])
    depth = dist[ys, xs]
    # the deepest pixel; ties (a rectangle's middle row) go to the one nearest the region's centroid
    top = np.flatnonzero(depth >= depth.max() - 1e-9)
    cen = np.array([xs.mean(), ys.mean()])
    first = int(top[np.argmin((xs[top] - cen[0]) ** 2 + (ys[top] - cen[1]) ** 2)])
    chosen = [first]
    if k > 1:
        deep = np.flatnonzero(depth >= 0.5 * depth[first])
        pts = np.stack([xs[deep], ys[deep]], axis=1).astype(np.float64)
        d = np.linalg.norm(pts - np.array([xs[first], ys[first]]), axis=1)
        for _ in range(min(k, len(deep)) - 1):
            j = int(np.argmax(d))
            if d[j] <= 0:
                break
            chosen.append(int(deep[j]))
            d = np.minimum(d, np.linalg.norm(pts - pts[j], axis=1))
    sel = np.asarray(chosen)
    return np.stack([xs[sel] + x1 + 0.5, ys[sel] + y1 + 0.5], axis=1).astype(np.float64)


def polygon_prompts(geometry: Geometry, k: int = 1, *, per_polygon: bool = True) -> list[Prompt]:
    """Prompts for a polygon answer: per outer ring (or for all rings at once) its box + interior points.

    Holes are subtracted before the interior points are chosen, so a point never lands in a hole.

    Parameters
    ----------
    geometry : Geometry
        With ``polygons`` (and optional ``holes``).
    k : int
        Interior points per prompt.
    per_polygon : bool
        One prompt per outer ring (several parts of one object are prompted separately, their masks
        unioned by the caller); ``False`` gives one prompt with the box of all rings and ``k`` points
        per ring.

    Returns
    -------
    list of Prompt
        Empty when the geometry has no polygons.
    """
    g = geometry
    if not g.polygons:
        return []
    prompts: list[Prompt] = []
    regions = ring_regions(g)
    if per_polygon:
        for ring, region in zip(g.polygons, regions):
            prompts.append(Prompt(points=interior_points(region, k), box=_ring_box(ring, g.size), source="polygons"))
        return prompts
    pts = [interior_points(r, k) for r in regions]
    allpts = np.concatenate(pts, axis=0) if pts else np.zeros((0, 2))
    box = _ring_box(np.concatenate(g.polygons, axis=0), g.size)
    return [Prompt(points=allpts, box=box, source="polygons")]


def ring_regions(geometry: Geometry) -> list[np.ndarray]:
    """Per outer ring, its pixels in the geometry's full raster (holes cleared): ``[(H, W) bool]``.

    Each ring's fill is intersected with the raster of all rings and holes, so a hole only clears the
    ring it lies in, whatever hole rule :func:`~getok.ops.polygons.polygons_to_mask` applies.
    """
    g = geometry
    full = polygons_to_mask(g.polygons, g.size, g.holes)
    return [polygons_to_mask([ring], g.size) & full for ring in g.polygons]


def _ring_box(ring: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    lo = r.min(axis=0)
    hi = r.max(axis=0)
    return np.array([max(lo[0], 0.0), max(lo[1], 0.0), min(hi[0], w), min(hi[1], h)], dtype=np.float64)


def geometry_prompts(geometry: Geometry, *, interior_k: int = 1, per_polygon: bool = True) -> list[Prompt]:
    """The prompts of a geometry (see the module docstring for the order of sources).

    Returns one prompt, except for polygon answers with ``per_polygon=True`` (one per outer ring).
    A geometry with nothing to prompt (no cells left after deletions, no points, no box, no polygons)
    gives ``[Prompt(source="none")]``, which decoders turn into an empty mask.

    Examples
    --------
    >>> g = Geometry(size=(40, 40), cells=[[0, 0], [3, 3]], grid_n=4, deleted=[False, True])
    >>> p, = geometry_prompts(g)
    >>> p.source, p.points.tolist()
    ('cells', [[5.0, 5.0]])
    """
    if not isinstance(geometry, Geometry):
        raise GeometryError(f"expected a Geometry, got {type(geometry).__name__}")
    g = geometry
    box = None if g.box is None else np.asarray(g.box, dtype=np.float64)
    if g.cells is not None:
        return [Prompt(points=g.refined_points(), box=box, source="cells")]
    if g.points is not None and len(g.points):
        return [Prompt(points=np.asarray(g.points, dtype=np.float64), box=box, source="points")]
    if g.polygons:
        return polygon_prompts(g, interior_k, per_polygon=per_polygon)
    if box is not None:
        return [Prompt(box=box, source="box")]
    return [Prompt()]


def to_sam_points(points_xy: np.ndarray) -> np.ndarray:
    """getok continuous pixel coordinates → SAM's pixel-index coordinates (SAM adds 0.5 itself).

    SAM's prompt encoders shift every point by +0.5 ("to the centre of the pixel"), i.e. they read a
    coordinate as a pixel index; getok's coordinates are continuous (pixel centre at ``j + 0.5``).

    >>> to_sam_points(np.array([[0.5, 10.5]])).tolist()
    [[0.0, 10.0]]
    """
    return np.asarray(points_xy, dtype=np.float64).reshape(-1, 2) - 0.5


def to_sam_box(box_xyxy: np.ndarray) -> np.ndarray:
    """getok box (continuous, ``x2`` exclusive) → SAM box of the first and last covered pixel indices.

    >>> to_sam_box(np.array([2.0, 1.0, 4.0, 3.0])).tolist()
    [2.0, 1.0, 3.0, 2.0]
    """
    b = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
    x1, y1 = b[0], b[1]
    return np.array([x1, y1, max(x1, b[2] - 1.0), max(y1, b[3] - 1.0)], dtype=np.float64)
