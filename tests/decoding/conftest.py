"""Fixtures for the decoder tests: a synthetic label-map scene and a proposer that knows its regions."""

from __future__ import annotations

import numpy as np
import pytest

from getok.data_builders.proposers.base import PointMaskStack
from getok.ops.grid import grid_points

SIZE = (64, 80)  # (H, W)


def label_scene(size=SIZE) -> np.ndarray:
    """``(H, W)`` int labels: 0 background, 1 a rectangle, 2 a disk, 3 a thin bar."""
    h, w = size
    lab = np.zeros((h, w), dtype=np.int64)
    lab[8:30, 6:34] = 1
    yy, xx = np.mgrid[:h, :w]
    lab[(xx + 0.5 - 58) ** 2 + (yy + 0.5 - 40) ** 2 <= 14**2] = 2
    lab[50:54, 4:40] = 3
    return lab


class StackProposer:
    """Exact point masks of a known partition: a grid point selects the region of the label under it.

    Implements ``MaskProposer`` only (no per-point lookup); ``calls`` counts ``propose`` calls.
    """

    name = "labels"

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.calls = 0

    def settings(self) -> dict:
        return {"name": self.name}

    def _labels_at(self, pts: np.ndarray) -> np.ndarray:
        h, w = self.labels.shape
        cols = np.clip(np.floor(pts[:, 0]).astype(int), 0, w - 1)
        rows = np.clip(np.floor(pts[:, 1]).astype(int), 0, h - 1)
        return self.labels[rows, cols]

    def propose(self, image: np.ndarray, n: int) -> PointMaskStack:
        self.calls += 1
        labs = self._labels_at(grid_points(n, self.labels.shape))
        uniq, inv = np.unique(labs, return_inverse=True)
        masks = self.labels[None] == uniq[:, None, None]
        return PointMaskStack(n=n, size=self.labels.shape, masks=masks, point_to_mask=inv)


class LabelProposer(StackProposer):
    """:class:`StackProposer` plus the optional ``propose_at`` (the region under any point)."""

    def propose_at(self, image: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
        labs = self._labels_at(np.asarray(points_xy, dtype=np.float64).reshape(-1, 2))
        return self.labels[None] == labs[:, None, None]


@pytest.fixture
def labels() -> np.ndarray:
    return label_scene()


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
