"""Stage-2 rewards (offset refinement of a stage-1 proposal), DESIGN.md "Stage-2 rewards".

The truth carries the proposal (the stage-1 answer, grid cells on the ``grid_offset`` codec's grid); the
response answers one offset token or ``<DELETE>`` per proposed cell, one line per proposed instance
(:meth:`~getok.codecs.grid_offset.GridOffsetCodec.decode_refinement`). Proposed instances are matched to
targets once, on the proposal (so the initial and the refined state are compared with the same target).

Components of :func:`score_stage2`:

* ``format`` (0 / 1) — envelope and a refinement that fits the proposal; else everything 0, ``invalid = 1``;
* ``point_refine`` in [-1, 1] — per proposed point (:func:`refine_point_scores`): -1 if its move leaves the
  target mask, +1 if it ends inside (enters or stays) or is a valid ``<DELETE>`` (none of the positions
  reachable from its cell — the cell centre moved by any offset of the codec — lies inside the mask),
  0 otherwise (``bad_delete`` for a ``<DELETE>`` that could have been moved inside); mean per instance;
* ``box_refine`` in [-1, 1] — :func:`~getok.rl.rewards_common.normalized_gain` of the box IoU (boxes of the
  decoded masks): positive exactly when the refined box beats the initial one;
* ``mask_gain`` in [-1, 1] — ``(IoU_ref - IoU_init) / (1 - IoU_init)`` clipped; ``IoU_init = 1`` gives +1
  when kept perfect and -1 when broken (the formula's limit).

Instance values are averaged over ``max(#proposed, #gt)``; unmatched targets score 0. An unmatched
proposed instance (a false positive) is scored against an *empty* target when
``unmatched_as_empty`` (deleting all its points is then the right refinement, and earns +1s) — the
literal DESIGN rule ("unmatched scores 0") is ``unmatched_as_empty=False``.
``overall = sum(w_k * u_k) / sum(w_k)`` with ``u = (c + 1) / 2`` for the signed components, so overall
is in [0, 1] and any valid refinement scores above a malformed one. Also reported: ``iou_init``,
``iou_ref`` (mean over the same instances), ``deleted`` (fraction of points deleted).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ..codecs.grid_offset import GridOffsetCodec
from ..errors import ConfigError, DecodeError, GetokError
from ..geom.grid import cell_centers, cell_size
from ..geometry import Geometry
from .matching import MatchConfig, Matching, box_iou_scalar, instance_mean, points_in_mask
from .rewards_common import (
    ENVELOPES,
    answer_lines,
    invalid_score,
    normalized_gain,
    signed_to_unit,
    split_envelope,
    weighted_overall,
)
from .rewards_decoding import DecoderSession, Instance, target_iou
from .rewards_stage1 import _check_weights, match_to_targets
from .truth import Target, Truth

__all__ = ["Stage2Config", "STAGE2_KEYS", "reachable_positions", "refine_point_scores", "box_gain", "score_stage2"]

STAGE2_KEYS = (
    "overall",
    "format",
    "point_refine",
    "box_refine",
    "mask_gain",
    "iou_init",
    "iou_ref",
    "deleted",
    "n_pred",
    "n_gt",
)


@dataclass(frozen=True)
class Stage2Config:
    """Weights and parameters of the stage-2 reward.

    Parameters
    ----------
    w_format, w_point, w_box, w_mask : float
        Weights of format, point refinement, box refinement and mask IoU gain in ``overall``.
    bad_delete : float
        Score of a ``<DELETE>`` when some reachable position lies inside the mask (DESIGN: 0; -1 treats
        deleting a salvageable point like moving it out).
    unmatched_as_empty : bool
        Score unmatched proposed instances against an empty target (module docstring).
    envelope : str
        ``"think"`` or ``"any"``.
    match : MatchConfig
    """

    w_format: float = 0.5
    w_point: float = 1.0
    w_box: float = 0.5
    w_mask: float = 2.0
    bad_delete: float = 0.0
    unmatched_as_empty: bool = True
    envelope: str = "think"
    match: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self):
        _check_weights(self, "w_format", "w_point", "w_box", "w_mask")
        if not (math.isfinite(self.bad_delete) and -1 <= self.bad_delete <= 1):
            raise ConfigError(f"Stage2Config.bad_delete must be in [-1, 1], got {self.bad_delete!r}")
        if self.envelope not in ENVELOPES:
            raise ConfigError(f"Stage2Config.envelope must be one of {ENVELOPES}, got {self.envelope!r}")
        if isinstance(self.match, dict):
            object.__setattr__(self, "match", MatchConfig(**self.match))

    @property
    def weights(self) -> dict[str, float]:
        return {
            "format": self.w_format,
            "point_refine": self.w_point,
            "box_refine": self.w_box,
            "mask_gain": self.w_mask,
        }


# ------------------------------------------------------------------------------------ components
def reachable_positions(cells, n: int, size, r: int, step: float) -> np.ndarray:
    """Every position a proposed point can move to: ``(K, (2r+1)^2, 2)`` XY pixels, clipped to the image
    (as :func:`~getok.geom.grid.apply_offsets` clips)."""
    h, w = size
    centers = cell_centers(cells, n, size)  # (K, 2)
    pos = centers[:, None, :] + _moves(n, h, w, r, step)[None, :, :]
    return np.minimum(np.maximum(pos, 0.0), np.array([w, h], dtype=np.float64))


@functools.lru_cache(maxsize=64)
def _moves(n: int, h: int, w: int, r: int, step: float) -> np.ndarray:
    """The ``(2r+1)^2`` offset moves in pixels, ``(M, 2)`` XY."""
    d = np.arange(-r, r + 1, dtype=np.float64) * step
    dx, dy = np.meshgrid(d, d, indexing="ij")
    cw, ch = cell_size(n, (h, w))
    return np.stack([dx.ravel() * cw, dy.ravel() * ch], axis=1)


def refine_point_scores(
    refined: Geometry,
    target_mask: np.ndarray | None,
    r: int,
    bad_delete: float = 0.0,
    origin: tuple[int, int] | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Score of each proposed point's refinement, ``(K,)`` in {-1, 0, +1} (``bad_delete`` for bad deletes).

    Parameters
    ----------
    refined : Geometry
        A refined proposal instance: ``cells``, ``grid_n``, ``offsets``, ``deleted``, ``offset_step``
        (and ``points``, the refined points of the kept cells, as the codec's ``decode_refinement`` sets).
    target_mask : (H, W) bool or None
        The matched target (``None``: an empty target); a crop placed at ``origin = (row0, col0)``
        when ``origin`` is given.
    r : int
        Offset radius of the codec (defines the reachable positions).
    start : (K, 2) float, optional
        The proposed points (cell centres, XY pixels), when already known.
    """
    g = refined
    k = len(g.cells)
    dele = g.deleted if g.deleted is not None else np.zeros(k, dtype=bool)
    if target_mask is None:  # nothing to be inside: deletes are valid, moves end outside
        return dele.astype(np.float64)
    size = g.size
    if start is None:
        start = cell_centers(g.cells, g.grid_n, size)
    step = g.offset_step or 0.0
    limit = np.array([size[1], size[0]], dtype=np.float64)
    keep = ~dele
    if g.points is not None and len(g.points) == int(keep.sum()):
        end = g.points  # refined points of the kept cells, clipped to the image
    else:
        cw, ch = cell_size(g.grid_n, size)
        offs = g.offsets if g.offsets is not None else np.zeros((k, 2), dtype=np.int64)
        end = np.minimum(np.maximum(start[keep] + offs[keep] * step * np.array([cw, ch]), 0.0), limit)
    reach = np.zeros((0, 2))
    n_del = k - len(end)
    if n_del:
        moves = _moves(g.grid_n, size[0], size[1], r, step)
        reach = np.minimum(np.maximum(start[dele][:, None, :] + moves[None, :, :], 0.0), limit).reshape(-1, 2)
    inside = points_in_mask(np.concatenate([start, end, reach]), target_mask, origin)  # one lookup
    start_in, end_in = inside[:k], inside[k : k + len(end)]
    scores = np.empty(k)
    scores[keep] = np.where(end_in, 1.0, np.where(start_in[keep], -1.0, 0.0))
    if n_del:
        salvageable = inside[k + len(end) :].reshape(n_del, -1).any(axis=1)
        scores[dele] = np.where(salvageable, bad_delete, 1.0)
    return scores


