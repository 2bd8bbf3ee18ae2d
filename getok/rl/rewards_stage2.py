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

import math
from dataclasses import dataclass, field

import numpy as np

from ..codecs.grid_offset import GridOffsetCodec
from ..errors import ConfigError, DecodeError, GetokError
from ..geometry import Geometry
from ..ops.boxes import box_iou
from ..ops.grid import cell_centers, cell_size
from ..ops.matching import Matching
from ..ops.points import points_in_mask
from ..ops.raster import raster_crop, shifted_squares
from ..ops.refine import delete_scores, kept_scores, move_index, moved_positions, offset_moves, point_scores
from .matching import MatchConfig, instance_mean
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
    (:func:`~getok.ops.refine.moved_positions` of the cell centres, in :func:`~getok.ops.refine.offset_moves`'
    order)."""
    return moved_positions(cell_centers(cells, n, size), r, n, size, step)


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
        reach = moved_positions(start[dele], r, g.grid_n, size, step).reshape(-1, 2)
    inside = points_in_mask(np.concatenate([start, end, reach]), target_mask, origin)  # one lookup
    end_in = np.zeros(k, dtype=bool)
    end_in[keep] = inside[k : k + len(end)]
    salvageable = np.zeros(k, dtype=bool)
    if n_del:
        salvageable[dele] = inside[k + len(end) :].reshape(n_del, -1).any(axis=1)
    return point_scores(inside[:k], end_in, dele, salvageable, bad_delete)


def _box_iou(inst: Instance, target: Target | None) -> float:
    """Box IoU of a decoded instance with a target; a missing box has IoU 0 (1 against an empty target)."""
    if target is None or target.area == 0:
        return 1.0 if inst.box is None else 0.0
    return 0.0 if inst.box is None else box_iou(inst.box, target.box)


def box_gain(init: Instance, ref: Instance, target: Target | None) -> float:
    """:func:`~getok.rl.rewards_common.normalized_gain` of the box IoU with the target; a missing box
    has IoU 0 (1 against an empty target)."""
    return normalized_gain(_box_iou(ref, target), _box_iou(init, target))


# ------------------------------------------------------------------------------------------ score
@dataclass(eq=False)
class _ProposalState:
    """The proposal of one truth, decoded and matched (shared by the rollouts of a group), with what the
    group's rollouts can share: each proposed instance's point table per target, and each distinct
    refinement line's result (a group's rollouts often repeat a line)."""

    lines: list[str]
    geometries: list[Geometry]
    instances: list[Instance]
    matching: Matching
    moves: dict = field(default_factory=dict)  # instance -> _InstanceMoves
    points: dict = field(default_factory=dict)  # (instance, target) -> _PointTable
    before: dict = field(default_factory=dict)  # (instance, target) -> (mask IoU, box IoU) of the proposal
    results: dict = field(default_factory=dict)  # (instance, line, settings) -> _score_refined's result


#: Distinct refinement lines remembered per proposal (a group has at most G x instances of them).
_RESULTS_PER_PROPOSAL = 512


@dataclass(frozen=True, eq=False)
class _PointTable:
    """:func:`refine_point_scores` for one proposed instance and target, as lookups: the score of each
    proposed point kept after each move (``kept_value``, ``(K, M)`` in :func:`reachable_positions`' move
    order: +1 ends inside, -1 leaves, 0 stays outside) and whether any move reaches the target
    (``salvageable``, ``(K,)``: what a ``<DELETE>`` scores against)."""

    kept_value: np.ndarray
    salvageable: np.ndarray

    @classmethod
    def from_moves(cls, mv: _InstanceMoves, target_mask: np.ndarray, origin) -> _PointTable:
        k, m = mv.pos.shape[:2]
        inside = points_in_mask(np.concatenate([mv.start, mv.pos.reshape(-1, 2)]), target_mask, origin)
        start, land = inside[:k], inside[k:].reshape(k, m)
        return cls(kept_scores(start[:, None], land), land.any(axis=1))

    def mean_score(self, move: np.ndarray, deleted: np.ndarray, bad_delete: float) -> float:
        """The mean of :func:`refine_point_scores` for this instance's refinement (``move``: each point's
        index in :func:`reachable_positions`' move order)."""
        kept = self.kept_value[np.arange(len(move)), move]
        if deleted.any():
            kept = np.where(deleted, delete_scores(self.salvageable, bad_delete), kept)
        return float(kept.sum()) / len(kept)


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


