"""Plain rasterisation of a geometry (the weight-free path): the region it describes, as a mask."""

from __future__ import annotations

import numpy as np

from .boxes import box_to_mask
from .grid import cells_to_mask
from .polygons import polygons_to_mask

__all__ = ["rasterize"]


def rasterize(geometry, prefer: tuple[str, ...] = ("mask", "polygons", "cells", "box")) -> np.ndarray | None:
    """The region a geometry describes, as an ``(H, W)`` bool mask, or ``None`` if it names none.

    The first available of ``prefer`` is used: its mask; its polygons (minus holes); its grid cells (the
    union of the cells' pixels; deleted cells dropped); its box. Points alone describe no region.
    """
    g = geometry
    for what in prefer:
        if what == "mask" and g.mask is not None:
            return g.mask
        if what == "polygons" and g.polygons:
            return polygons_to_mask(g.polygons, g.size, g.holes)
        if what == "cells" and g.cells is not None:
            cells = g.cells if g.deleted is None else g.cells[~g.deleted]
            return cells_to_mask(cells, g.grid_n, g.size)
        if what == "box" and g.box is not None:
            return box_to_mask(g.box, g.size)
    return None