def box_gain(init: Instance, ref: Instance, target: Target | None) -> float:
    """:func:`~getok.rl.rewards_common.normalized_gain` of the box IoU with the target; a missing box
    has IoU 0 (1 against an empty target)."""

    def iou(inst: Instance) -> float:
        if target is None or target.area == 0:
            return 1.0 if inst.box is None else 0.0
        return 0.0 if inst.box is None else box_iou_scalar(inst.box, target.box)

    return normalized_gain(iou(ref), iou(init))


# ------------------------------------------------------------------------------------------ score
@dataclass(eq=False)
class _ProposalState:
    """The proposal of one truth, decoded and matched (shared by the rollouts of a group)."""

    lines: list[str]
    geometries: list[Geometry]
    instances: list[Instance]
    matching: Matching


def _proposal_state(
    session: DecoderSession, codec: GridOffsetCodec, spec: str, truth: Truth, cfg: Stage2Config
) -> _ProposalState:
    fingerprint = tuple((tuple(t.box.tolist()), t.area) for t in truth.targets)
    key = ("proposal", spec, truth.size, truth.proposal, fingerprint, cfg.match)
    cached = session.cached(key)
    if cached is not None:
        return cached
    text = truth.proposal or ""
    m = int(round(1.0 / codec.config.step))
    if m in (2, 4, 8) and abs(m * codec.config.step - 1.0) < 1e-9:
        for t in truth.targets:  # refined squares are counted on the sub-cell grid; the grid derives from it
            t.cell_counts(codec.n * m)
    res = codec.try_decode(text, truth.size, "mask")
    if res.error is not None:
        raise DecodeError(f"the truth's proposal does not decode: {res.error}", "bad_proposal")
    lines = answer_lines(text)
    insts = [session.instance(ln, g) for ln, g in zip(lines, res.geometries)]
    matching, _ = match_to_targets(insts, truth, cfg.match)
    state = _ProposalState(lines, list(res.geometries), insts, matching)
    session.store(key, state)
    return state


