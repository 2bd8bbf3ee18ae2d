"""``grid``: GETok grid tokens, one token per cell of an ``n x n`` grid.

Spec: ``grid:n=32``.

* point: the cell that contains it (decodes to the cell centre);
* box: two cells, top-left and bottom-right, quantised to the nearest cell edges (so a box decodes to
  whole cells and the full-image box is exact);
* mask: the set of cells, row-major (from ``geometry.cells`` — the greedy builder's choice — or, without
  them, the cells whose grid point lies in the mask);
* polyline: the cell sequence (consecutive repeats dropped).

Examples
--------
>>> import numpy as np
>>> from getok import Geometry, get_codec
>>> c = get_codec("grid:n=4")
>>> m = np.zeros((40, 40), bool); m[0:20, 0:10] = True
>>> c.encode([Geometry(size=(40, 40), mask=m)])
'<g4_r0_c0><g4_r1_c0>'
>>> c.encode([Geometry(size=(40, 40), box=[0, 0, 20, 40])], kind="box")
'<g4_r0_c0><g4_r3_c1>'
>>> c.decode("<g4_r0_c0><g4_r1_c0>", (40, 40))[0].cells.tolist()
[[0, 0], [0, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..conventions import denormalize_points, normalize_box, normalize_points
from ..errors import DecodeError
from ..geometry import Geometry
from ..ops.grid import mask_to_cells, sort_cells
from ._shapes import geometry_box, geometry_points, region_mask
from ._vertices import GridVertices
from .base import AnswerShape, Codec, register_codec
from .polygon import _token_text
from .token_names import check_vocab

__all__ = ["GridCodec"]


@dataclass(frozen=True)
class GridConfig:
    n: int = 32

    def __post_init__(self):
        check_vocab("grid", n=self.n)  # n >= 1, n * n <= MAX_NEW_TOKENS


def geometry_cells(g: Geometry, n: int) -> np.ndarray:
    """The cells of a geometry on an ``n`` grid: its own cells if on that grid, else from its region."""
    if g.cells is not None and g.grid_n == n and len(g.cells):
        return sort_cells(g.cells, n)
    cells = mask_to_cells(region_mask(g), n)
    if len(cells) == 0:
        raise DecodeError("empty geometry has no cells", "empty")
    return cells


@register_codec
class GridCodec(Codec):
    name = "grid"
    Config = GridConfig

    def __init__(self, **params):
        super().__init__(**params)
        self.vertices = self._make_vertices()

    def _make_vertices(self):
        return GridVertices(self.config.n)

    @property
    def n(self) -> int:
        return self.config.n

    def new_tokens(self):
        return self.vertices.new_tokens()

    def token_text(self, token):
        return _token_text(self.vertices, token)

    def encode_cells(self, cells) -> str:
        """Cells ``(K, 2)`` → tokens, in the given order."""
        return GridVertices.format_cells(self.vertices, cells)

    def encode_one(self, g: Geometry, kind: str) -> str:
        n = self.n
        if kind == "mask":
            return self.encode_cells(geometry_cells(g, n))
        if kind == "box":
            b = normalize_box(geometry_box(g), g.size) * n
            tl = np.clip(np.rint(b[:2]), 0, n - 1).astype(np.int64)
            br = np.clip(np.rint(b[2:]) - 1, 0, n - 1).astype(np.int64)
            thin = br < tl  # thinner than a cell on that axis: the one cell holding the box centre
            mid = np.clip(np.floor((b[:2] + b[2:]) / 2), 0, n - 1).astype(np.int64)
            tl = np.where(thin, mid, tl)
            br = np.where(thin, mid, br)
            return self.encode_cells(np.stack([tl, br]))
        pts = normalize_points(geometry_points(g), g.size)
        if kind == "point":
            return self.vertices.format(pts[:1])
        snapped = self.vertices.cells(pts)
        keep = np.ones(len(snapped), dtype=bool)
        keep[1:] = np.any(snapped[1:] != snapped[:-1], axis=1)
        return self.encode_cells(snapped[keep])

    def answer_shape(self, kind: str, refine: bool = False) -> AnswerShape:
        self._refusing_refinement(kind, refine)
        return AnswerShape("cell", self.INSTANCE_UNITS[kind], n=self.config.n, box=kind == "box")

    def decode_one(self, line: str, size, kind: str) -> Geometry:
        n = self.n
        if kind == "mask":
            cells = GridVertices.parse_cells(self.vertices, line)  # valid cells of the n-grid by construction
            return Geometry._from_cells(size, cells, n)
        if kind == "box":
            cells = GridVertices.parse_cells(self.vertices, line)
            if len(cells) != 2:
                raise DecodeError(f"a box needs 2 cells, got {len(cells)}", "bad_count")
            if (cells[0] > cells[1]).any():
                raise DecodeError("box corner cells out of order", "bad_box")
            b = np.concatenate([cells[0], cells[1] + 1]) / n
            return Geometry(size=size, box=denormalize_points(b.reshape(2, 2), size).reshape(4), cells=cells, grid_n=n)
        single = kind == "point"
        pts = self.vertices.parse(line, single=single)
        return Geometry(size=size, points=denormalize_points(pts, size))
