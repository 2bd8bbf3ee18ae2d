"""Geometry → normalised shapes and back, shared by the codecs.

``geometry_rings`` picks the best available region description of a geometry (mask, then polygons,
then cells, then box) and returns simplified rings; ``encode_rings`` / ``decode_rings`` write and read
the polygons of one object in a vertex format.
"""

from __future__ import annotations

import numpy as np

from ..conventions import denormalize_points, normalize_points
from ..errors import DecodeError, GeometryError
from ..geometry import Geometry
from ..ops.boxes import mask_to_box
from ..ops.polygons import mask_to_polygons, signed_area
from ..ops.raster import raster_mask
from ._vertices import Vertices


def region_mask(g: Geometry) -> np.ndarray:
    """The region of a geometry as a mask: its mask, else its polygons, cells or box rasterised
    (:func:`~getok.ops.raster.raster_mask`)."""
    if g.mask is None and not g.polygons and g.cells is None and g.box is None:
        raise GeometryError(f"{g!r} describes no region (a mask answer needs a mask, polygons, cells or box)")
    return raster_mask(g)


def geometry_box(g: Geometry) -> np.ndarray:
    """The box of a geometry: its box, else the box of its region."""
    if g.box is not None:
        return g.box
    if g.points is not None and len(g.points) and g.mask is None and not g.polygons and g.cells is None:
        p = g.points
        return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])
    b = mask_to_box(region_mask(g))
    if b is None:
        raise GeometryError("empty geometry has no box")
    return b


def geometry_points(g: Geometry) -> np.ndarray:
    """Points of a geometry: its points, else the box centre / region's interior point."""
    if g.points is not None and len(g.points):
        return g.points
    if g.cells is not None and len(g.cells):
        return g.refined_points() if (g.offsets is not None or g.deleted is not None) else g.cell_centers()
    if g.box is not None:
        b = g.box
        return np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]])
    m = region_mask(g)
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    if not m[i, j]:
        raise GeometryError("empty geometry has no points")
    return np.array([[j + 0.5, i + 0.5]])


def geometry_rings(g: Geometry, eps: float, holes: bool, max_polygons: int = 0):
    """Outer and hole rings (pixels) describing a geometry's region, simplified with ``eps``."""
    if g.mask is None and g.polygons:  # already polygons (e.g. decoded): keep them as they are
        return list(g.polygons), list(g.holes) if holes else []
    m = region_mask(g)
    outers, hole_rings = mask_to_polygons(
        m, eps, holes=holes, max_polygons=max_polygons if max_polygons > 0 else None
    )
    if not outers:
        raise GeometryError("empty mask cannot be written as polygons")
    return outers, hole_rings


def _snap_ring(ring_norm: np.ndarray, vertices: Vertices) -> np.ndarray:
    s = vertices.snap(ring_norm)
    keep = np.ones(len(s), dtype=bool)
    keep[1:] = np.any(s[1:] != s[:-1], axis=1)
    s = s[keep]
    if len(s) > 1 and np.all(s[0] == s[-1]):
        s = s[:-1]
    return s


def encode_rings(outers, hole_rings, size, vertices: Vertices) -> str:
    """Rings in pixels → one line: rings in the vertex format joined by ``vertices.sep``.

    Vertices that collapse onto their predecessor after quantisation are dropped (a ring may end up
    with fewer than 3 vertices: the decoder reads it as a degenerate ring)."""
    parts = []
    for ring in outers:
        s = _snap_ring(normalize_points(ring, size), vertices)
        if signed_area(s) < 0:  # quantisation flipped a thin outer ring: keep it an outer ring
            s = s[::-1]
        parts.append(vertices.format(s))
    for ring in hole_rings:
        s = _snap_ring(normalize_points(ring, size), vertices)
        if len(s) >= 3 and signed_area(s) < 0:  # a hole that collapsed or flipped encloses nothing
            parts.append(vertices.format(s))
    return vertices.sep.join(parts)


def decode_rings(line: str, size, vertices: Vertices, holes: bool) -> Geometry:
    """One line of rings → a Geometry with ``polygons`` (and ``holes``); degenerate rings padded to 3."""
    chunks = [c for c in line.split(vertices.sep.strip())]
    if any(not c.strip() for c in chunks):
        raise DecodeError("empty polygon between separators", "bad_structure")
    return rings_geometry([vertices.parse(chunk.strip()) for chunk in chunks], size, holes)


def rings_geometry(rings, size, holes: bool) -> Geometry:
    """Normalised rings ``(K_i, 2)`` → a Geometry: degenerate rings padded to 3 points; with ``holes``, a
    clockwise ring after the first is a hole, else every ring is an outer polygon (wound counter-clockwise)."""
    outers, hole_rings = [], []
    for k, pts in enumerate(rings):
        if len(pts) < 3:
            pts = np.concatenate([pts, np.repeat(pts[-1:], 3 - len(pts), axis=0)])
        ring = denormalize_points(pts, size)
        if holes and k > 0 and signed_area(ring) < 0:
            hole_rings.append(ring)
        else:
            outers.append(ring if signed_area(ring) >= 0 else ring[::-1].copy())
    if not outers:
        raise DecodeError("no outer polygon", "bad_structure")
    return Geometry(size=size, polygons=tuple(outers), holes=tuple(hole_rings))

