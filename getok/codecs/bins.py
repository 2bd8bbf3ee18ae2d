"""``bins``: 1-D location tokens ``<loc_NNNN>`` (Pix2Seq / Florence-2 style), x then y per point.

Spec: ``bins:bins=1000,eps=0.01,holes=false``. Each axis is quantised to ``bins`` levels (bin centres).
point: 2 tokens; box: 4 tokens (x1 y1 x2 y2); polyline: 2 per vertex; mask: the outline as polygons,
2 tokens per vertex, polygons separated by ``;``.

Examples
--------
>>> from getok import Geometry, get_codec
>>> get_codec("bins:bins=100").encode([Geometry(size=(100, 200), box=[20, 10, 100, 50])], kind="box")
'<loc_0010><loc_0010><loc_0050><loc_0050>'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..conventions import denormalize_points, normalize_points
from ..errors import ConfigError, DecodeError
from ..geometry import Geometry
from ._shapes import decode_rings, encode_rings, geometry_box, geometry_points, geometry_rings
from ._vertices import BinVertices
from .base import AnswerShape, Codec, register_codec
from .polygon import _token_text
from .token_names import check_vocab

__all__ = ["BinsCodec"]


@dataclass(frozen=True)
class BinsConfig:
    bins: int = 1000
    eps: float = 0.01
    holes: bool = False

    def __post_init__(self):
        check_vocab("bins", bins=self.bins)  # 2 <= bins <= MAX_BINS
        if not 0 <= self.eps < 1:
            raise ConfigError(f"bins.eps must be in [0, 1), got {self.eps}")


@register_codec
class BinsCodec(Codec):
    name = "bins"
    Config = BinsConfig

    def __init__(self, **params):
        super().__init__(**params)
        self.vertices = BinVertices(self.config.bins)

    def new_tokens(self):
        return self.vertices.new_tokens()

    def token_text(self, token):
        return _token_text(self.vertices, token)

    def encode_one(self, g: Geometry, kind: str) -> str:
        v = self.vertices
        if kind == "point":
            return v.format(normalize_points(geometry_points(g)[:1], g.size))
        if kind == "box":
            return v.format(normalize_points(geometry_box(g).reshape(2, 2), g.size))
        if kind == "polyline":
            return v.format(normalize_points(geometry_points(g), g.size))
        outers, holes = geometry_rings(g, self.config.eps, self.config.holes)
        return encode_rings(outers, holes, g.size, v)

    def answer_shape(self, kind: str, refine: bool = False) -> AnswerShape:
        self._refusing_refinement(kind, refine)
        inst = "rings" if kind == "mask" else self.INSTANCE_UNITS[kind]
        return AnswerShape("bin2", inst, bins=self.config.bins, box=kind == "box")

    def decode_one(self, line: str, size, kind: str) -> Geometry:
        v = self.vertices
        if kind == "point":
            return Geometry(size=size, points=denormalize_points(v.parse(line, single=True), size))
        if kind == "box":
            pts = v.parse(line)
            if len(pts) != 2:
                raise DecodeError(f"a box needs 4 bins, got {2 * len(pts)}", "bad_count")
            b = denormalize_points(pts, size).reshape(4)
            if b[0] > b[2] or b[1] > b[3]:
                raise DecodeError("box corners out of order", "bad_box")
            return Geometry(size=size, box=b)
        if kind == "polyline":
            return Geometry(size=size, points=denormalize_points(v.parse(line), size))
        return decode_rings(line, size, v, self.config.holes)


