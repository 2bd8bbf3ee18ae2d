"""Masks: validation, boxes, IoU and run-length encoding.

Masks are ``(H, W)`` bool arrays. Boxes are XYXY pixels with the continuous-pixel convention: the box of
a mask covers its pixels entirely (``x2 = max column + 1``).
"""

from __future__ import annotations

import numpy as np

from ..conventions import as_size
from ..errors import GeometryError

__all__ = [
    "as_mask",
    "mask_to_box",
    "box_to_mask",
    "mask_iou",
    "box_iou",
    "rle_encode",
    "rle_decode",
]


def as_mask(mask, size: tuple[int, int] | None = None, *, name: str = "mask") -> np.ndarray:
    """Validate a binary mask and return it as ``(H, W)`` bool.

    Accepts bool or {0, 1} integer / float arrays; anything else (other values, wrong rank, wrong size)
    raises :class:`~getok.errors.GeometryError` naming the problem.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise GeometryError(f"{name} must be 2-D (H, W), got shape {m.shape}")
    if size is not None and m.shape != as_size(size):
        raise GeometryError(f"{name} shape {m.shape} differs from image size (H, W)={tuple(size)}")
    if m.dtype == bool:
        return m
    vals = np.unique(m)
    if not np.isin(vals, [0, 1]).all():
        raise GeometryError(f"{name} must be binary (0/1 or bool); found values {vals[:6].tolist()}")
    return m.astype(bool)


def mask_to_box(mask) -> np.ndarray | None:
    """Tight box XYXY (pixels, float) around the mask's pixels, or ``None`` for an empty mask.

    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> mask_to_box(m).tolist()
    [2.0, 1.0, 4.0, 3.0]
    """
    m = as_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def box_to_mask(box_xyxy, size: tuple[int, int]) -> np.ndarray:
    """Rasterise a pixel box: pixels whose centre lies inside the box (at least one pixel per box)."""
    h, w = as_size(size)
    x1, y1, x2, y2 = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
    c1 = int(np.clip(np.ceil(x1 - 0.5), 0, w - 1))
    r1 = int(np.clip(np.ceil(y1 - 0.5), 0, h - 1))
    c2 = int(np.clip(np.ceil(x2 - 0.5), c1 + 1, w))
    r2 = int(np.clip(np.ceil(y2 - 0.5), r1 + 1, h))
    m = np.zeros((h, w), dtype=bool)
    m[r1:r2, c1:c2] = True
    return m


def mask_iou(a, b, empty: float = 1.0) -> float:
    """IoU of two masks of the same shape; ``empty`` is returned when both are empty.

    >>> a = np.zeros((2, 2), bool); a[0] = True
    >>> mask_iou(a, np.ones((2, 2), bool))
    0.5
    """
    a = as_mask(a, name="a")
    b = as_mask(b, name="b")
    if a.shape != b.shape:
        raise GeometryError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    if union == 0:
        return float(empty)
    return float(np.count_nonzero(a & b) / union)


def box_iou(a, b) -> float:
    """IoU of two XYXY boxes (continuous area). Two degenerate identical boxes give 1.

    >>> box_iou([0, 0, 2, 2], [1, 0, 3, 2])
    0.3333333333333333
    """
    a = np.asarray(a, dtype=np.float64).reshape(4)
    b = np.asarray(b, dtype=np.float64).reshape(4)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if union <= 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(inter / union)


def rle_encode(mask) -> dict:
    """Mask → COCO RLE dict ``{"size": [H, W], "counts": str}`` (compressed, JSON-safe).

    Uses pycocotools when installed; otherwise writes uncompressed counts (a list of ints, column-major),
    which :func:`rle_decode` and pycocotools both read.
    """
    m = as_mask(mask)
    try:
        from pycocotools import mask as mask_utils
    except ImportError:  # pragma: no cover - pycocotools is in the default install
        flat = m.flatten(order="F").astype(np.uint8)
        change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
        counts = np.diff(np.concatenate([[0], change])).tolist()
        return {"size": list(m.shape), "counts": counts}
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string or uncompressed list counts, column-major) → ``(H, W)`` bool mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise GeometryError(f"not an RLE dict with 'size' and 'counts': {str(rle)[:80]}") from exc
    if isinstance(counts, list):
        counts = np.asarray(counts, dtype=np.int64)
        if counts.sum() != h * w or (counts < 0).any():
            raise GeometryError(f"RLE counts sum to {counts.sum()}, expected H*W={h * w}")
        vals = np.arange(len(counts)) % 2
        flat = np.repeat(vals, counts).astype(bool)
        return flat.reshape((h, w), order="F")
    from pycocotools import mask as mask_utils

    try:
        m = mask_utils.decode({"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts})
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise GeometryError(f"corrupt compressed RLE: {exc}") from exc
    return m.astype(bool)
