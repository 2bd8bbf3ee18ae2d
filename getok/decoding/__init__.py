"""Mask decoders: a decoded geometry → a mask (``set_image`` once, ``decode`` many times).

Registered by name (:func:`get_decoder`): ``raster`` (weight-free rasterisation, the default),
``point_masks`` (union of the predicted cells' point masks, weight-free with a weight-free proposer; also
registered under its former name ``proposals``),
``sam`` (segment-anything), ``sam2`` (SAM 2 through transformers), ``sam3`` (SAM 3's tracker through
transformers) and ``polygon`` (polygons rasterised, optionally refined by SAM). torch and segment-anything
load only when a SAM decoder is built.
"""

from . import point_masks, polygon, raster, sam, sam2, sam3  # noqa: F401  (register the decoders)
from .base import MaskDecoder, canonical_decoder_spec, get_decoder, list_decoders, register_decoder
from .combine import decode_instances, decode_union
from .point_masks import PointMaskDecoder, PointProposer
from .polygon import PolygonDecoder
from .raster import RasterDecoder, raster_mask
from .sam import SamDecoder, build_tiny_sam, load_sam
from .sam2 import Sam2Decoder, build_tiny_sam2
from .sam3 import Sam3Decoder, build_tiny_sam3
from .sam_prompts import Prompt, geometry_prompts, interior_points
from .scenes import SceneExactDecoder

__all__ = [
    "MaskDecoder",
    "register_decoder",
    "get_decoder",
    "list_decoders",
    "canonical_decoder_spec",
    "decode_instances",
    "decode_union",
    "RasterDecoder",
    "raster_mask",
    "PointMaskDecoder",
    "PointProposer",
    "SamDecoder",
    "Sam2Decoder",
    "Sam3Decoder",
    "SceneExactDecoder",
    "PolygonDecoder",
    "Prompt",
    "geometry_prompts",
    "interior_points",
    "build_tiny_sam",
    "build_tiny_sam2",
    "build_tiny_sam3",
    "load_sam",
]
