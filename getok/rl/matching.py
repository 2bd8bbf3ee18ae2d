"""Multi-object matching of predicted instances to target instances (DESIGN.md, "Multi-object matching").

Similarity of prediction ``i`` and target ``j``::

    sim[i, j] = a * box_iou(box_i, box_j)
              + b * hit(points_i, mask_j)
              + c * (1 - min(1, l1(box_i, box_j) / norm))

with ``hit`` the fraction of the prediction's points that fall on the target mask and ``l1`` the mean
absolute difference of the four box coordinates, x divided by W and y by H (so ``l1`` is in [0, 1]).
The assignment maximises the total similarity (:func:`getok.ops.matching.match`: Hungarian on ``-sim``).
Box IoU and L1 are :mod:`getok.ops.boxes`', point lookups :mod:`getok.ops.points`'.
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

from ..errors import ConfigError
from ..ops.boxes import box_iou_matrix, box_l1_matrix
from ..ops.matching import Matching, match
from ..ops.points import hit_ratio, pixel_values

__all__ = [
    "MatchConfig",
    "Matching",
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
    p = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
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
    return SimilarityParts(box_iou_matrix(p, g, missing=0.0), hit, box_l1_matrix(p, g, size))


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
