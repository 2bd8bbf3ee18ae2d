"""Boxes: from masks, to masks, IoU and L1 — the one implementation of each, with batch twins.

Boxes are XYXY pixels with the continuous-pixel convention: the box of a mask covers its pixels entirely
(``x2 = max column + 1``). Edge cases, the same in every function here:

* **no box** (an empty mask, a prediction without a box) is a ``nan`` row in arrays and ``None`` for one
  box; its IoU is ``nan`` (:func:`box_iou`, :func:`box_iou_pairs`) unless the caller names another value
  (``missing=`` of :func:`box_iou_matrix`; rewards use 0);
* a **degenerate pair** (zero-area union) has IoU 1 when the two boxes are identical, else 0.

Three shapes of the same IoU: :func:`box_iou` (one pair, plain floats: the fast path for one-at-a-time
callers), :func:`box_iou_pairs` (row ``i`` with row ``i``, ``(N,)``) and :func:`box_iou_matrix` (every
pair, ``(P, G)``).
"""

from __future__ import annotations

import numpy as np

from ..conventions import as_size
from ..errors import GeometryError
from .masks import as_mask, as_masks

__all__ = [
    "mask_to_box",
    "masks_to_boxes",
    "box_to_mask",
    "box_iou",
    "box_iou_pairs",
    "box_iou_matrix",
    "box_l1",
    "box_l1_matrix",
]

_cv2 = None
_SMALL = 36  # pairs up to which the (P, G) functions loop over plain floats


def _bounding_rect(m: np.ndarray) -> tuple[int, int, int, int]:
    """OpenCV's ``boundingRect`` of a C-contiguous bool mask, ``(x, y, w, h)`` (w = 0 when empty)."""
    global _cv2
    if _cv2 is None:
        import cv2

        _cv2 = cv2
    return _cv2.boundingRect(m.view(np.uint8))


def mask_to_box(mask) -> np.ndarray | None:
    """Tight box XYXY (pixels, float) around a mask's pixels, or ``None`` for an empty mask.

    ``mask`` is ``(H, W)`` bool (or 0/1 numbers); row- and column-major masks (e.g. decoded from COCO RLE)
    are both read in place, through OpenCV's bounding rectangle.

    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> mask_to_box(m).tolist(), mask_to_box(np.asfortranarray(m)).tolist()
    ([2.0, 1.0, 4.0, 3.0], [2.0, 1.0, 4.0, 3.0])
    >>> mask_to_box(np.zeros((3, 3), bool)) is None
    True
    """
    m = np.asarray(mask)
    if m.dtype != bool or m.ndim != 2:
        m = as_mask(m)
    if m.size == 0:
        return None
    if m.flags.c_contiguous:
        x, y, w, h = _bounding_rect(m)
    elif m.flags.f_contiguous:  # the transpose is C-contiguous: read it in place, swap the axes back
        y, x, h, w = _bounding_rect(m.T)
    else:
        x, y, w, h = _bounding_rect(np.ascontiguousarray(m))
    if w == 0:
        return None
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def masks_to_boxes(masks) -> np.ndarray:
    """:func:`mask_to_box` of a batch: ``(N, 4)`` XYXY float, ``nan`` rows for empty masks.

    >>> m = np.zeros((2, 4, 5), bool); m[0, 1:3, 2:4] = True
    >>> masks_to_boxes(m).tolist()
    [[2.0, 1.0, 4.0, 3.0], [nan, nan, nan, nan]]
    """
    m = as_masks(masks, "masks")
    out = np.full((len(m), 4), np.nan)
    for i in range(len(m)):
        b = mask_to_box(m[i])
        if b is not None:
            out[i] = b
    return out


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


def box_iou(a, b) -> float:
    """IoU of two XYXY boxes (continuous area), with plain floats: one pair at a time, no numpy overhead.

    ``nan`` when either box is ``None`` or has a ``nan``; a degenerate pair gives 1 when identical, else 0.

    >>> box_iou([0, 0, 2, 2], [1, 0, 3, 2])
    0.3333333333333333
    >>> box_iou([1, 1, 1, 1], [1, 1, 1, 1]), box_iou([1, 1, 1, 1], [2, 2, 2, 2])
    (1.0, 0.0)
    """
    if a is None or b is None:
        return float("nan")
    a0, a1, a2, a3 = a.ravel().tolist() if isinstance(a, np.ndarray) else a
    b0, b1, b2, b3 = b.ravel().tolist() if isinstance(b, np.ndarray) else b
    if a0 != a0 or a1 != a1 or a2 != a2 or a3 != a3 or b0 != b0 or b1 != b1 or b2 != b2 or b3 != b3:
        return float("nan")
    return _iou_floats(a0, a1, a2, a3, b0, b1, b2, b3)


