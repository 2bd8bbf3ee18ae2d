"""Multi-object matching of predicted instances to target instances (DESIGN.md, "Multi-object matching").

Similarity of prediction ``i`` and target ``j``::

    sim[i, j] = a * box_iou(box_i, box_j)
              + b * hit(points_i, mask_j)
              + c * (1 - min(1, l1(box_i, box_j) / norm))

with ``hit`` the fraction of the prediction's points that fall on the target mask and ``l1`` the mean
absolute difference of the four box coordinates, x divided by W and y by H (so ``l1`` is in [0, 1]).
The assignment maximises the total similarity (scipy ``linear_sum_assignment`` on ``-sim``).
Unmatched predictions and targets score 0, instance rewards are averaged over ``max(#pred, #gt)``, and
no prediction for no target is a correct answer (reward 1) — :func:`instance_mean`.

Boxes are XYXY pixels, points XY pixels, masks ``(H, W)`` bool, sizes ``(H, W)``. A prediction without a
box (an empty decoded region) is a row of NaN in ``pred_boxes``: its box terms are 0.

Examples
--------
>>> import numpy as np
>>> m = np.zeros((10, 10), bool); m[0:5, 0:5] = True
>>> sim = similarity_matrix(np.array([[0, 0, 5, 5.]]), [np.array([[2.5, 2.5]])],
...                         np.array([[0, 0, 5, 5.]]), [m], (10, 10))
>>> sim.round(3).tolist()  # a * 1 + b * 1 + c * 1
[[3.0]]
>>> match(sim).pairs.tolist()
[[0, 0]]
>>> instance_mean([], match(np.zeros((0, 0))))
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..conventions import as_size
from ..errors import ConfigError

__all__ = [
    "MatchConfig",
    "Matching",
    "box_iou_matrix",
    "box_iou_scalar",
    "box_l1_matrix",
    "box_l1",
    "points_in_mask",
    "hit_ratio",
    "pixel_values",
    "hit_matrix",
    "hit_matrix_bits",
    "hit_matrix_table",
    "similarity_matrix",
    "similarity_parts",
    "SimilarityParts",
    "match",
    "match_instances",
    "instance_mean",
]


@dataclass(frozen=True)
class MatchConfig:
    """Weights of the matching similarity.

    Parameters
    ----------
    a : float
        Weight of the box IoU.
    b : float
        Weight of the point-hit ratio (fraction of predicted points on the target mask).
    c : float
        Weight of the box-L1 closeness ``1 - min(1, l1 / norm)``.
    norm : float
        Normalised L1 (mean over the 4 coordinates, fraction of W / H) at which closeness reaches 0.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 1.0
    norm: float = 0.25

    def __post_init__(self):
        for name in ("a", "b", "c"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"MatchConfig.{name} must be a finite number >= 0, got {v}")
        if self.a + self.b + self.c <= 0:
            raise ConfigError("MatchConfig: at least one of a, b, c must be positive")
        if not (np.isfinite(self.norm) and self.norm > 0):
            raise ConfigError(f"MatchConfig.norm must be > 0, got {self.norm}")


@dataclass(frozen=True)
class Matching:
    """Result of the assignment.

    Attributes
    ----------
    pairs : (M, 2) int
        ``(prediction index, target index)`` of each match, sorted by prediction index.
    n_pred, n_gt : int
    sim : (n_pred, n_gt) float
        The similarity matrix the assignment was made on.
    """

    pairs: np.ndarray
    n_pred: int
    n_gt: int
    sim: np.ndarray

    @property
    def denominator(self) -> int:
        """``max(n_pred, n_gt)``: what instance rewards are averaged over (0 for no pred, no target)."""
        return max(self.n_pred, self.n_gt)

    @property
    def unmatched_pred(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_pred), self.pairs[:, 0])

    @property
    def unmatched_gt(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_gt), self.pairs[:, 1])

    def target_of(self) -> dict[int, int]:
        """``{prediction index: target index}``."""
        return {int(i): int(j) for i, j in self.pairs}


def _boxes(b) -> np.ndarray:
    return np.asarray(b, dtype=np.float64).reshape(-1, 4)