@dataclass(frozen=True, eq=False)
class _InstanceMoves:
    """Where each proposed point of one instance can go: ``pos`` ``(K, M, 2)`` the clipped positions
    (:func:`reachable_positions`' move order) and, for the ``raster`` decoder with a step of ``1 / m``
    cell, ``blocks`` ``(K, M, m * m)`` the sub-cells (row-major on the ``n m`` grid, ``-1`` off the grid)
    its shifted cell square covers — so a refinement line becomes lookups (the same values as decoding
    it with the codec and :func:`~getok.ops.raster.raster_cells`; a test compares them)."""

    start: np.ndarray
    pos: np.ndarray
    blocks: np.ndarray | None
    big: int

    @classmethod
    def build(cls, g: Geometry, start: np.ndarray, r: int, step: float, with_blocks: bool) -> _InstanceMoves:
        pos = moved_positions(start, r, g.grid_n, g.size, step)
        m = int(round(1.0 / step))
        blocks, big = None, 0
        if with_blocks and m >= 1 and abs(1.0 / step - m) < 1e-9:
            big = g.grid_n * m
            # (K, M, 2): first sub-cell of each cell's square after each move
            flat, ok = shifted_squares(m * g.cells[:, None, :] + offset_moves(r)[None], m, big)
            blocks = np.where(ok, flat, -1).reshape(len(g.cells), pos.shape[1], m * m)
        return cls(start, pos, blocks, big)


def _refined_instances(answer, state: _ProposalState, session, c: GridOffsetCodec, truth, cfg) -> list[tuple]:
    """``(n_cells, n_deleted, matched, values)`` per proposed instance of a refinement answer (values
    ``None`` for an unmatched instance that is not scored); raises :class:`DecodeError` as
    :meth:`~getok.codecs.grid_offset.GridOffsetCodec.decode_refinement` does.

    A line seen before for the same instance of the same proposal reuses its result (the rollouts of a
    group share the proposal); a new line is decoded alone and scored through the instance's point table.
    """
    if not state.geometries:
        c.decode_refinement(answer, state.geometries)  # only "none" fits an empty proposal
        return []
    body = answer.strip() if isinstance(answer, str) else ""
    lines = [ln.strip() for ln in body.split("\n") if ln.strip()]
    if not body or len(lines) != len(state.geometries):
        c.decode_refinement(answer, state.geometries)  # raises with the codec's reason
        raise DecodeError(f"refinement has {len(lines)} lines for {len(state.geometries)} instances", "count_mismatch")
    r = c.config.r
    tgt_of = state.matching.target_of()
    rows = c._refinement_table()[1]
    out = []
    for i, line in enumerate(lines):
        rk = (i, line, cfg.bad_delete, cfg.unmatched_as_empty)
        res = state.results.get(rk)
        if res is None:
            g_ref, move = _lookup_refinement(line, i, state, session, c, rows)
            if g_ref is None:  # tokens outside the table, a count mismatch: the codec decides (and names the error)
                (g_ref,) = c.decode_refinement(line, [state.geometries[i]])
            res = _score_refined(i, line, g_ref, move, state, session, truth, cfg, r, tgt_of)
            if len(state.results) >= _RESULTS_PER_PROPOSAL:
                state.results.clear()
            state.results[rk] = res
        out.append(res)
    return out


def _moves_of(i: int, state: _ProposalState, session, r: int, step: float) -> _InstanceMoves:
    mv = state.moves.get(i)
    if mv is None:
        g, init = state.geometries[i], state.instances[i]
        start = init.points if len(init.points) == len(g.cells) else cell_centers(g.cells, g.grid_n, g.size)
        mv = state.moves[i] = _InstanceMoves.build(g, start, r, step, with_blocks=session._crops is raster_crop)
    return mv


def _bodies(c: GridOffsetCodec) -> dict:
    """``{token body: row}`` of the codec's refinement table (``"off_0_0"`` for ``<off_0_0>``), cached on it."""
    bodies = c.__dict__.get("_refine_bodies")
    if bodies is None:
        bodies = c.__dict__["_refine_bodies"] = {t[1:-1]: k for t, k in c._refinement_table()[0].items()}
    return bodies


