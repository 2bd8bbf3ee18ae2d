"""Stage-1 rewards (grid tokens: the policy proposes cells), DESIGN.md "Stage-1 rewards".

Components of :func:`score_stage1` (each in [0, 1]):

* ``format`` — 1 when the response is ``<think>…</think><answer>…</answer>`` and the answer decodes under
  the codec, else the whole score is 0 with ``invalid = 1``;
* ``non_repeat`` — :func:`~getok.rl.rewards_common.non_repeat`: repeated think sentences and duplicated
  instance lines;
* ``mask`` — per matched instance ``ramp(IoU(decoded mask, target), mask_floor, mask_ceil)``;
* ``box`` — per matched instance ``box_iou_weight * IoU + (1 - box_iou_weight) * (1 - min(1, l1 / l1_norm))``
  (boxes of the decoded masks; ``l1`` as in :func:`~getok.rl.matching.box_l1`);
* ``points`` — semantic-critical points, :func:`point_score` per matched instance, weighted by point
  count over the matched instances and scaled by ``#matched / max(#pred, #gt)``.

Instance components are averaged over ``max(#pred, #gt)`` after Hungarian matching
(:mod:`getok.rl.matching`; unmatched instances score 0; no prediction for no target scores 1).
``overall = sum(w_k * c_k) / sum(w_k)``. Also reported: ``mask_iou`` (plain IoU, same averaging),
``n_pred``, ``n_gt``, ``invalid``, ``reason``.

Predicted instances are put in a canonical order (by line text) before matching, so the score does
not depend on the order in which the instances are written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ..errors import ConfigError, DecodeError, GetokError
from ..ops.boxes import box_iou, box_l1
from ..ops.matching import Matching, match
from ..ops.points import points_in_mask
from .matching import (
    MatchConfig,
    SimilarityParts,
    hit_matrix_table,
    instance_mean,
    similarity_parts,
)
from .rewards_common import ENVELOPES, answer_lines, invalid_score, non_repeat, ramp, split_envelope, weighted_overall
from .rewards_decoding import DecoderSession, Instance, box_or_none, target_iou
from .truth import Truth

__all__ = [
    "Stage1Config",
    "STAGE1_KEYS",
    "mask_reward",
    "box_reward",
    "box_reward_from",
    "point_spacing",
    "point_score",
    "match_to_targets",
    "score_stage1",
]

#: Keys of every stage-1 score, besides ``invalid`` and ``reason``.
STAGE1_KEYS = ("overall", "format", "non_repeat", "mask", "box", "points", "mask_iou", "n_pred", "n_gt")


def _check_unit(obj, *names):
    for n in names:
        v = getattr(obj, n)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1):
            raise ConfigError(f"{type(obj).__name__}.{n} must be in [0, 1], got {v!r}")


def _check_weights(obj, *names):
    for n in names:
        v = getattr(obj, n)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ConfigError(f"{type(obj).__name__}.{n} must be a finite number >= 0, got {v!r}")
    if sum(getattr(obj, n) for n in names) <= 0:
        raise ConfigError(f"{type(obj).__name__}: the weights {names} must not all be 0")


@dataclass(frozen=True)
class Stage1Config:
    """Weights and parameters of the stage-1 reward (ours: GETok's are not public).

    Parameters
    ----------
    w_format, w_non_repeat, w_mask, w_box, w_points : float
        Weights of the components in ``overall``.
    mask_floor, mask_ceil : float
        IoU below ``mask_floor`` scores 0, above ``mask_ceil`` 1, linear between.
    box_iou_weight : float
        Share of the box IoU in the box reward (the rest is the L1 closeness).
    l1_norm : float
        Normalised box L1 (mean over coordinates, fraction of W / H) at which L1 closeness reaches 0.
    n0 : float
        Point-count saturation scale: ``1 - exp(-n / n0)``.
    lam : float
        Linear penalty per point (``lam * n``).
    spacing_kappa : float
        A point's nearest-neighbour distance earns full spacing at ``kappa * sqrt(area / n)`` (the
        spacing of ``n`` points spread evenly over the object is about ``sqrt(area / n)``).
    envelope : str
        ``"think"`` (the envelope is required) or ``"any"`` (:data:`~getok.rl.rewards_common.ENVELOPES`).
    match : MatchConfig
        Matching similarity weights.
    """

    w_format: float = 0.5
    w_non_repeat: float = 0.5
    w_mask: float = 2.0
    w_box: float = 1.0
    w_points: float = 1.0
    mask_floor: float = 0.3
    mask_ceil: float = 0.9
    box_iou_weight: float = 0.5
    l1_norm: float = 0.25
    n0: float = 3.0
    lam: float = 0.001
    spacing_kappa: float = 0.5
    envelope: str = "think"
    match: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self):
        _check_weights(self, "w_format", "w_non_repeat", "w_mask", "w_box", "w_points")
        _check_unit(self, "mask_floor", "mask_ceil", "box_iou_weight")
        if self.mask_floor > self.mask_ceil:
            raise ConfigError(f"Stage1Config.mask_floor ({self.mask_floor}) must be <= mask_ceil ({self.mask_ceil})")
        for n in ("l1_norm", "n0", "spacing_kappa"):
            v = getattr(self, n)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"Stage1Config.{n} must be > 0, got {v!r}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ConfigError(f"Stage1Config.lam must be >= 0, got {self.lam!r}")
        if self.envelope not in ENVELOPES:
            raise ConfigError(f"Stage1Config.envelope must be one of {ENVELOPES}, got {self.envelope!r}")
        if isinstance(self.match, dict):
            object.__setattr__(self, "match", MatchConfig(**self.match))

    @property
    def weights(self) -> dict[str, float]:
        return {
            "format": self.w_format,
            "non_repeat": self.w_non_repeat,
            "mask": self.w_mask,
            "box": self.w_box,
            "points": self.w_points,
        }


# ------------------------------------------------------------------------------------ components
def mask_reward(iou: float, floor: float, ceil: float) -> float:
    """Piecewise mask reward of one instance: :func:`~getok.rl.rewards_common.ramp` of its IoU."""
    return ramp(iou, floor, ceil)


def box_reward(pred_box, gt_box, size, iou_weight: float = 0.5, l1_norm: float = 0.25) -> float:
    """``iou_weight * IoU + (1 - iou_weight) * (1 - min(1, l1 / l1_norm))`` of XYXY pixel boxes; 0 when
    the prediction has no box.

    >>> box_reward([0, 0, 10, 10], [0, 0, 10, 10], (20, 20))
    1.0
    """
    if pred_box is None or gt_box is None or np.isnan(np.asarray(pred_box, dtype=float)).any():
        return 0.0
    return box_reward_from(box_iou(pred_box, gt_box), box_l1(pred_box, gt_box, size), iou_weight, l1_norm)


def box_reward_from(iou: float, l1: float, iou_weight: float = 0.5, l1_norm: float = 0.25) -> float:
    """:func:`box_reward` from a box IoU and a normalised L1 already computed (matching's parts)."""
    return float(iou_weight * iou + (1.0 - iou_weight) * (1.0 - min(1.0, l1 / l1_norm)))


def point_spacing(
    points_xy, area: float, kappa: float = 0.5, min_sep: float | None = None, cells: np.ndarray | None = None
) -> float:
    """Spread of ``n`` points over an object of ``area`` pixels, in [0, 1].

    Mean over points of ``min(1, d_nn / (kappa * sqrt(area / n)))`` with ``d_nn`` the distance to the
    nearest other point. One point: 1 (nothing to pile on); no points: 0. ``min_sep``, a lower bound of
    the distance between two *distinct* points (the cell size for cell centres), allows an exact
    shortcut: when the full-credit distance is below it, a point scores 1 unless it is repeated;
    ``cells``, when the points are cell centres, their cell indices (repeats are then read per cell).

    >>> point_spacing([[5, 5], [5, 5]], area=100.0)
    0.0
    >>> point_spacing([[2.5, 5], [7.5, 5]], area=100.0)
    1.0
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n == 0:
        return 0.0
    if n == 1:
        return 1.0
    scale = kappa * math.sqrt(max(float(area), 1.0) / n)
    if min_sep is not None and scale <= min_sep:
        if cells is not None:
            per_cell = np.bincount(cells)
            return float(np.count_nonzero(per_cell[cells] == 1) / n)
        key = np.sort(np.ascontiguousarray(pts).view(np.complex128).reshape(-1))  # one sortable value per point
        same = key[1:] == key[:-1]  # neighbours in sorted order that repeat
        repeated = np.zeros(n, dtype=bool)
        repeated[1:] |= same
        repeated[:-1] |= same
        return float(np.count_nonzero(~repeated) / n)
    if n <= 128:
        x, y = pts[:, 0], pts[:, 1]
        d2 = (x[:, None] - x[None, :]) ** 2 + (y[:, None] - y[None, :]) ** 2
        np.fill_diagonal(d2, np.inf)
        nn = np.sqrt(d2.min(axis=1))
    else:
        nn = cKDTree(pts).query(pts, k=2)[0][:, 1]
    return float(np.minimum(1.0, nn / scale).mean())


def point_score(
    points_xy,
    target_mask: np.ndarray,
    target_area: float,
    n0: float = 3.0,
    lam: float = 0.001,
    kappa: float = 0.5,
    hit: float | None = None,
    origin: tuple[int, int] | None = None,
    min_sep: float | None = None,
    cells: np.ndarray | None = None,
) -> float:
    """Semantic-critical points of one instance: ``clip(hit * (1 - exp(-n / n0)) * spacing - lam * n, 0, 1)``.

    ``hit`` is the fraction of the points on the target mask (computed when not given; ``origin`` places a
    cropped mask as in :func:`~getok.ops.points.points_in_mask`), ``spacing`` :func:`point_spacing`
    (``min_sep`` and ``cells`` passed on).
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n == 0:
        return 0.0
    if hit is None:
        hit = float(np.count_nonzero(points_in_mask(pts, target_mask, origin)) / n)
    sat = 1.0 - math.exp(-n / n0)
    if hit * sat - lam * n <= 0.0:  # spacing <= 1 cannot lift it above 0
        return 0.0
    return min(1.0, max(0.0, hit * sat * point_spacing(pts, target_area, kappa, min_sep, cells) - lam * n))


def match_to_targets(instances: list[Instance], truth: Truth, config: MatchConfig) -> tuple[Matching, SimilarityParts]:
    """Hungarian matching of decoded instances to the truth's targets (:mod:`getok.rl.matching`), with
    the similarity terms (reused by the rewards of matched pairs)."""
    targets = truth.targets
    pred_boxes = np.array([box_or_none(i) for i in instances]).reshape(-1, 4)
    gt_boxes = np.array([t.box for t in targets]).reshape(-1, 4)
    hit = None
    if instances and targets:
        n = instances[0].grid_n
        if all(i.point_cells is not None and i.grid_n == n for i in instances):
            table = truth.centre_bits(n)  # every point is a cell centre: one table lookup per point
            if table is not None:
                hit = hit_matrix_table([i.point_cells for i in instances], table, len(targets))
    parts = similarity_parts(
        pred_boxes,
        [i.points for i in instances],
        gt_boxes,
        [t.crop_mask for t in targets],
        truth.size,
        [t.origin for t in targets],
        label_bits=truth.label_bits if instances and targets and hit is None else None,
        hit=hit,
    )
    return match(parts.combine(config)), parts


def canonical_order(instances: list[Instance]) -> list[Instance]:
    """Instances sorted by their canonical line text (order-invariant scoring)."""
    return sorted(instances, key=lambda i: i.key)


# ------------------------------------------------------------------------------------------ score
def score_stage1(
    response: str,
    truth: Truth,
    session: DecoderSession | None = None,
    config: Stage1Config | None = None,
    *,
    codec: str | None = None,
    image=None,
) -> dict:
    """Score one stage-1 response; never raises on model output (module docstring).

    Parameters
    ----------
    response : str
        The completion.
    truth : Truth
        Unpacked ground truth (:func:`~getok.rl.truth.unpack_truth`).
    session : DecoderSession, optional
        Mask decoder session; a fresh weight-free one when omitted.
    config : Stage1Config, optional
    codec : str, optional
        Codec spec; defaults to ``truth.codec``.
    image : (H, W, 3) uint8, optional
        For decoders that need pixels.

    Returns
    -------
    dict
        :data:`STAGE1_KEYS` plus ``invalid`` (0.0 / 1.0) and ``reason`` (``""`` when valid).
    """
    cfg = config or Stage1Config()
    session = session or DecoderSession()
    spec = codec or truth.codec
    n_gt = truth.n_targets
    if not spec:
        return invalid_score(STAGE1_KEYS, "no_codec", n_gt)
    try:
        think, answer = split_envelope(response, cfg.envelope)
        lines = answer_lines(answer)
        if not lines and answer.strip().lower() != "none":
            raise DecodeError("empty answer (the no-target answer is 'none')", "empty")
        session.prepare(truth, image)
        instances = session.decode_lines(spec, lines, truth.size, truth.kind)
    except DecodeError as exc:
        return invalid_score(STAGE1_KEYS, exc.reason, n_gt)
    except GetokError as exc:
        return invalid_score(STAGE1_KEYS, type(exc).__name__, n_gt)

    keys = [inst.key for inst in instances]
    instances = canonical_order(instances)
    targets = truth.targets
    m, parts = match_to_targets(instances, truth, cfg.match)
    ious, masks, boxes, pts_scores, pts_counts = [], [], [], [], []
    for i, j in m.pairs:
        inst, tgt = instances[i], targets[j]
        iou = target_iou(inst, tgt)
        ious.append(iou)
        masks.append(mask_reward(iou, cfg.mask_floor, cfg.mask_ceil))
        if inst.box is None:
            boxes.append(0.0)
        else:
            boxes.append(box_reward_from(parts.box_iou[i, j], parts.l1[i, j], cfg.box_iou_weight, cfg.l1_norm))
        pts_scores.append(
            point_score(
                inst.points,
                tgt.crop_mask,
                tgt.area,
                cfg.n0,
                cfg.lam,
                cfg.spacing_kappa,
                hit=parts.hit[i, j],
                origin=tgt.origin,
                min_sep=inst.min_sep,
                cells=inst.point_cells,
            )
        )
        pts_counts.append(len(inst.points))
    if m.denominator == 0:
        points = 1.0
    elif sum(pts_counts) > 0:
        points = float(np.dot(pts_scores, pts_counts) / sum(pts_counts)) * len(m.pairs) / m.denominator
    else:
        points = 0.0
    values = {
        "format": 1.0,
        "non_repeat": non_repeat(think, lines, keys),
        "mask": instance_mean(masks, m),
        "box": instance_mean(boxes, m),
        "points": points,
    }
    out = dict(values)
    out.update(
        overall=weighted_overall(values, cfg.weights),
        mask_iou=instance_mean(ious, m),
        n_pred=float(len(instances)),
        n_gt=float(n_gt),
        invalid=0.0,
        reason="",
    )
    return out
