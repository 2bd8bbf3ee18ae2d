"""Masks: validation, pixel counts, IoU (one pair, a batch, every pair) and run-length encoding.

Masks are ``(H, W)`` bool arrays, batches ``(N, H, W)``. Boxes of masks live in :mod:`getok.ops.boxes`.
"""

from __future__ import annotations

import numpy as np

from ..conventions import as_size
from ..errors import GeometryError

__all__ = [
    "as_mask",
    "as_masks",
    "mask_counts",
    "intersection_union",
    "mask_iou",
    "mask_iou_matrix",
    "coco_rle",
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


def as_masks(masks, name: str = "masks") -> np.ndarray:
    """Validate a mask or a batch of masks and return it as ``(N, H, W)`` bool (``(H, W)`` becomes ``N = 1``)."""
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise GeometryError(f"{name} must be (H, W) or (N, H, W), got shape {m.shape}")
    if m.dtype != bool:
        vals = np.unique(m)
        if not np.isin(vals, [0, 1]).all():
            raise GeometryError(f"{name} must be binary (0/1 or bool); found values {vals[:6].tolist()}")
        m = m.astype(bool)
    return m


def _chunk_rows(shape: tuple[int, ...], budget: int = 1 << 22) -> int:
    """Samples per chunk so that one chunk's temporaries stay around ``budget`` bytes (cache friendly)."""
    per = int(np.prod(shape[1:])) or 1
    return max(1, budget // per)


def mask_counts(pred, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample ``(intersection, pred area, gt area)`` pixel counts, ``(N,)`` int64 each.

    ``pred`` and ``gt`` are ``(H, W)`` or ``(N, H, W)`` of the same shape. Works through the batch in chunks
    of a few MB, so the temporaries stay in cache.
    """
    p, g = as_masks(pred, "pred"), as_masks(gt, "gt")
    if p.shape != g.shape:
        raise GeometryError(f"pred and gt differ in shape: {p.shape} vs {g.shape}")
    n = len(p)
    inter = np.empty(n, dtype=np.int64)
    pa = np.empty(n, dtype=np.int64)
    ga = np.empty(n, dtype=np.int64)
    per = int(np.prod(p.shape[1:]))
    if hasattr(np, "bitwise_count") and per % 8 == 0 and p.flags.c_contiguous and g.flags.c_contiguous:
        # 8 mask bytes (each 0 or 1) per uint64 word: popcount counts the True pixels, ~2x count_nonzero
        pw = p.reshape(n, -1).view(np.uint64)
        gw = g.reshape(n, -1).view(np.uint64)
        step = _chunk_rows(p.shape, 1 << 20)
        for i in range(0, n, step):
            a, b = pw[i : i + step], gw[i : i + step]
            inter[i : i + step] = np.bitwise_count(a & b).sum(axis=1, dtype=np.int64)
            pa[i : i + step] = np.bitwise_count(a).sum(axis=1, dtype=np.int64)
            ga[i : i + step] = np.bitwise_count(b).sum(axis=1, dtype=np.int64)
        return inter, pa, ga
    step = _chunk_rows(p.shape)
    for i in range(0, n, step):
        a, b = p[i : i + step], g[i : i + step]
        inter[i : i + step] = np.count_nonzero(a & b, axis=(1, 2))
        pa[i : i + step] = np.count_nonzero(a, axis=(1, 2))
        ga[i : i + step] = np.count_nonzero(b, axis=(1, 2))
    return inter, pa, ga


def intersection_union(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample intersection and union pixel counts, ``(N,)`` int64 each (:func:`mask_counts`).

    >>> a = np.zeros((1, 2, 2), bool); a[0, 0] = True
    >>> intersection_union(a, np.ones((2, 2), bool))
    (array([2]), array([4]))
    """
    inter, pa, ga = mask_counts(pred, gt)
    return inter, pa + ga - inter


def mask_iou(pred, gt, empty: float = 1.0):
    """Mask IoU; ``empty`` where both masks are empty. A float for ``(H, W)`` inputs, ``(N,)`` for batches.

    >>> a = np.zeros((2, 2), bool); a[0] = True
    >>> mask_iou(a, np.ones((2, 2), bool)), mask_iou(np.zeros((2, 2)), np.zeros((2, 2)))
    (0.5, 1.0)
    """
    inter, union = intersection_union(pred, gt)
    iou = np.where(union > 0, inter / np.maximum(union, 1), float(empty))
    return float(iou[0]) if np.ndim(pred) == 2 else iou


def mask_iou_matrix(pred, gt, empty: float = 1.0) -> np.ndarray:
    """IoU of every pair of masks, ``(P, G)``, from ``(P, H, W)`` and ``(G, H, W)``; ``empty`` where both
    masks of a pair are empty.

    >>> a = np.zeros((1, 2, 2), bool); a[0, 0] = True
    >>> mask_iou_matrix(a, np.stack([np.ones((2, 2), bool), a[0]])).tolist()
    [[0.5, 1.0]]
    """
    p, g = as_masks(pred, "pred"), as_masks(gt, "gt")
    if p.shape[1:] != g.shape[1:]:
        raise GeometryError(f"pred and gt masks differ in size: {p.shape[1:]} vs {g.shape[1:]}")
    if len(p) == 0 or len(g) == 0:
        return np.zeros((len(p), len(g)))
    pf = p.reshape(len(p), -1).astype(np.float32)  # float32 sums are exact integers up to 2**24 pixels
    gf = g.reshape(len(g), -1).astype(np.float32)
    inter = (pf @ gf.T).astype(np.int64)
    union = pf.sum(1).astype(np.int64)[:, None] + gf.sum(1).astype(np.int64)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), float(empty))


def coco_rle(mask, box=None):
    """A mask as the pycocotools RLE object (``counts`` compressed bytes), computed from the columns its
    ``box`` (XYXY, the mask's tight box when not given) spans: COCO runs are column-major, so the columns left
    and right of the object are one run each — the same result as ``pycocotools.mask.encode``, faster for
    objects narrower than the image."""
    from pycocotools import mask as mask_utils

    m = as_mask(mask)
    h, w = m.shape
    if box is None:
        cols = np.flatnonzero(m.any(axis=0))
        box = None if cols.size == 0 else (cols[0], 0, cols[-1] + 1, h)
    if box is None:
        return mask_utils.frPyObjects({"size": [h, w], "counts": [h * w]}, h, w)
    x0, x1 = int(box[0]), int(box[2])
    band = np.ascontiguousarray(m[:, x0:x1].T).reshape(-1)  # (bw * H,) column-major
    change = np.flatnonzero(band[1:] != band[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [band.size]]))
    if band[0]:  # COCO counts start with a run of zeros
        runs = np.concatenate([[0], runs])
    runs[0] += x0 * h
    tail = (w - x1) * h
    if tail:
        if band[-1]:
            runs = np.concatenate([runs, [tail]])
        else:
            runs[-1] += tail
    return mask_utils.frPyObjects({"size": [h, w], "counts": runs.tolist()}, h, w)


def rle_encode(mask, box=None) -> dict:
    """Mask → COCO RLE dict ``{"size": [H, W], "counts": str}`` (compressed, JSON-safe); ``box``: the mask's
    tight box when the caller knows it (:func:`coco_rle`).

    Uses pycocotools when installed; otherwise writes uncompressed counts (a list of ints, column-major),
    which :func:`rle_decode` and pycocotools both read.

    >>> m = np.zeros((6, 9), bool); m[1:4, 2:5] = True
    >>> rle_decode(rle_encode(m)).tolist() == m.tolist()
    True
    """
    m = as_mask(mask)
    try:
        rle = coco_rle(m, box)
    except ImportError:  # pragma: no cover - pycocotools is in the default install
        flat = m.flatten(order="F").astype(np.uint8)
        change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
        counts = np.diff(np.concatenate([[0], change])).tolist()
        return {"size": list(m.shape), "counts": counts}
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
