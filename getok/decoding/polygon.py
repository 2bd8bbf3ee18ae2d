"""``polygon``: polygon answers (SimpleSeg) rasterised directly, optionally refined by SAM.

* ``polygon`` — outer rings filled, holes cleared (:func:`getok.ops.polygons.polygons_to_mask`); other
  answers (cells, boxes, masks) fall back to the ``raster`` decoder.
* ``polygon:refine=sam,checkpoint=...,model_type=vit_b`` (or ``get_decoder("polygon", refine="sam",
  model=sam)``) — each outer ring prompts SAM once, jointly with the ring's box and ``interior_points``
  points well inside it (holes excluded, :func:`getok.decoding.sam_prompts.interior_points`); the masks of
  an object's rings are unioned. Where SAM returns an empty mask for a ring, that ring's raster is kept
  (``fallback=True``), so refinement never loses a part outright. ``refine=sam2`` / ``refine=sam3`` use
  SAM 2 / SAM 3.

Settings other than ``refine``, ``fallback`` and ``interior_points`` are passed to the refining decoder.
"""

from __future__ import annotations

import numpy as np

from ..backends._common import check_size, image_size
from ..errors import ConfigError, DataError
from ..geometry import Geometry
from .base import get_decoder, register_decoder
from .raster import raster_mask
from .sam_prompts import polygon_prompts, ring_regions

__all__ = ["PolygonDecoder", "REFINERS"]

REFINERS = ("none", "sam", "sam2", "sam3")


@register_decoder("polygon")
class PolygonDecoder:
    """Polygon answers → masks, by rasterisation or SAM refinement (see the module docstring).

    Parameters
    ----------
    refine : {"none", "sam", "sam2", "sam3"} or None
    fallback : bool
        Keep a ring's raster where the refiner returns an empty mask.
    interior_points : int
        Interior points per ring in the refinement prompt.
    refiner : MaskDecoder, optional
        A SAM / SAM2 / SAM3 decoder already built (instead of ``refine`` + its settings).
    **refine_kwargs
        Settings of the refining decoder (``checkpoint``, ``model_type``, ``model``, ``device``, ...).
    """

    name = "polygon"

    def __init__(self, refine: str | None = "none", fallback: bool = True, interior_points: int = 1,
                 refiner=None, **refine_kwargs) -> None:
        refine = "none" if refine is None else str(refine)
        if refine not in REFINERS:
            raise ConfigError(f"refine must be one of {REFINERS}, got {refine!r}")
        if int(interior_points) < 1:
            raise ConfigError(f"interior_points must be >= 1, got {interior_points}")
        if refiner is None and refine != "none":
            refiner = get_decoder(refine, interior_points=interior_points, **refine_kwargs)
        elif refine_kwargs:
            raise ConfigError(f"settings {sorted(refine_kwargs)} need refine=sam, sam2 or sam3")
        if refiner is not None and not callable(getattr(refiner, "decode_prompt", None)):
            raise ConfigError(f"refiner {refiner!r} cannot take prompts (needs decode_prompt, like SamDecoder)")
        self.refine = refine if refiner is None else getattr(refiner, "name", refine)
        self.refiner = refiner
        self.fallback = bool(fallback)
        self.interior_points = int(interior_points)
        self._size: tuple[int, int] | None = None

    def settings(self) -> dict:
        out = {"name": self.name, "refine": self.refine, "fallback": self.fallback,
               "interior_points": self.interior_points}
        if self.refiner is not None:
            out["refiner"] = self.refiner.settings()
        return out

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        self._size = image_size(image, size)
        if self.refiner is not None:
            if image is None:
                raise DataError("polygon refinement with SAM needs the image")
            self.refiner.set_image(image, size=size, key=key)

    def decode(self, geometry: Geometry) -> np.ndarray:
        check_size(geometry, self._size)
        g = geometry
        if self.refiner is None or not g.polygons or g.mask is not None:
            return raster_mask(g)
        out = np.zeros(g.size, dtype=bool)
        regions = ring_regions(g)
        for region, prompt in zip(regions, polygon_prompts(g, self.interior_points, per_polygon=True)):
            m = self.refiner.decode_prompt(prompt, mode="joint")
            if self.fallback and not m.any():
                m = region
            out |= m
        return out
