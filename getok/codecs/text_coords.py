"""``text_coords``: coordinates as plain text numbers (no new tokens).

Spec: ``text_coords:style=norm3,eps=0.01,holes=false``.

* ``style=norm3`` — normalised to ``[0, 1]`` with 3 decimals (Shikra / SimpleSeg);
  ``style=int1000`` — Qwen2-VL integers in ``[0, 1000)``.
* point ``[0.512, 0.250]``; box ``[x1, y1, x2, y2]``; polyline ``[[x, y], [x, y], ...]``;
  mask: the outline as polygons (SimpleSeg's recipe, ``eps`` relative to the perimeter), several
  polygons separated by ``"; "``.

Examples
--------
>>> from getok import Geometry, get_codec
>>> c = get_codec("text_coords")
>>> c.encode([Geometry(size=(100, 200), box=[20, 10, 100, 50])], kind="box")
'[0.100, 0.100, 0.500, 0.500]'
>>> get_codec("text_coords:style=int1000").encode([Geometry(size=(100, 200), points=[[50, 25]])], kind="point")
'[250, 250]'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..conventions import denormalize_box, denormalize_points, normalize_box, normalize_points
from ..errors import ConfigError, DecodeError
from ..geometry import Geometry
from ._shapes import decode_rings, encode_rings, geometry_box, geometry_points, geometry_rings
from ._vertices import TextVertices
from .base import Codec, register_codec

__all__ = ["TextCoordsCodec"]


@dataclass(frozen=True)
class TextCoordsConfig:
    style: str = "norm3"
    eps: float = 0.01
    holes: bool = False

    def __post_init__(self):
        if self.style not in TextVertices.STYLES:
            raise ConfigError(f"text_coords.style must be one of {TextVertices.STYLES}, got {self.style!r}")
        if not 0 <= self.eps < 1:
            raise ConfigError(f"text_coords.eps must be in [0, 1), got {self.eps}")


@register_codec
class TextCoordsCodec(Codec):
    name = "text_coords"
    Config = TextCoordsConfig

    def __init__(self, **params):
        super().__init__(**params)
        self.vertices = TextVertices(self.config.style)

    def encode_one(self, g: Geometry, kind: str) -> str:
        v = self.vertices
        if kind == "point":
            return v.format(normalize_points(geometry_points(g)[:1], g.size), single=True)
        if kind == "box":
            return v.format_numbers(normalize_box(geometry_box(g), g.size))
        if kind == "polyline":
            return v.format(normalize_points(geometry_points(g), g.size))
        outers, holes = geometry_rings(g, self.config.eps, self.config.holes)
        return encode_rings(outers, holes, g.size, v)

    def decode_one(self, line: str, size, kind: str) -> Geometry:
        v = self.vertices
        if kind == "point":
            return Geometry(size=size, points=denormalize_points(v.parse(line, single=True), size))
        if kind == "box":
            b = v.parse_numbers(line, 4)
            if b[0] > b[2] or b[1] > b[3]:
                raise DecodeError(f"box corners out of order: {line[:40]!r}", "bad_box")
            return Geometry(size=size, box=denormalize_box(b, size))
        if kind == "polyline":
            return Geometry(size=size, points=denormalize_points(v.parse(line), size))
        return decode_rings(line, size, v, self.config.holes)


