"""Polygon-mode rewards (SimpleSeg: polygons as text), DESIGN.md "Polygon mode".

Components of :func:`score_polygon` (each in [0, 1]):

* ``format`` — envelope and an answer that decodes under the polygon codec (else all 0, ``invalid = 1``);
* ``iou`` — per matched instance :func:`thresholded_iou`: the mask IoU, 0 under ``tau``;
* ``centroid`` — per matched instance :func:`centroid_score`: ``1 - min(1, d / (dist_norm * diagonal))``
  with ``d`` the distance between the centroids of the decoded and the target mask.

Instances are matched as in every mode (:mod:`getok.rl.matching`, with the polygon vertices as the
prediction's points) and averaged over ``max(#pred, #gt)``. ``overall = sum(w_k * c_k) / sum(w_k)``.
Also reported: ``mask_iou`` (IoU without threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DecodeError, GetokError
from .matching import MatchConfig, instance_mean
from .rewards_common import ENVELOPES, answer_lines, invalid_score, split_envelope, weighted_overall
from .rewards_decoding import DecoderSession, Instance, target_iou
from .rewards_stage1 import _check_weights, canonical_order, match_to_targets
from .truth import Target, Truth

__all__ = ["PolygonRewardConfig", "POLYGON_KEYS", "thresholded_iou", "mask_centroid", "centroid_score", "score_polygon"]

POLYGON_KEYS = ("overall", "format", "iou", "centroid", "mask_iou", "n_pred", "n_gt")


@dataclass(frozen=True)
class PolygonRewardConfig:
    """Weights and parameters of the polygon reward.

    Parameters
    ----------
    w_format, w_iou, w_centroid : float
        Weights in ``overall``.
    tau : float
        IoU threshold: an IoU below ``tau`` scores 0.
    dist_norm : float
        Centroid distance, as a fraction of the image diagonal, at which the centroid score reaches 0.
    envelope : str
        ``"think"`` or ``"any"``.
    match : MatchConfig
    """

    w_format: float = 0.5
    w_iou: float = 2.0
    w_centroid: float = 1.0
    tau: float = 0.5
    dist_norm: float = 0.2
    envelope: str = "think"
    match: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self):
        _check_weights(self, "w_format", "w_iou", "w_centroid")
        if not (math.isfinite(self.tau) and 0 <= self.tau <= 1):
            raise ConfigError(f"PolygonRewardConfig.tau must be in [0, 1], got {self.tau!r}")
        if not (math.isfinite(self.dist_norm) and self.dist_norm > 0):
            raise ConfigError(f"PolygonRewardConfig.dist_norm must be > 0, got {self.dist_norm!r}")
        if self.envelope not in ENVELOPES:
            raise ConfigError(f"PolygonRewardConfig.envelope must be one of {ENVELOPES}, got {self.envelope!r}")
        if isinstance(self.match, dict):
            object.__setattr__(self, "match", MatchConfig(**self.match))

    @property
    def weights(self) -> dict[str, float]:
        return {"format": self.w_format, "iou": self.w_iou, "centroid": self.w_centroid}


def thresholded_iou(iou: float, tau: float) -> float:
    """``iou`` if ``iou >= tau`` else 0.

    >>> thresholded_iou(0.4, 0.5), thresholded_iou(0.6, 0.5)
    (0.0, 0.6)
    """
    return float(iou) if iou >= tau else 0.0


def mask_centroid(inst: Instance) -> np.ndarray | None:
    """Mean pixel centre ``(x, y)`` of the decoded mask; the mean of its points when the mask is empty;
    ``None`` when it has neither."""
    c = inst.centroid()
    if c is not None:
        return c
    if len(inst.points):
        return inst.points.mean(axis=0)
    return None


def centroid_score(pred_xy, target: Target, size, dist_norm: float = 0.2) -> float:
    """``1 - min(1, |pred - target centroid| / (dist_norm * sqrt(H^2 + W^2)))``; 0 without a centroid.

    >>> from getok.rl.truth import Target
    >>> m = np.zeros((30, 40), bool); m[10:20, 10:20] = True
    >>> centroid_score([15.0, 15.0], Target.from_mask(m), (30, 40))
    1.0
    """
    if pred_xy is None:
        return 0.0
    h, w = size
    d = float(np.hypot(*(np.asarray(pred_xy, dtype=np.float64) - target.centroid)))
    return 1.0 - min(1.0, d / (dist_norm * math.hypot(h, w)))


def score_polygon(
    response: str,
    truth: Truth,
    session: DecoderSession | None = None,
    config: PolygonRewardConfig | None = None,
    *,
    codec: str | None = None,
    image=None,
) -> dict:
    """Score one polygon-mode response; never raises on model output (module docstring).

    Returns
    -------
    dict
        :data:`POLYGON_KEYS` plus ``invalid`` and ``reason``.
    """
    cfg = config or PolygonRewardConfig()
    session = session or DecoderSession()
    spec = codec or truth.codec
    n_gt = truth.n_targets
    if not spec:
        return invalid_score(POLYGON_KEYS, "no_codec", n_gt)
    try:
        _, answer = split_envelope(response, cfg.envelope)
        lines = answer_lines(answer)
        if not lines and answer.strip().lower() != "none":
            raise DecodeError("empty answer (the no-target answer is 'none')", "empty")
        session.prepare(truth, image)
        instances = canonical_order(session.decode_lines(spec, lines, truth.size, truth.kind))
    except DecodeError as exc:
        return invalid_score(POLYGON_KEYS, exc.reason, n_gt)
    except GetokError as exc:
        return invalid_score(POLYGON_KEYS, type(exc).__name__, n_gt)
    m, _ = match_to_targets(instances, truth, cfg.match)
    ious, thr, cen = [], [], []
    for i, j in m.pairs:
        inst, tgt = instances[i], truth.targets[j]
        iou = target_iou(inst, tgt)
        ious.append(iou)
        thr.append(thresholded_iou(iou, cfg.tau))
        cen.append(centroid_score(mask_centroid(inst), tgt, truth.size, cfg.dist_norm))
    values = {"format": 1.0, "iou": instance_mean(thr, m), "centroid": instance_mean(cen, m)}
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
