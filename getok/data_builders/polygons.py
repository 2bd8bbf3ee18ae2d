"""Polygon targets (SimpleSeg mode): a mask → simplified polygons → a ``polygon`` codec answer.

Contours come from :func:`getok.ops.mask_to_polygons` (border following, Douglas–Peucker with tolerance
``eps`` relative to each contour's perimeter, outer rings clockwise on screen, several polygons per
object, optional holes). Tracing runs on the mask's bounding box (plus a one-pixel margin) and the rings
are shifted back, which gives the same rings as tracing the whole image, faster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..codecs import get_codec
from ..codecs.polygon import PolygonCodec
from ..errors import ConfigError, GeometryError
from ..geometry import Geometry
from ..ops.boxes import mask_to_box
from ..ops.masks import as_mask, rle_encode
from ..ops.polygons import mask_to_polygons
from ..samples import IMAGE_PLACEHOLDER, Sample, Turn

__all__ = ["PolygonTargetConfig", "trace_polygons", "polygon_geometry", "polygon_sample"]


@dataclass(frozen=True)
class PolygonTargetConfig:
    """How a mask becomes polygons.

    Attributes
    ----------
    eps : float
        Douglas–Peucker tolerance as a fraction of each contour's perimeter (SimpleSeg: 0.01; 0 keeps
        every boundary vertex).
    holes : bool
        Also trace holes.
    min_area : float
        Drop outer rings smaller than this (pixels), unless that drops them all.
    max_polygons : int, optional
        Keep only the largest outer rings.
    """

    eps: float = 0.01
    holes: bool = False
    min_area: float = 0.0
    max_polygons: int | None = None

    def __post_init__(self):
        if not 0 <= self.eps < 1:  # NaN fails too
            raise ConfigError(f"polygons.eps must be in [0, 1), got {self.eps}")
        if not 0 <= self.min_area < float("inf"):  # NaN fails too
            raise ConfigError(f"polygons.min_area must be a finite number >= 0, got {self.min_area}")
        if self.max_polygons is not None and self.max_polygons < 1:
            raise ConfigError(f"polygons.max_polygons must be >= 1 or None, got {self.max_polygons}")


def trace_polygons(mask, cfg: PolygonTargetConfig | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outer rings and hole rings ``(V, 2)`` XY pixels of a non-empty mask (traced on its box).

    >>> m = np.zeros((60, 80), bool); m[20:40, 30:50] = True
    >>> outers, holes = trace_polygons(m)
    >>> len(outers), np.allclose(outers[0], mask_to_polygons(m)[0][0])
    (1, True)
    """
    cfg = cfg or PolygonTargetConfig()
    m = as_mask(mask, name="target mask")
    box = mask_to_box(m)
    if box is None:
        raise GeometryError("target mask is empty: an empty mask has no polygons")
    h, w = m.shape
    y0, y1 = max(int(box[1]) - 1, 0), min(int(box[3]) + 1, h)
    x0, x1 = max(int(box[0]) - 1, 0), min(int(box[2]) + 1, w)
    outers, holes = mask_to_polygons(
        m[y0:y1, x0:x1], cfg.eps, holes=cfg.holes, min_area=cfg.min_area, max_polygons=cfg.max_polygons
    )
    shift = np.array([x0, y0], dtype=np.float64)
    return [r + shift for r in outers], [r + shift for r in holes]


def polygon_geometry(mask, cfg: PolygonTargetConfig | None = None, label: str | None = None) -> Geometry:
    """The mask as a :class:`~getok.Geometry` with ``polygons`` (and ``holes``) and its box.

    The geometry carries no ``mask``, so a ``polygon`` codec writes exactly these rings (it re-traces
    only geometries that have a mask).
    """
    m = as_mask(mask, name="target mask")
    outers, holes = trace_polygons(m, cfg)
    return Geometry(size=m.shape, polygons=tuple(outers), holes=tuple(holes), box=mask_to_box(m), label=label)


DEFAULT_ASK = IMAGE_PLACEHOLDER + "Outline {query} with polygons."


def polygon_sample(
    mask,
    codec="polygon",
    *,
    sample_id: str,
    image_id: str,
    image: str,
    query: str,
    cfg: PolygonTargetConfig | None = None,
    ask: str = DEFAULT_ASK,
    meta: dict | None = None,
) -> Sample:
    """A one-turn polygon :class:`~getok.samples.Sample` (``task="polygon"``, ``kind="mask"``).

    Parameters
    ----------
    mask : (H, W) bool
    codec : str or PolygonCodec
        A ``polygon`` spec (``"polygon:vertex=text,eps=0.01"``: SimpleSeg) or codec.
    cfg : PolygonTargetConfig, optional
        Default: the codec's ``eps``, ``holes`` and ``max_polygons``.
    ask : str
        Prompt template (``{query}`` filled in).
    """

    c = get_codec(codec) if isinstance(codec, str) else codec
    if not isinstance(c, PolygonCodec):
        raise ConfigError(f"polygon samples need a polygon codec, got {getattr(c, 'spec', c)!r}")
    if cfg is None:
        cc = c.config
        cfg = PolygonTargetConfig(eps=cc.eps, holes=cc.holes, max_polygons=cc.max_polygons or None)
    m = as_mask(mask, name="target mask")
    g = polygon_geometry(m, cfg, label=query)
    answer = c.encode([g], kind="mask")

    truth = {"size": list(m.shape), "masks": [rle_encode(m, g.box)], "boxes": [[float(v) for v in g.box]]}
    return Sample(
        sample_id=sample_id,
        image_id=image_id,
        image=image,
        size=m.shape,
        task="polygon",
        kind="mask",
        codec=c.spec,
        turns=[Turn(ask.format(query=query), answer)],
        truth=truth,
        meta={"query": query, "polygons_config": asdict(cfg), "n_polygons": len(g.polygons), **(meta or {})},
    )
