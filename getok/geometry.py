"""``Geometry``: one object's spatial answer in pixel space.

A geometry carries whatever representations of one object are known: a box, points, polygons, grid
cells with optional offsets and deletions, and a mask. Codecs encode geometries into answer text and
decode text back into geometries; mask decoders turn geometries into masks. Conventions
(:mod:`getok.conventions`): sizes ``(H, W)``, points XY, boxes XYXY, pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .conventions import as_size
from .errors import GeometryError
from .ops.grid import apply_offsets, cell_centers

__all__ = ["Geometry", "KINDS"]

#: What an answer describes. ``point``: ``points`` (one or more); ``box``: ``box``; ``mask``: the
#: object's region (``mask``, ``polygons`` or ``cells``); ``polyline``: an ordered ``points`` sequence.
KINDS = ("point", "box", "mask", "polyline")

_TOL = 1e-6


def _points(arr, name: str, size: tuple[int, int], *, allow_outside: bool = False) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 2)
    if a.ndim != 2 or a.shape[1] != 2:
        raise GeometryError(f"{name} must have shape (K, 2) with columns x, y; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GeometryError(f"{name} contains NaN or inf")
    if not allow_outside:
        h, w = size
        if (a[:, 0] < -_TOL).any() or (a[:, 0] > w + _TOL).any() or (a[:, 1] < -_TOL).any() or (
            a[:, 1] > h + _TOL
        ).any():
            raise GeometryError(f"{name} has points outside the image of size (H, W)={size}")
    return a


@dataclass(eq=False)
class Geometry:
    """One object in pixel space; every field but ``size`` is optional.

    Parameters
    ----------
    size : (H, W)
        Image size in pixels.
    box : (4,) float, optional
        Box ``x1, y1, x2, y2`` in pixels, ``x1 <= x2``, ``y1 <= y2``, inside the image.
    points : (K, 2) float, optional
        Points ``(x, y)`` in pixels (for a refined grid answer: the refined, non-deleted points).
    polygons : tuple of (V, 2) float
        Outer rings, XY pixels, clockwise on screen (y down), ``V >= 3``.
    holes : tuple of (V, 2) float
        Hole rings, counter-clockwise on screen.
    cells : (K, 2) int, optional
        Grid cells ``(cx, cy)``, ``0 <= cx, cy < grid_n``.
    grid_n : int, optional
        Grid size ``n`` (required with ``cells``).
    offsets : (K, 2) int, optional
        Per-cell offsets ``(dx, dy)`` in units of ``offset_step`` cells, aligned with ``cells``.
    deleted : (K,) bool, optional
        Per-cell ``<DELETE>`` flags, aligned with ``cells``.
    offset_step : float, optional
        Offset step as a fraction of a cell (required with ``offsets``).
    mask : (H, W) bool, optional
    label : str, optional
        Free text (category, expression) carried along; never encoded.

    Examples
    --------
    >>> g = Geometry(size=(100, 200), box=[10, 20, 50, 60])
    >>> g.box.tolist()
    [10.0, 20.0, 50.0, 60.0]
    >>> Geometry(size=(100, 200), box=[50, 20, 10, 60])
    Traceback (most recent call last):
    ...
    getok.errors.GeometryError: box must satisfy x1 <= x2 and y1 <= y2, got [50.0, 20.0, 10.0, 60.0]
    """

    size: tuple[int, int]
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    polygons: tuple[np.ndarray, ...] = ()
    holes: tuple[np.ndarray, ...] = ()
    cells: np.ndarray | None = None
    grid_n: int | None = None
    offsets: np.ndarray | None = None
    deleted: np.ndarray | None = None
    offset_step: float | None = None
    mask: np.ndarray | None = None
    label: str | None = field(default=None)

    def __post_init__(self) -> None:
        self.size = as_size(self.size)
        h, w = self.size
        if self.box is not None:
            b = np.asarray(self.box, dtype=np.float64).reshape(-1)
            if b.shape != (4,) or not np.all(np.isfinite(b)):
                raise GeometryError(f"box must be 4 finite numbers x1, y1, x2, y2; got {self.box!r}")
            if b[0] > b[2] + _TOL or b[1] > b[3] + _TOL:
                raise GeometryError(f"box must satisfy x1 <= x2 and y1 <= y2, got {b.tolist()}")
            if b[0] < -_TOL or b[1] < -_TOL or b[2] > w + _TOL or b[3] > h + _TOL:
                raise GeometryError(f"box {b.tolist()} lies outside the image of size (H, W)={self.size}")
            self.box = b
        if self.points is not None:
            self.points = _points(self.points, "points", self.size)
        self.polygons = tuple(self._ring(p, "polygons") for p in self.polygons)
        self.holes = tuple(self._ring(p, "holes") for p in self.holes)
        if self.cells is not None:
            if self.grid_n is None or int(self.grid_n) <= 0:
                raise GeometryError("cells need a positive grid_n")
            self.grid_n = int(self.grid_n)
            c = np.asarray(self.cells)
            if c.size == 0:
                c = c.reshape(0, 2)
            if c.ndim != 2 or c.shape[1] != 2:
                raise GeometryError(f"cells must have shape (K, 2) with columns cx, cy; got {c.shape}")
            if c.size and (not np.issubdtype(c.dtype, np.integer)):
                if not np.all(np.equal(np.mod(c, 1), 0)):
                    raise GeometryError("cells must be integers (cx, cy)")
            c = c.astype(np.int64)
            if c.size and ((c < 0).any() or (c >= self.grid_n).any()):
                raise GeometryError(f"cells must satisfy 0 <= cx, cy < n={self.grid_n}")
            self.cells = c
            k = len(c)
            if self.offsets is not None:
                o = np.asarray(self.offsets).astype(np.int64).reshape(-1, 2)
                if len(o) != k:
                    raise GeometryError(f"offsets ({len(o)}) must align with cells ({k})")
                if self.offset_step is None or not float(self.offset_step) > 0:
                    raise GeometryError("offsets need a positive offset_step (fraction of a cell)")
                self.offset_step = float(self.offset_step)
                self.offsets = o
            if self.deleted is not None:
                d = np.asarray(self.deleted, dtype=bool).reshape(-1)
                if len(d) != k:
                    raise GeometryError(f"deleted ({len(d)}) must align with cells ({k})")
                self.deleted = d
        elif self.offsets is not None or self.deleted is not None:
            raise GeometryError("offsets and deleted need cells to refer to")
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.shape != self.size:
                raise GeometryError(f"mask shape {m.shape} differs from size (H, W)={self.size}")
            if m.dtype != bool:
                vals = np.unique(m)
                if not np.isin(vals, [0, 1]).all():
                    raise GeometryError(f"mask must be binary; found values {vals[:5].tolist()}")
                m = m.astype(bool)
            self.mask = m

    def _ring(self, ring, name: str) -> np.ndarray:
        r = _points(ring, name, self.size)
        if len(r) < 3:
            raise GeometryError(f"each ring in {name} needs at least 3 vertices, got {len(r)}")
        return r

    # ------------------------------------------------------------------ views
    @property
    def is_empty(self) -> bool:
        """True when the geometry carries no spatial content at all."""
        return (
            self.box is None
            and (self.points is None or len(self.points) == 0)
            and not self.polygons
            and (self.cells is None or len(self.cells) == 0)
            and (self.mask is None or not self.mask.any())
        )

    def cell_centers(self) -> np.ndarray:
        """Centres of ``cells`` in pixels, ``(K, 2)`` XY."""
        if self.cells is None:
            raise GeometryError("geometry has no cells")

        return cell_centers(self.cells, self.grid_n, self.size)

    def refined_points(self) -> np.ndarray:
        """Cell centres moved by their offsets, deleted cells dropped, clipped to the image; ``(K', 2)``."""
        if self.cells is None:
            raise GeometryError("geometry has no cells")

        return apply_offsets(
            self.cells, self.grid_n, self.size, self.offsets, self.offset_step, self.deleted
        )

    def replace(self, **changes) -> Geometry:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def _from_cells(cls, size, cells: np.ndarray, grid_n: int) -> Geometry:
        """A cells-only geometry from a codec's parser, whose ``cells`` are already a valid ``(K, 2)`` int64
        array on the ``grid_n`` grid: built *without* validation (the decode hot path). Not for user input."""
        proto = cls.__dict__.get("_cells_proto")
        if proto is None:
            proto = cls(size=(1, 1))
            type.__setattr__(cls, "_cells_proto", proto)
        return proto._derive(size=as_size(size), cells=cells, grid_n=int(grid_n))

    def _derive(self, **changes) -> Geometry:
        """A copy with ``changes`` applied *without* validation, for library code whose new fields are
        computed from already validated ones (hot paths such as reward scoring). Not for user input."""
        g = object.__new__(Geometry)
        g.__dict__.update(self.__dict__)
        g.__dict__.update(changes)
        return g

    def __repr__(self) -> str:
        parts = [f"size={self.size}"]
        if self.box is not None:
            parts.append(f"box={np.round(self.box, 2).tolist()}")
        if self.points is not None:
            parts.append(f"points[{len(self.points)}]")
        if self.polygons:
            parts.append(f"polygons[{len(self.polygons)}]")
        if self.holes:
            parts.append(f"holes[{len(self.holes)}]")
        if self.cells is not None:
            parts.append(f"cells[{len(self.cells)}]@n={self.grid_n}")
        if self.offsets is not None:
            parts.append("offsets")
        if self.deleted is not None:
            parts.append(f"deleted={int(self.deleted.sum())}")
        if self.mask is not None:
            parts.append(f"mask(area={int(self.mask.sum())})")
        if self.label:
            parts.append(f"label={self.label!r}")
        return f"Geometry({', '.join(parts)})"