def score_stage2(
    response: str,
    truth: Truth,
    session: DecoderSession | None = None,
    config: Stage2Config | None = None,
    *,
    codec: str | None = None,
    proposal: str | None = None,
    image=None,
) -> dict:
    """Score one stage-2 (refinement) response; never raises on model output (module docstring).

    Parameters
    ----------
    response : str
    truth : Truth
        With ``proposal`` (or pass ``proposal=``): the stage-1 answer text.
    session : DecoderSession, optional
    config : Stage2Config, optional
    codec : str, optional
        A ``grid_offset`` spec; defaults to ``truth.codec``.
    proposal : str, optional
        Overrides ``truth.proposal`` (real two-turn rollouts: the policy's own stage-1 answer).
    image : optional

    Returns
    -------
    dict
        :data:`STAGE2_KEYS` plus ``invalid`` and ``reason``.
    """
    cfg = config or Stage2Config()
    session = session or DecoderSession()
    spec = codec or truth.codec
    n_gt = truth.n_targets
    if proposal is not None:
        truth = truth.with_proposal(proposal)
    if not spec:
        return invalid_score(STAGE2_KEYS, "no_codec", n_gt)
    try:
        c = session.codec(spec)
        if not isinstance(c, GridOffsetCodec):
            return invalid_score(STAGE2_KEYS, "codec_not_grid_offset", n_gt)
        if truth.proposal is None:
            return invalid_score(STAGE2_KEYS, "no_proposal", n_gt)
        think, answer = split_envelope(response, cfg.envelope)
        session.prepare(truth, image)
        state = _proposal_state(session, c, spec, truth, cfg)
        refined = c.decode_refinement(answer, state.geometries)
    except DecodeError as exc:
        return invalid_score(STAGE2_KEYS, exc.reason, n_gt)
    except GetokError as exc:
        return invalid_score(STAGE2_KEYS, type(exc).__name__, n_gt)

    ref_lines = answer_lines(answer)
    targets = truth.targets
    m = state.matching
    tgt_of = m.target_of()
    point_vals, box_vals, gain_vals, init_vals, ref_vals = [], [], [], [], []
    unmatched_point, unmatched_box, unmatched_gain, unmatched_init, unmatched_ref = [], [], [], [], []
    n_points = n_deleted = 0
    for i, (g_ref, init) in enumerate(zip(refined, state.instances)):
        ck = ("refined", spec, truth.size, state.lines[i], ref_lines[i])
        ref = session.cached(ck)
        if ref is None:
            ref = session.store(ck, session.instance(init.key + "|" + ref_lines[i], g_ref))
        n_points += len(g_ref.cells)
        n_deleted += int(g_ref.deleted.sum()) if g_ref.deleted is not None else 0
        j = tgt_of.get(i)
        if j is None and not cfg.unmatched_as_empty:
            continue
        tgt = targets[j] if j is not None else None
        pts = refine_point_scores(
            g_ref,
            None if tgt is None else tgt.crop_mask,
            c.config.r,
            cfg.bad_delete,
            None if tgt is None else tgt.origin,
            start=init.points if len(init.points) == len(g_ref.cells) else None,
        )
        iou_i = target_iou(init, tgt)
        iou_r = target_iou(ref, tgt)
        vals = (float(pts.mean()), box_gain(init, ref, tgt), normalized_gain(iou_r, iou_i), iou_i, iou_r)
        lists = (
            (point_vals, box_vals, gain_vals, init_vals, ref_vals)
            if j is not None
            else (unmatched_point, unmatched_box, unmatched_gain, unmatched_init, unmatched_ref)
        )
        for lst, v in zip(lists, vals):
            lst.append(v)
    values = {
        "format": 1.0,
        "point_refine": instance_mean(point_vals, m, unmatched_point),
        "box_refine": instance_mean(box_vals, m, unmatched_box),
        "mask_gain": instance_mean(gain_vals, m, unmatched_gain),
    }
    unit = {k: (v if k == "format" else signed_to_unit(v)) for k, v in values.items()}
    out = dict(values)
    out.update(
        overall=weighted_overall(unit, cfg.weights),
        iou_init=instance_mean(init_vals, m, unmatched_init),
        iou_ref=instance_mean(ref_vals, m, unmatched_ref),
        deleted=n_deleted / n_points if n_points else 0.0,
        n_pred=float(len(refined)),
        n_gt=float(n_gt),
        invalid=0.0,
        reason="",
    )
    return out