def _lookup_refinement(line: str, i: int, state: _ProposalState, session, c: GridOffsetCodec, rows):
    """``(geometry, move)``: the refined geometry of instance ``i`` and each point's move index, by table
    lookups (``(None, None)``: let the codec decode the line)."""
    g = state.geometries[i]
    if g.cells is None or g.grid_n != c.n:
        return None, None
    if not (line.startswith("<") and line.endswith(">")):
        return None, None
    # "<a><b>" -> "a", "b": a body that is not exactly a table token (stray text, whitespace, another
    # token) misses the table and the codec decides
    bodies = _bodies(c)
    idx = [bodies.get(t, -1) for t in line[1:-1].split("><")]
    if len(idx) != len(g.cells) or -1 in idx:
        return None, None
    r, step = c.config.r, c.config.step
    arr = rows[np.fromiter(idx, dtype=np.int64, count=len(idx))]
    offs, dele = arr[:, :2], arr[:, 2].astype(bool)
    move = move_index(offs, r)
    mv = _moves_of(i, state, session, r, step)
    keep = ~dele
    points = mv.pos[keep, move[keep]]
    return g._derive(grid_n=c.n, offsets=offs, deleted=dele, offset_step=float(step), points=points), move


def _refined_instance(key: str, g_ref: Geometry, move, state: _ProposalState, i: int, session) -> Instance:
    """:meth:`DecoderSession.instance` of a refined geometry; from the sub-cell blocks when available."""
    mv = state.moves.get(i)
    if move is None or mv is None or mv.blocks is None:
        return session.instance(key, g_ref)
    keep = ~g_ref.deleted
    if not np.any(g_ref.offsets[keep]):  # nothing moves: the plain cells (as raster_cells)
        cells = g_ref.cells[keep]
        idx, grid = cells[:, 1] * g_ref.grid_n + cells[:, 0], g_ref.grid_n
    else:
        idx = mv.blocks[keep, move[keep]].reshape(-1)
        idx, grid = idx[idx >= 0], mv.big
    return Instance.from_cells(key, g_ref, idx, grid, points=g_ref.points)


def _score_refined(i, line, g_ref, move, state, session, truth, cfg, r, tgt_of) -> tuple:
    init = state.instances[i]
    # not cached in the session: the proposal state's results cache already keys on (instance, line)
    ref = _refined_instance(init.key + "|" + line, g_ref, move, state, i, session)
    n_cells = len(g_ref.cells)
    n_del = int(g_ref.deleted.sum())
    j = tgt_of.get(i)
    if j is None and not cfg.unmatched_as_empty:
        return n_cells, n_del, False, None
    tgt = truth.targets[j] if j is not None else None
    if tgt is None:
        point = float(g_ref.deleted.mean())  # nothing to be inside: deletes are valid, moves end outside
    else:
        table = state.points.get((i, j))
        if table is None:
            mv = _moves_of(i, state, session, r, g_ref.offset_step)
            table = state.points[(i, j)] = _PointTable.from_moves(mv, tgt.crop_mask, tgt.origin)
        point = table.mean_score(move_index(g_ref.offsets, r) if move is None else move, g_ref.deleted, cfg.bad_delete)
    before = state.before.get((i, j))  # the proposed instance's IoUs: the same for every line
    if before is None:
        before = state.before[(i, j)] = (target_iou(init, tgt), _box_iou(init, tgt))
    iou_i, box_i = before
    iou_r = target_iou(ref, tgt)
    box = normalized_gain(_box_iou(ref, tgt), box_i)
    vals = (point, box, normalized_gain(iou_r, iou_i), iou_i, iou_r)
    return n_cells, n_del, j is not None, vals


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
        if not isinstance(proposal, str):  # a pipeline's malformed proposal column, not a truth error
            return invalid_score(STAGE2_KEYS, "bad_proposal", n_gt)
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
        results = _refined_instances(answer, state, session, c, truth, cfg)
    except DecodeError as exc:
        return invalid_score(STAGE2_KEYS, exc.reason, n_gt)
    except GetokError as exc:
        return invalid_score(STAGE2_KEYS, type(exc).__name__, n_gt)

    m = state.matching
    point_vals, box_vals, gain_vals, init_vals, ref_vals = [], [], [], [], []
    unmatched_point, unmatched_box, unmatched_gain, unmatched_init, unmatched_ref = [], [], [], [], []
    n_points = n_deleted = 0
    for n_cells, n_del, matched, vals in results:
        n_points += n_cells
        n_deleted += n_del
        if vals is None:
            continue
        lists = (
            (point_vals, box_vals, gain_vals, init_vals, ref_vals)
            if matched
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
        n_pred=float(len(results)),
        n_gt=float(n_gt),
        invalid=0.0,
        reason="",
    )
    return out
