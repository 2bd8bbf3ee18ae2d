"""Several instances per answer: decode each, or their union (what referring segmentation scores)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..conventions import as_size
from ..geometry import Geometry
from .base import MaskDecoder

__all__ = ["decode_instances", "decode_union"]


def decode_instances(decoder: MaskDecoder, geometries: Sequence[Geometry], size: tuple[int, int]) -> np.ndarray:
    """Masks of all instances of one answer, ``(K, H, W)`` bool (``K = 0`` for a ``none`` answer).

    The decoder must already hold the image (``decoder.set_image(...)``).
    """
    h, w = as_size(size)
    if not geometries:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack([np.asarray(decoder.decode(g), dtype=bool) for g in geometries], axis=0)


def decode_union(decoder: MaskDecoder, geometries: Sequence[Geometry], size: tuple[int, int]) -> np.ndarray:
    """The union of an answer's instance masks, ``(H, W)`` bool (empty for a ``none`` answer).

    >>> from getok.decoding import get_decoder
    >>> g = [Geometry(size=(4, 4), box=[0, 0, 2, 2]), Geometry(size=(4, 4), box=[2, 2, 4, 4])]
    >>> int(decode_union(get_decoder("raster"), g, (4, 4)).sum())
    8
    """
    h, w = as_size(size)
    out = np.zeros((h, w), dtype=bool)
    for g in geometries:
        out |= np.asarray(decoder.decode(g), dtype=bool)
    return out
