"""Point masks: one mask per grid point (:class:`PointMaskStack`), from SAM, SAM 2, a weight-free
over-segmentation or the exact regions of a procedural scene, built by name with :func:`get_proposer`.

Importing this package does not import torch; the SAM proposers load it when they are built.
"""

from . import exact, sam, sam2, superpixel  # noqa: F401  (register)
from .base import MaskProposer, PointMaskStack, StackBuilder, grid_pixels
from .exact import ExactProposer
from .registry import get_proposer, list_proposers, register_proposer
from .sam import SamProposer
from .sam2 import Sam2Proposer
from .superpixel import SuperpixelConfig, SuperpixelProposer

__all__ = [
    "MaskProposer",
    "PointMaskStack",
    "StackBuilder",
    "grid_pixels",
    "ExactProposer",
    "SamProposer",
    "Sam2Proposer",
    "SuperpixelConfig",
    "SuperpixelProposer",
    "get_proposer",
    "list_proposers",
    "register_proposer",
]