def _iou_floats(a0, a1, a2, a3, b0, b1, b2, b3) -> float:
    """The IoU of two boxes given as plain numbers (no ``nan``): the formula every function here follows."""
    iw = min(a2, b2) - max(a0, b0)
    ih = min(a3, b3) - max(a1, b1)
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
    if union > 0:
        return float(inter / union)
    return 1.0 if (a0, a1, a2, a3) == (b0, b1, b2, b3) else 0.0


def _boxes(b, name: str) -> np.ndarray:
    arr = np.asarray(b, dtype=np.float64)
    if arr.size % 4:
        raise GeometryError(f"{name} must be XYXY boxes (N, 4), got shape {arr.shape}")
    return arr.reshape(-1, 4)


def _iou_terms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcast box arrays ``a[..., 4]``, ``b[..., 4]`` (``nan`` where either has a ``nan``)."""
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = union - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), np.where(np.all(a == b, axis=-1), 1.0, 0.0))
    missing = np.isnan(a).any(axis=-1) | np.isnan(b).any(axis=-1)
    return np.where(missing, np.nan, iou)


def box_iou_pairs(a, b) -> np.ndarray:
    """Row-wise IoU of two ``(N, 4)`` box arrays, ``(N,)``; ``nan`` where either row is ``nan``.

    >>> box_iou_pairs([[0, 0, 2, 2], [0, 0, 1, 1]], [[1, 0, 3, 2], [np.nan] * 4]).round(3).tolist()
    [0.333, nan]
    """
    a, b = _boxes(a, "a"), _boxes(b, "b")
    if a.shape != b.shape:
        raise GeometryError(f"box arrays differ in shape: {a.shape} vs {b.shape}")
    return _iou_terms(a, b)


def box_iou_matrix(a, b, missing: float = float("nan")) -> np.ndarray:
    """IoU of every pair of boxes, ``(P, G)``; pairs with a ``nan`` box get ``missing``.

    >>> box_iou_matrix([[0, 0, 2, 2], [np.nan] * 4], [[1, 0, 3, 2]], missing=0.0).round(3).tolist()
    [[0.333], [0.0]]
    """
    p, g = _boxes(a, "a"), _boxes(b, "b")
    if len(p) == 0 or len(g) == 0:
        return np.zeros((len(p), len(g)))
    if len(p) * len(g) <= _SMALL:  # a few boxes (a reward's instances): plain floats beat numpy's overhead
        gl = [None if (b0 != b0 or b1 != b1 or b2 != b2 or b3 != b3) else (b0, b1, b2, b3) for b0, b1, b2, b3 in g.tolist()]
        rows = []
        for a0, a1, a2, a3 in p.tolist():
            if a0 != a0 or a1 != a1 or a2 != a2 or a3 != a3:
                rows.append([missing] * len(gl))
            else:
                rows.append([missing if gj is None else _iou_floats(a0, a1, a2, a3, *gj) for gj in gl])
        return np.array(rows)
    iou = _iou_terms(p[:, None, :], g[None, :, :])
    return iou if np.isnan(missing) else np.where(np.isnan(iou), missing, iou)


def box_l1_matrix(a, b, size: tuple[int, int]) -> np.ndarray:
    """Normalised L1 distance of every pair of boxes, ``(P, G)`` in [0, 1]; pairs with a ``nan`` box give 1.

    ``l1 = mean(|x1 - x1'| / W, |y1 - y1'| / H, |x2 - x2'| / W, |y2 - y2'| / H)``, capped at 1.
    """
    h, w = as_size(size)
    p, g = _boxes(a, "a"), _boxes(b, "b")
    if 0 < len(p) * len(g) <= _SMALL:  # plain floats, as box_iou_matrix
        out = [[1.0] * len(g) for _ in range(len(p))]
        for i, (a0, a1, a2, a3) in enumerate(p.tolist()):
            for j, (b0, b1, b2, b3) in enumerate(g.tolist()):
                d = ((abs(a0 - b0) + abs(a2 - b2)) / w + (abs(a1 - b1) + abs(a3 - b3)) / h) / 4
                out[i][j] = 1.0 if d != d else min(1.0, d)
        return np.array(out)
    scale = np.array([w, h, w, h], dtype=np.float64)
    d = (np.abs(p[:, None, :] - g[None, :, :]) / scale).mean(axis=2)
    return np.where(np.isnan(d), 1.0, np.minimum(d, 1.0))


def box_l1(a, b, size: tuple[int, int]) -> float:
    """:func:`box_l1_matrix` for one pair; 1 when either box is ``None``."""
    if a is None or b is None:
        return 1.0
    return float(box_l1_matrix(a, b, size)[0, 0])
