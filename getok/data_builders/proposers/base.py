"""Grid proposals: exactly one mask per grid point, the point → mask mapping kept.

A :class:`MaskProposer` looks at an image and, for every grid point of an ``n x n`` grid (cell centres,
row-major index ``cy * n + cx``), returns the mask that the point selects. Many grid points often select
the same region, so a :class:`ProposalStack` stores the *unique* masks once and, per grid point, the
index of its mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ...errors import GeometryError

__all__ = ["ProposalStack", "MaskProposer"]


@dataclass(eq=False)
class ProposalStack:
    """Proposals of one image on an ``n x n`` grid.

    Attributes
    ----------
    n : int
        Grid size.
    size : (H, W)
    masks : (U, H, W) bool
        The distinct proposal masks.
    point_to_mask : (n * n,) int64
        For grid point ``cy * n + cx``, the index into ``masks`` of its proposal; ``-1`` where the
        proposer returned nothing for that point.
    scores : (n * n,) float, optional
        The proposer's confidence per grid point (SAM's predicted IoU), when it has one.
    """

    n: int
    size: tuple[int, int]
    masks: np.ndarray
    point_to_mask: np.ndarray
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        self.point_to_mask = np.asarray(self.point_to_mask, dtype=np.int64).reshape(-1)
        h, w = self.size
        if self.masks.ndim != 3 or self.masks.shape[1:] != (h, w):
            raise GeometryError(f"masks must be (U, {h}, {w}), got {self.masks.shape}")
        if self.point_to_mask.shape != (self.n * self.n,):
            raise GeometryError(f"point_to_mask must have n*n={self.n * self.n} entries")
        if self.point_to_mask.max(initial=-1) >= len(self.masks) or self.point_to_mask.min(initial=0) < -1:
            raise GeometryError("point_to_mask indexes outside masks")

    def mask_of(self, cx: int, cy: int) -> np.ndarray:
        """The proposal selected by grid point ``(cx, cy)`` (an empty mask where there is none)."""
        k = self.point_to_mask[cy * self.n + cx]
        return self.masks[k] if k >= 0 else np.zeros(self.size, dtype=bool)


@runtime_checkable
class MaskProposer(Protocol):
    """Anything that proposes one mask per grid point of an image."""

    name: str

    def settings(self) -> dict:
        """Everything that changes the output (model type, checkpoint hash, thresholds): the cache key."""
        ...

    def propose(self, image: np.ndarray, n: int) -> ProposalStack:
        """Proposals for ``image`` (``(H, W, 3)`` uint8 RGB) on an ``n x n`` grid."""
        ...
