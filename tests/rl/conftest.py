"""Helpers for the reward tests: small scenes, packed truths and answers."""

from __future__ import annotations

import numpy as np
import pytest

from getok.codecs.token_names import grid_token
from getok.ops.grid import mask_to_cells


def rect(size, x1, y1, x2, y2) -> np.ndarray:
    """A rectangle mask covering pixel columns [x1, x2) and rows [y1, y2)."""
    m = np.zeros(size, dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def disk(size, cx, cy, r) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def cells_line(cells, n) -> str:
    return "".join(grid_token(int(cx), int(cy), n) for cx, cy in np.asarray(cells).reshape(-1, 2))


def mask_line(mask, n) -> str:
    """The grid answer line of a mask (every cell whose centre lies on it)."""
    return cells_line(mask_to_cells(mask, n), n)


def wrap(answer: str, think: str = "I look at the image. The object is there.") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


@pytest.fixture
def scene3():
    """A 64 x 96 image with three disjoint rectangles aligned to the 8-grid (cells of 8 x 12 pixels)."""
    size = (64, 96)
    masks = [rect(size, 0, 0, 24, 16), rect(size, 48, 8, 96, 32), rect(size, 12, 40, 60, 64)]
    return size, masks


def generic_raster():
    """The raster decoder under another type: a DecoderSession then takes the generic crop path instead of
    its cell-space shortcuts (tests compare the two)."""
    from getok.decoding.raster import RasterDecoder

    class GenericRaster(RasterDecoder):
        pass

    return GenericRaster()


def random_rect_masks(rng, size, k: int) -> list[np.ndarray]:
    """Up to ``k`` non-empty random rectangles on an image of ``size``."""
    h, w = size
    masks = [rect(size, *sorted(rng.integers(0, w, 2)), *sorted(rng.integers(0, h, 2))) for _ in range(k)]
    return [m for m in masks if m.any()]

