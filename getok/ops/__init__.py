"""Geometry maths (numpy / scipy / OpenCV), each idea implemented once: masks (:mod:`.masks`: IoU, counts,
RLE), boxes (:mod:`.boxes`: from masks, IoU, L1), points on pixels (:mod:`.points`), Hungarian matching
(:mod:`.matching`), refinement moves and the per-point refine score (:mod:`.refine`), polygons, grid cells,
the quantiser and the rasteriser."""

from .boxes import box_iou, box_iou_matrix, box_iou_pairs, box_to_mask, mask_to_box, masks_to_boxes
from .grid import (
    apply_offsets,
    cell_centers,
    cell_index,
    cell_size,
    grid_points,
    index_to_cells,
    mask_to_cells,
    points_to_cells,
    points_to_cells_offsets,
    sort_cells,
)
from .masks import as_mask, mask_iou, mask_iou_matrix, rle_decode, rle_encode
from .matching import Matching, match
from .points import points_in_mask
from .polygons import is_clockwise, mask_to_polygons, orient, perimeter, polygons_to_mask, signed_area
from .quantize import dequantize, quantize
from .raster import cells_to_mask, raster_mask

__all__ = [
    "raster_mask",
    "points_in_mask",
    "match",
    "Matching",
    "mask_iou_matrix",
    "masks_to_boxes",
    "box_iou_pairs",
    "box_iou_matrix",
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
