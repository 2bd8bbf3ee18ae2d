"""Geometry helpers (numpy / scipy / OpenCV): masks, boxes, polygons, grid cells, the quantiser."""

from .grid import (
    apply_offsets,
    cell_centers,
    cell_index,
    cell_size,
    cells_to_mask,
    grid_points,
    index_to_cells,
    mask_to_cells,
    points_to_cells,
    points_to_cells_offsets,
    sort_cells,
)
from .masks import as_mask, box_iou, box_to_mask, mask_iou, mask_to_box, rle_decode, rle_encode
from .polygons import is_clockwise, mask_to_polygons, orient, perimeter, polygons_to_mask, signed_area
from .quantize import dequantize, quantize

__all__ = [
    "apply_offsets",
    "as_mask",
    "box_iou",
    "box_to_mask",
    "cell_centers",
    "cell_index",
    "cell_size",
    "cells_to_mask",
    "dequantize",
    "grid_points",
    "index_to_cells",
    "is_clockwise",
    "mask_iou",
    "mask_to_box",
    "mask_to_cells",
    "mask_to_polygons",
    "orient",
    "perimeter",
    "points_to_cells",
    "points_to_cells_offsets",
    "polygons_to_mask",
    "quantize",
    "rle_decode",
    "rle_encode",
    "signed_area",
    "sort_cells",
]
