"""``raster``: the weight-free default decoder — a geometry's region rasterised, no image needed.

What each kind of answer becomes:

* ``mask`` → itself.
* ``polygons`` → filled outer rings minus holes (:func:`getok.ops.polygons.polygons_to_mask`).
* ``cells`` → the union of the cells' squares (every pixel whose centre lies in a listed cell).
  ``<DELETE>``-d cells are dropped. A cell with an offset ``(dx, dy)`` contributes **its square shifted by
  the offset**, i.e. by ``(dx, dy) * offset_step`` cells (GETok: half a cell per step), clipped to the
  image. So an offset moves a cell's share of the mask with its point; with all offsets ``(0, 0)`` the
  result equals the plain cell raster.
* ``box`` → the pixels whose centre lies in the box.
* points only (a point answer) → an **empty** mask: points name no region. Use ``sam`` or ``point_masks``
  to grow a region from points.

The pixels are :func:`getok.ops.raster.raster_mask`'s (the one rasteriser; its fast cell-space and crop
paths serve the rewards).
"""

from __future__ import annotations

import numpy as np

from ..backends._common import check_size, image_size
from ..geometry import Geometry
from ..ops.raster import raster_mask
from .base import register_decoder

__all__ = ["RasterDecoder", "raster_mask"]


@register_decoder("raster")
class RasterDecoder:
    """Weight-free decoder: :func:`raster_mask` of each geometry (the module docstring says what each
    answer becomes). ``set_image`` only records the expected size; the image itself is not needed.

    Examples
    --------
    >>> from getok.decoding import get_decoder
    >>> dec = get_decoder("raster")
    >>> dec.set_image(None, size=(4, 6))
    >>> dec.decode(Geometry(size=(4, 6), box=[0, 0, 3, 2])).sum()
    np.int64(6)
    """

    name = "raster"

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None

    def settings(self) -> dict:
        return {"name": self.name}

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        self._size = image_size(image, size)

    def decode(self, geometry: Geometry) -> np.ndarray:
        check_size(geometry, self._size)
        return raster_mask(geometry)