def box_iou_matrix(pred_boxes, gt_boxes) -> np.ndarray:
    """IoU of every pair of XYXY boxes, ``(P, G)``; NaN rows (no box) give 0.

    Degenerate boxes (zero area) give 1 with an identical box, else 0.
    """
    p, g = _boxes(pred_boxes), _boxes(gt_boxes)
    if len(p) == 0 or len(g) == 0:
        return np.zeros((len(p), len(g)))
    iw = np.maximum(np.minimum(p[:, None, 2], g[None, :, 2]) - np.maximum(p[:, None, 0], g[None, :, 0]), 0.0)
    ih = np.maximum(np.minimum(p[:, None, 3], g[None, :, 3]) - np.maximum(p[:, None, 1], g[None, :, 1]), 0.0)
    inter = iw * ih
    ap = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    ag = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    union = ap[:, None] + ag[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    same = np.all(p[:, None, :] == g[None, :, :], axis=2) & (union <= 0)
    iou = np.where(same, 1.0, iou)
    return np.where(np.isnan(iou), 0.0, iou)


def box_l1_matrix(pred_boxes, gt_boxes, size: tuple[int, int]) -> np.ndarray:
    """Normalised L1 distance of every pair of XYXY boxes, ``(P, G)`` in [0, 1]; NaN rows give 1.

    ``l1 = mean(|x1 - x1'| / W, |y1 - y1'| / H, |x2 - x2'| / W, |y2 - y2'| / H)``.
    """
    h, w = as_size(size)
    p, g = _boxes(pred_boxes), _boxes(gt_boxes)
    scale = np.array([w, h, w, h], dtype=np.float64)
    d = (np.abs(p[:, None, :] - g[None, :, :]) / scale).mean(axis=2)
    return np.where(np.isnan(d), 1.0, np.minimum(d, 1.0))


def box_l1(box_a, box_b, size: tuple[int, int]) -> float:
    """:func:`box_l1_matrix` for one pair; 1 when either box is ``None``."""
    if box_a is None or box_b is None:
        return 1.0
    return float(box_l1_matrix(box_a, box_b, size)[0, 0])


def pixel_values(points_xy, image: np.ndarray) -> np.ndarray:
    """Values of an ``(H, W)`` image at the pixel holding each point ``(K, 2)`` XY (floored; points on or
    beyond the right / bottom edge read the last pixel), ``(K,)`` of the image's dtype."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    h, w = image.shape
    col = np.minimum(np.maximum(np.floor(pts[:, 0]), 0), w - 1).astype(np.int64)
    row = np.minimum(np.maximum(np.floor(pts[:, 1]), 0), h - 1).astype(np.int64)
    return image.reshape(-1)[row * w + col]


def points_in_mask(points_xy, mask: np.ndarray, origin: tuple[int, int] | None = None) -> np.ndarray:
    """Whether each point ``(K, 2)`` XY pixels falls on a mask pixel (the pixel containing it), ``(K,)``.

    ``mask`` is a full ``(H, W)`` mask (points on the right / bottom image edge count for the last
    pixel), or a crop of one whose top-left pixel is at ``origin = (row0, col0)`` (points outside the
    crop are outside the mask).
    """
    m = np.asarray(mask)
    if origin is None:
        return pixel_values(points_xy, m)
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    h, w = m.shape
    col = np.floor(pts[:, 0]) - origin[1]
    row = np.floor(pts[:, 1]) - origin[0]
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.zeros(len(pts), dtype=bool)
    if ok.any():
        out[ok] = m.reshape(-1)[row[ok].astype(np.int64) * w + col[ok].astype(np.int64)]
    return out


def hit_ratio(points_xy, mask: np.ndarray, origin: tuple[int, int] | None = None) -> float:
    """Fraction of points on the mask (:func:`points_in_mask`); 0 for no points."""
    inside = points_in_mask(points_xy, mask, origin)
    return float(np.count_nonzero(inside) / len(inside)) if len(inside) else 0.0


def hit_matrix(pred_points, gt_masks, origins=None) -> np.ndarray:
    """``(P, G)`` hit ratios of each prediction's points on each target mask (full masks, or crops
    placed at ``origins``, one ``(row0, col0)`` per mask)."""
    out = np.zeros((len(pred_points), len(gt_masks)))
    for i, pts in enumerate(pred_points):
        if len(pts) == 0:
            continue
        for j, m in enumerate(gt_masks):
            out[i, j] = hit_ratio(pts, m, None if origins is None else origins[j])
    return out


def hit_matrix_bits(pred_points, label_bits: np.ndarray, n_targets: int) -> np.ndarray:
    """:func:`hit_matrix` from a bit-packed label image (bit ``j`` of ``label_bits[y, x]`` set where
    target ``j`` covers the pixel): one lookup per prediction whatever the number of targets."""
    sets = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in pred_points]
    counts = np.array([len(p) for p in sets], dtype=np.int64)
    if n_targets == 0 or counts.sum() == 0:
        return np.zeros((len(pred_points), n_targets))
    return _bit_means(pixel_values(np.concatenate(sets, axis=0), label_bits), counts, n_targets)


def hit_matrix_table(pred_indices, table_bits: np.ndarray, n_targets: int) -> np.ndarray:
    """:func:`hit_matrix_bits` for points given as indices into a table of label bits (e.g. the bits
    at every cell centre of a grid): ``pred_indices`` one int array per prediction."""
    counts = np.array([len(p) for p in pred_indices], dtype=np.int64)
    if n_targets == 0 or counts.sum() == 0:
        return np.zeros((len(pred_indices), n_targets))
    return _bit_means(table_bits[np.concatenate(pred_indices)], counts, n_targets)


def _bit_means(vals: np.ndarray, counts: np.ndarray, n_targets: int) -> np.ndarray:
    """``(P, G)``: per prediction (``counts`` consecutive ``vals`` each), the fraction with bit ``j`` set."""
    out = np.zeros((len(counts), n_targets))
    bits = (vals[:, None] >> np.arange(n_targets, dtype=vals.dtype)[None, :]) & 1  # (sum K_i, G)
    nonempty = counts > 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nonempty]
    out[nonempty] = np.add.reduceat(bits, starts, axis=0) / counts[nonempty, None]
    return out


@dataclass(frozen=True)
class SimilarityParts:
    """The three terms of the similarity, each ``(P, G)``: box IoU, point-hit ratio, normalised box L1."""

    box_iou: np.ndarray
    hit: np.ndarray
    l1: np.ndarray

    def combine(self, config: MatchConfig | None = None) -> np.ndarray:
        """``a * box_iou + b * hit + c * (1 - min(1, l1 / norm))``."""
        cfg = config or MatchConfig()
        return cfg.a * self.box_iou + cfg.b * self.hit + cfg.c * (1.0 - np.minimum(1.0, self.l1 / cfg.norm))


def similarity_parts(
    pred_boxes, pred_points, gt_boxes, gt_masks, size, origins=None, label_bits=None, hit=None
) -> SimilarityParts:
    """The terms of :func:`similarity_matrix` (so rewards can reuse them for matched pairs); ``origins``
    places target masks given as crops (:func:`hit_matrix`); ``label_bits``, when given, replaces the
    per-mask lookups (:func:`hit_matrix_bits`); ``hit``, when given, is the ``(P, G)`` hit matrix
    already computed."""
    p, g = _boxes(pred_boxes), _boxes(gt_boxes)
    if len(p) != len(pred_points) or len(g) != len(gt_masks):
        raise ConfigError(
            f"similarity: {len(p)} boxes for {len(pred_points)} point sets, {len(g)} boxes for {len(gt_masks)} masks"
        )
    if len(p) == 0 or len(g) == 0:
        z = np.zeros((len(p), len(g)))
        return SimilarityParts(z, z, np.ones_like(z))
    if hit is None:
        hit = (
            hit_matrix(pred_points, gt_masks, origins)
            if label_bits is None
            else hit_matrix_bits(pred_points, label_bits, len(g))
        )
    if len(p) * len(g) <= 36:  # a few instances: plain floats beat numpy's per-call overhead
        iou, l1 = _box_terms_small(p, g, size)
        return SimilarityParts(iou, hit, l1)
    return SimilarityParts(box_iou_matrix(p, g), hit, box_l1_matrix(p, g, size))


def box_iou_scalar(a, b) -> float:
    """IoU of two XYXY boxes given as 4 floats (no numpy: for one pair at a time); degenerate boxes give
    1 when identical, else 0 — as :func:`box_iou_matrix`."""
    a0, a1, a2, a3 = a.tolist() if isinstance(a, np.ndarray) else a
    b0, b1, b2, b3 = b.tolist() if isinstance(b, np.ndarray) else b
    iw = min(a2, b2) - max(a0, b0)
    ih = min(a3, b3) - max(a1, b1)
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
    if union > 0:
        return inter / union
    return 1.0 if (a0, a1, a2, a3) == (b0, b1, b2, b3) else 0.0


def _box_terms_small(p: np.ndarray, g: np.ndarray, size) -> tuple[np.ndarray, np.ndarray]:
    """:func:`box_iou_matrix` and :func:`box_l1_matrix` with Python floats (same values)."""
    h, w = as_size(size)
    iou = [[0.0] * len(g) for _ in range(len(p))]
    l1 = [[1.0] * len(g) for _ in range(len(p))]
    gl = g.tolist()
    for i, (a0, a1, a2, a3) in enumerate(p.tolist()):
        if a0 != a0 or a1 != a1 or a2 != a2 or a3 != a3:  # NaN: no box
            continue
        area_a = (a2 - a0) * (a3 - a1)
        for j, (b0, b1, b2, b3) in enumerate(gl):
            iw = min(a2, b2) - max(a0, b0)
            ih = min(a3, b3) - max(a1, b1)
            inter = iw * ih if iw > 0 and ih > 0 else 0.0
            union = area_a + (b2 - b0) * (b3 - b1) - inter
            if union > 0:
                iou[i][j] = inter / union
            else:
                iou[i][j] = 1.0 if (a0, a1, a2, a3) == (b0, b1, b2, b3) else 0.0
            l1[i][j] = min(1.0, ((abs(a0 - b0) + abs(a2 - b2)) / w + (abs(a1 - b1) + abs(a3 - b3)) / h) / 4)
    return np.array(iou).reshape(len(p), len(g)), np.array(l1).reshape(len(p), len(g))


def similarity_matrix(
    pred_boxes, pred_points, gt_boxes, gt_masks, size, config: MatchConfig | None = None
) -> np.ndarray:
    """The matching similarity ``(P, G)`` (module docstring).

    Parameters
    ----------
    pred_boxes : (P, 4) float
        XYXY pixels; a NaN row for a prediction without a box.
    pred_points : sequence of P arrays (K_i, 2)
        XY pixels.
    gt_boxes : (G, 4) float
    gt_masks : sequence of G (H, W) bool
    size : (H, W)
    config : MatchConfig, optional
    """
    return similarity_parts(pred_boxes, pred_points, gt_boxes, gt_masks, size).combine(config)


def match(sim) -> Matching:
    """Hungarian assignment maximising total similarity on a ``(P, G)`` matrix.

    Every prediction / target is matched while both remain (``min(P, G)`` pairs); which ones are left
    unmatched follows from the similarity.
    """
    s = np.asarray(sim, dtype=np.float64)
    if s.ndim != 2:
        raise ConfigError(f"similarity must be a (P, G) matrix, got shape {s.shape}")
    n_pred, n_gt = s.shape
    if n_pred == 0 or n_gt == 0:
        return Matching(np.zeros((0, 2), dtype=np.int64), n_pred, n_gt, s)
    rows, cols = linear_sum_assignment(-np.where(np.isnan(s), 0.0, s))
    pairs = np.stack([rows, cols], axis=1).astype(np.int64)
    return Matching(pairs[np.argsort(pairs[:, 0], kind="stable")], n_pred, n_gt, s)


def match_instances(pred_boxes, pred_points, gt_boxes, gt_masks, size, config: MatchConfig | None = None) -> Matching:
    """:func:`similarity_matrix` then :func:`match`."""
    return match(similarity_matrix(pred_boxes, pred_points, gt_boxes, gt_masks, size, config))


def instance_mean(pair_values, matching: Matching, unmatched_pred_values=None) -> float:
    """Average per-instance rewards over ``max(#pred, #gt)``; 1 when there is neither.

    Parameters
    ----------
    pair_values : sequence of float
        One reward per matched pair, in the order of ``matching.pairs``.
    matching : Matching
    unmatched_pred_values : sequence of float, optional
        Rewards of the unmatched predictions (order of ``matching.unmatched_pred``); 0 by default
        (DESIGN: unmatched predictions and targets score 0). Unmatched targets always score 0.
    """
    den = matching.denominator
    if den == 0:
        return 1.0
    total = float(sum(pair_values))
    if unmatched_pred_values is not None:
        total += float(sum(unmatched_pred_values))
    return total / den
