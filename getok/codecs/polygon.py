"""``polygon``: object outlines as polygons (SimpleSeg), with text or spatial-token vertices.

Spec: ``polygon:vertex=text,eps=0.01,holes=false,bins=1000,n=32,r=1,step=0.5,max_polygons=0``.

* ``vertex=text`` — SimpleSeg: ``[[x, y], ...]`` normalised, 3 decimals; ``int1000`` — Qwen2-VL integers.
* ``vertex=bins`` — two ``<loc_NNNN>`` tokens per vertex (``bins`` per axis).
* ``vertex=grid`` — one cell token per vertex (``n x n`` grid).
* ``vertex=grid_offset`` — a cell and an offset token per vertex (effective resolution ``n / step``).

Several polygons of one object are separated by ``;`` (``"; "`` for text); with ``holes=true`` holes
follow the outer rings and turn counter-clockwise. ``eps`` is the Douglas–Peucker tolerance relative to
each contour's perimeter. Kinds: ``mask`` (the outline) and ``polyline`` (an open vertex sequence).

Examples
--------
>>> import numpy as np
>>> from getok import Geometry, get_codec
>>> m = np.zeros((100, 100), bool); m[20:60, 10:50] = True
>>> get_codec("polygon").encode([Geometry(size=(100, 100), mask=m)])
'[[0.100, 0.200], [0.500, 0.200], [0.500, 0.600], [0.100, 0.600]]'
>>> get_codec("polygon:vertex=grid,n=16").encode([Geometry(size=(100, 100), mask=m)])
'<g16_r03_c01><g16_r03_c08><g16_r09_c08><g16_r09_c01>'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..conventions import denormalize_points, normalize_points
from ..errors import ConfigError
from ..geometry import Geometry
from ._shapes import decode_rings, encode_rings, geometry_points, geometry_rings
from ._vertices import BinVertices, GridOffsetVertices, GridVertices, TextVertices, Vertices
from .base import AnswerShape, Codec, register_codec
from .token_names import check_vocab, parse_bin_token, parse_grid_token, parse_offset_token

__all__ = ["PolygonCodec", "make_vertices"]

VERTEX_FORMATS = ("text", "int1000", "bins", "grid", "grid_offset")


def make_vertices(vertex: str, bins: int = 1000, n: int = 32, r: int = 1, step: float = 0.5) -> Vertices:
    """The vertex format named ``vertex``."""
    if vertex == "text":
        return TextVertices("norm3")
    if vertex == "int1000":
        return TextVertices("int1000")
    if vertex == "bins":
        return BinVertices(bins)
    if vertex == "grid":
        return GridVertices(n)
    if vertex == "grid_offset":
        return GridOffsetVertices(n, r, step)
    raise ConfigError(f"vertex must be one of {VERTEX_FORMATS}, got {vertex!r}")


@dataclass(frozen=True)
class PolygonConfig:
    vertex: str = "text"
    eps: float = 0.01
    holes: bool = False
    bins: int = 1000
    n: int = 32
    r: int = 1
    step: float = 0.5
    max_polygons: int = 0

    def __post_init__(self):
        if self.vertex not in VERTEX_FORMATS:
            raise ConfigError(f"polygon.vertex must be one of {VERTEX_FORMATS}, got {self.vertex!r}")
        if not 0 <= self.eps < 1:
            raise ConfigError(f"polygon.eps must be in [0, 1), got {self.eps}")
        if not 0 < self.step <= 1 or self.max_polygons < 0:
            raise ConfigError(f"polygon: invalid step/max_polygons in {self}")
        # every parameter in range (unused ones too: they are part of the spec), then the tokens the vertex
        # format adds within MAX_NEW_TOKENS
        check_vocab("polygon", n=self.n, r=self.r, bins=self.bins, count=False)
        used = {"bins": {"bins": self.bins}, "grid": {"n": self.n}, "grid_offset": {"n": self.n, "r": self.r}}
        check_vocab("polygon", **used.get(self.vertex, {}))


@register_codec
class PolygonCodec(Codec):
    name = "polygon"
    kinds = ("mask", "polyline")
    Config = PolygonConfig

    def __init__(self, **params):
        super().__init__(**params)
        c = self.config
        self.vertices = make_vertices(c.vertex, c.bins, c.n, c.r, c.step)

    def new_tokens(self):
        return self.vertices.new_tokens()

    def token_text(self, token):
        return _token_text(self.vertices, token)

    def encode_one(self, g: Geometry, kind: str) -> str:
        if kind == "polyline":
            pts = normalize_points(geometry_points(g), g.size)
            return self.vertices.format(pts)
        c = self.config
        outers, holes = geometry_rings(g, c.eps, c.holes, c.max_polygons)
        return encode_rings(outers, holes, g.size, self.vertices)

    def answer_shape(self, kind: str, refine: bool = False) -> AnswerShape:
        self._refusing_refinement(kind, refine)
        c = self.config
        if c.vertex in ("text", "int1000"):
            raise ConfigError(
                f"constrained decoding covers token vertices only; {self.spec!r} writes text numbers "
                "(see getok.eval.constrained for what is covered)"
            )
        unit = {"grid": "cell", "grid_offset": "cell_off", "bins": "bin2"}[c.vertex]
        return AnswerShape(unit, "rings" if kind == "mask" else "seq", n=c.n, r=c.r, step=c.step, bins=c.bins)

    def decode_one(self, line: str, size, kind: str) -> Geometry:
        if kind == "polyline":
            return Geometry(size=size, points=denormalize_points(self.vertices.parse(line), size))
        return decode_rings(line, size, self.vertices, self.config.holes)


def _token_text(vertices: Vertices, token: str) -> str | None:
    """Text meaning of a vertex token: the coordinate(s) it stands for."""

    if isinstance(vertices, GridVertices):
        p = parse_grid_token(token)
        if p is not None:
            n, cx, cy = p
            return f"({(cx + 0.5) / n:.3f}, {(cy + 0.5) / n:.3f})"
    if isinstance(vertices, GridOffsetVertices):
        o = parse_offset_token(token)
        if o is not None:
            s = vertices.step / vertices.n
            return f"move ({o[0] * s:+.3f}, {o[1] * s:+.3f})"
    if isinstance(vertices, BinVertices):
        i = parse_bin_token(token, vertices.bins)
        if i is not None:
            return f"{(i + 0.5) / vertices.bins:.3f}"
    return None


