"""Multi-turn self-correction: propose with grid cells, then refine with offsets / ``<DELETE>`` for K - 1 turns.

Protocol (``getok eval --turns K``, codec ``grid_offset``, mask samples):

1. **Turn 1 proposes.** The prompt is the sample's first user message; the answer is grid cells
   (``grid_offset``'s mask answer: one line of cells per instance). An invalid or ``none`` proposal ends the
   sample there (later turns repeat turn 1's record, flagged ``skipped="no_proposal"``; nothing is asked).
2. **Turn t >= 2 refines.** The conversation so far (the model's previous answers verbatim, each followed
   by the refine prompt — the offset builder's turn-2 wording,
   :data:`getok.data_builders.offsets.DEFAULT_REFINE`) is sent; the model answers one offset token or
   ``<DELETE>`` per **originally proposed** cell, one line per proposed instance
   (:meth:`~getok.codecs.grid_offset.GridOffsetCodec.decode_refinement` against the turn-1 proposal).
3. **State.** Offsets accumulate: a point's position after turn t is its cell centre moved by the *sum* of
   its offsets so far (``offset_step`` cells each), clipped to the image once. Deletions are sticky: a
   deleted point stays deleted whatever later turns say (a later non-``<DELETE>`` token on it is counted
   as ``revive_ignored``). The mask of a turn is the decoder's mask of the state (cells, summed offsets,
   deleted).
4. **Invalid refinements** (wrong token count, stray text, ...) are counted per turn
   (``refine_invalid``). ``on_invalid="keep"`` (default) keeps the previous state, as a deployed system
   would fall back to it; ``"zero"`` scores that turn as an invalid output (IoU 0) and still keeps the
   state for the next turn.

Per turn: mIoU (gIoU), cIoU, Acc@0.5 (:func:`getok.eval.metrics.summarize` with the chosen empty-target
convention), and how many samples improved / got worse / stayed (IoU vs the previous turn, tolerance
1e-9). Per point, over the points alive before the turn, against the **matched** target instance (each
proposed instance is matched to one target by Hungarian assignment on mask IoU, ties broken by centroid
distance; an unmatched instance has an empty target):

* ``into`` (moved, was off the mask, now on it), ``out_of`` (moved, was on, now off), ``moved_inside``,
  ``moved_outside``, ``kept_inside`` / ``kept_outside`` (offset ``(0, 0)``);
* ``valid_delete`` / ``invalid_delete``: a deletion is valid when no position reachable by one move from
  the point's position before the turn (every offset of the codec, the null move included, clipped to the
  image) lies on the mask — at turn 2 exactly the stage-2 reward's rule
  (:func:`getok.rl.rewards_stage2.refine_point_scores`), later turns from the moved position;
* ``point_score``: the stage-2 per-point score (+1 ends on the mask or valid delete, -1 a move leaves the
  mask, 0 otherwise), averaged over points.

A point is *on* the mask when its pixel ``(min(floor y, H-1), min(floor x, W-1))`` is.

Baselines in the same report: **no refinement** (turn 1) and an **oracle refinement** that answers the
offset builder's labels (:func:`getok.data_builders.offsets.label_points` — Inside / Ring move /
Far / Hard-Delete) from the current positions, for the same number of turns, on the model's own proposal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..answers import extract_answer
from ..codecs.base import DecodeResult, get_codec
from ..data_builders.offsets import DEFAULT_REFINE, BandConfig, label_points
from ..errors import ConfigError, DecodeError
from ..geometry import Geometry
from ..ops.grid import apply_offsets
from ..ops.masks import mask_iou_matrix
from ..ops.matching import match
from ..ops.points import points_in_mask
from ..ops.refine import moved_positions, point_scores
from ..samples import Sample, Turn
from .constrained import grammar_for, refinement_grammar
from .scoring import describe_sample, instance_masks, score_answer, truth_masks
from .selfcorrect_summary import POINT_KEYS, selfcorrect_markdown, summarize_selfcorrect, turn_deltas

__all__ = [
    "SelfCorrectConfig",
    "RefineState",
    "POINT_KEYS",
    "match_targets",
    "account_points",
    "oracle_refinement",
    "run_selfcorrect",
    "summarize_selfcorrect",
    "selfcorrect_markdown",
    "turn_deltas",
]


ON_INVALID = ("keep", "zero")


@dataclass(frozen=True)
class SelfCorrectConfig:
    """Settings of the self-correction protocol (module docstring).

    Parameters
    ----------
    turns : int
        Total turns K (1 proposal + K - 1 refinements), ``>= 2``.
    refine_prompt : str
        The user message of every refinement turn (default: the offset builder's).
    on_invalid : {"keep", "zero"}
        How a refinement that does not parse is scored.
    oracle : bool
        Also run the oracle refinement baseline.
    context : {"raw", "answer"}
        What of the model's previous answers goes into the conversation: the generated text verbatim, or
        only the answer (envelope removed).
    bands : BandConfig, optional
        Band widths of the oracle's labels.
    """

    turns: int = 2
    refine_prompt: str = DEFAULT_REFINE
    on_invalid: str = "keep"
    oracle: bool = True
    context: str = "raw"
    bands: BandConfig | None = None

    def __post_init__(self) -> None:
        if int(self.turns) < 2:
            raise ConfigError(f"SelfCorrectConfig.turns must be >= 2, got {self.turns}")
        if self.on_invalid not in ON_INVALID:
            raise ConfigError(f"SelfCorrectConfig.on_invalid must be one of {ON_INVALID}, got {self.on_invalid!r}")
        if self.context not in ("raw", "answer"):
            raise ConfigError(f"SelfCorrectConfig.context must be 'raw' or 'answer', got {self.context!r}")
        if not isinstance(self.refine_prompt, str) or not self.refine_prompt.strip():
            raise ConfigError("SelfCorrectConfig.refine_prompt must be a non-empty string")


# ------------------------------------------------------------------------------------------------ state
@dataclass
class RefineState:
    """A proposal and its accumulated refinement.

    Attributes
    ----------
    proposal : list of Geometry
        Turn 1's instances (``cells`` on the ``grid_n`` grid).
    offsets : list of (K_i, 2) int64
        Summed offsets ``(dx, dy)`` in steps, per proposed cell.
    deleted : list of (K_i,) bool
        Sticky deletions.
    step : float
        Offset step as a fraction of a cell.
    """

    proposal: list[Geometry]
    offsets: list[np.ndarray]
    deleted: list[np.ndarray]
    step: float

    @classmethod
    def initial(cls, proposal: Sequence[Geometry], step: float) -> RefineState:
        props = [g.replace(offsets=None, deleted=None, points=None) for g in proposal]
        for i, g in enumerate(props):
            if g.cells is None or not len(g.cells):
                raise ConfigError(f"proposal instance {i} has no cells")
        return cls(
            props,
            [np.zeros((len(g.cells), 2), dtype=np.int64) for g in props],
            [np.zeros(len(g.cells), dtype=bool) for g in props],
            float(step),
        )

    def counts(self) -> tuple[int, ...]:
        """Proposed cells per instance (the refinement answer's token count per line)."""
        return tuple(len(g.cells) for g in self.proposal)

    def positions(self, i: int, offsets: np.ndarray | None = None) -> np.ndarray:
        """Positions ``(K_i, 2)`` XY pixels of instance ``i``'s points (deleted ones included)."""
        g = self.proposal[i]
        return apply_offsets(g.cells, g.grid_n, g.size, self.offsets[i] if offsets is None else offsets, self.step)

    def geometries(self) -> list[Geometry]:
        """The state as refined instances (what the mask decoder sees)."""
        out = []
        for g, o, d in zip(self.proposal, self.offsets, self.deleted):
            r = g.replace(offsets=o.copy(), deleted=d.copy(), offset_step=self.step, points=None)
            out.append(r.replace(points=r.refined_points()))
        return out

    def apply(self, turn: Sequence[Geometry]) -> RefineState:
        """The state after one refinement turn (instances with per-turn ``offsets`` and ``deleted``)."""
        if len(turn) != len(self.proposal):
            raise ConfigError(f"refinement has {len(turn)} instances for {len(self.proposal)} proposed")
        offs, dels = [], []
        for o, d, t in zip(self.offsets, self.deleted, turn):
            to = np.zeros_like(o) if t.offsets is None else np.asarray(t.offsets, dtype=np.int64)
            td = np.zeros_like(d) if t.deleted is None else np.asarray(t.deleted, dtype=bool)
            move = ~d & ~td
            offs.append(o + np.where(move[:, None], to, 0))
            dels.append(d | td)
        return dataclasses.replace(self, offsets=offs, deleted=dels)


# ------------------------------------------------------------------------------------------------ maths
def match_targets(pred_masks: np.ndarray, gt_masks: np.ndarray, centroids: np.ndarray | None = None) -> list[int]:
    """Target index of each proposed instance (``-1``: unmatched), Hungarian on mask IoU.

    Parameters
    ----------
    pred_masks : (K, H, W) bool
    gt_masks : (G, H, W) bool
    centroids : (K, 2) float, optional
        XY of each proposed instance (e.g. the mean of its cell centres): ties at equal IoU (also IoU 0)
        go to the target whose centroid is nearest.

    >>> a = np.zeros((1, 4, 4), bool); a[0, :2, :2] = True
    >>> b = np.zeros((2, 4, 4), bool); b[0, 2:, 2:] = True; b[1, :2, :] = True
    >>> match_targets(a, b)
    [1]
    """
    k, g = len(pred_masks), len(gt_masks)
    if k == 0 or g == 0:
        return [-1] * k
    sim = mask_iou_matrix(pred_masks, gt_masks, empty=0.0)
    if centroids is not None:
        h, w = gt_masks.shape[1:]
        tc = np.zeros((g, 2))
        for j in range(g):
            ys, xs = np.nonzero(gt_masks[j])
            tc[j] = (xs.mean() + 0.5, ys.mean() + 0.5) if len(xs) else (np.inf, np.inf)
        d = np.linalg.norm(np.asarray(centroids, dtype=np.float64)[:, None, :] - tc[None, :, :], axis=2)
        sim = sim - 1e-6 * np.minimum(d / np.hypot(h, w), 1.0)
    out = [-1] * k
    for r, c in match(sim).pairs.tolist():
        out[r] = c
    return out


def _target(targets: Sequence[np.ndarray | None], i: int, size) -> np.ndarray:
    m = targets[i] if i < len(targets) else None
    return np.zeros(tuple(size), dtype=bool) if m is None else m


def account_points(prev: RefineState, turn: Sequence[Geometry], targets: Sequence[np.ndarray | None], r: int) -> dict:
    """Per-point counters of one refinement turn (:data:`POINT_KEYS` and ``point_score_sum``).

    Parameters
    ----------
    prev : RefineState
        The state before the turn.
    turn : sequence of Geometry
        This turn's refinement (per-turn ``offsets`` / ``deleted``, aligned with the proposal).
    targets : sequence of (H, W) bool or None
        The matched target mask of each proposed instance (``None``: unmatched, an empty target).
    r : int
        The codec's offset radius (the reach of a move).
    """
    c = dict.fromkeys(POINT_KEYS, 0)
    score_sum = 0.0
    for i, (g, t) in enumerate(zip(prev.proposal, turn)):
        mask = _target(targets, i, g.size)
        k = len(g.cells)
        to = np.zeros((k, 2), dtype=np.int64) if t.offsets is None else np.asarray(t.offsets, dtype=np.int64)
        td = np.zeros(k, dtype=bool) if t.deleted is None else np.asarray(t.deleted, dtype=bool)
        was_del = prev.deleted[i]
        alive = ~was_del
        c["revive_ignored"] += int(np.count_nonzero(was_del & ~td))
        c["points"] += int(np.count_nonzero(alive))
        pos0 = prev.positions(i)
        pos1 = prev.positions(i, prev.offsets[i] + to)
        in0 = points_in_mask(pos0, mask)
        in1 = points_in_mask(pos1, mask)
        moved = np.any(to != 0, axis=1)
        dele = alive & td
        keep = alive & ~td
        salvage = np.zeros(k, dtype=bool)
        if dele.any():  # a delete is valid when no one-move position (null move included) is on the mask
            reach = moved_positions(pos0[dele], r, g.grid_n, g.size, prev.step)
            salvage[dele] = points_in_mask(reach.reshape(-1, 2), mask).reshape(reach.shape[:2]).any(axis=1)
            c["valid_delete"] += int(np.count_nonzero(dele & ~salvage))
            c["invalid_delete"] += int(np.count_nonzero(dele & salvage))
        m, s = keep & moved, keep & ~moved
        c["into"] += int(np.count_nonzero(m & ~in0 & in1))
        c["out_of"] += int(np.count_nonzero(m & in0 & ~in1))
        c["moved_inside"] += int(np.count_nonzero(m & in0 & in1))
        c["moved_outside"] += int(np.count_nonzero(m & ~in0 & ~in1))
        c["kept_inside"] += int(np.count_nonzero(s & in0))
        c["kept_outside"] += int(np.count_nonzero(s & ~in0))
        score_sum += float(point_scores(in0, in1, td, salvage)[alive].sum())  # the stage-2 reward's rule
    c["point_score_sum"] = score_sum
    return c


def oracle_refinement(state: RefineState, targets: Sequence[np.ndarray | None], r: int, bands: BandConfig | None = None) -> list[Geometry]:
    """One oracle turn: the offset builder's label of every live point at its current position.

    Returns the per-turn refinement (``offsets``, ``deleted`` per proposed cell; already deleted points
    answer ``<DELETE>``), in the form :meth:`RefineState.apply` and :func:`account_points` take.
    """
    out = []
    for i, g in enumerate(state.proposal):
        mask = _target(targets, i, g.size)
        k = len(g.cells)
        offs = np.zeros((k, 2), dtype=np.int64)
        dele = state.deleted[i].copy()
        alive = ~dele
        if alive.any():
            lab = label_points(mask, state.positions(i)[alive], g.grid_n, r, state.step, bands)
            offs[alive] = lab.offsets
            dele[alive] = lab.deleted
        out.append(g.replace(offsets=offs, deleted=dele, offset_step=state.step, points=None))
    return out


# ------------------------------------------------------------------------------------------------ running
def _centroids(geoms: Sequence[Geometry]) -> np.ndarray:
    return np.asarray([g.cell_centers().mean(axis=0) for g in geoms], dtype=np.float64).reshape(-1, 2)


def _history_text(text: str, context: str) -> str:
    return text.strip() if context == "raw" else extract_answer(text)


def run_selfcorrect(
    samples: Sequence[Sample],
    generate_fn,
    *,
    codec,
    decoder,
    images: Sequence[np.ndarray | None],
    cfg: SelfCorrectConfig,
    constrained: bool = False,
    max_new_tokens: int = 128,
    count_tokens: Callable[[str], int] | None = None,
    boundary: bool = True,
    gt_masks: Sequence[np.ndarray] | None = None,
) -> list[dict]:
    """Run the protocol on a batch of samples; one record per sample (module docstring).

    Parameters
    ----------
    samples : sequence of Sample
        Mask samples (their first user message is turn 1's prompt).
    generate_fn : GenerateFn
        ``generate_fn(samples, turns_context=..., constrained=..., max_new_tokens=...) -> list[str]``.
    codec : str or GridOffsetCodec
    decoder : MaskDecoder
    images : sequence of (H, W, 3) uint8 or None
        Each sample's image for the decoder (``None`` for decoders that need only the size).
    cfg : SelfCorrectConfig
    constrained : bool
        Grammar-constrained generation (turn 1: cells; refinements: the exact token count per cell).
    max_new_tokens : int
        Budget of turn 1; refinement turns get at least what the proposal needs.
    count_tokens : callable, optional
    boundary : bool
    gt_masks : sequence of (G, H, W) bool, optional
        Target masks (default: decoded from each sample's truth).

    Returns
    -------
    list of dict
        The final turn's record fields at the top level, plus ``turns`` (one record per turn),
        ``points`` (point counters of turns 2..K), ``oracle`` / ``oracle_points`` (the baseline, turns
        2..K) and ``proposal_targets`` (the matched target of each proposed instance).
    """

    c = get_codec(codec)
    if c.name != "grid_offset":
        raise ConfigError(f"self-correction needs a grid_offset codec (grid proposal + offsets), got {c.spec!r}")
    r, step = c.config.r, c.config.step
    samples = list(samples)
    gts = [truth_masks(s) for s in samples] if gt_masks is None else list(gt_masks)
    env = [s.answer.lstrip().startswith("<think>") for s in samples]
    for s in samples:
        if s.kind != "mask":
            raise ConfigError(f"sample {s.sample_id}: self-correction evaluates mask answers, not {s.kind!r}")

    def set_image(i: int) -> None:
        decoder.set_image(images[i], size=samples[i].size, key=samples[i].image_id)

    # ---- turn 1: the proposal
    ctx = [[Turn(s.turns[0].user, "")] for s in samples]
    grammars = [grammar_for(c, "mask", envelope=e) for e in env] if constrained else None
    outs = generate_fn(samples, turns_context=ctx, constrained=grammars, max_new_tokens=max_new_tokens)
    _check_outputs(outs, len(samples))
    recs: list[list[dict]] = []
    oracle_recs: list[list[dict]] = []
    points: list[list[dict]] = []
    oracle_points: list[list[dict]] = []
    states: list[RefineState | None] = []
    ostates: list[RefineState | None] = []
    targets: list[list[np.ndarray | None]] = []
    target_idx: list[list[int]] = []
    history: list[list[Turn]] = []
    for i, s in enumerate(samples):
        set_image(i)
        rec, geoms, _ = score_answer(
            s, outs[i], codec=c, decoder=decoder, gt_masks=gts[i], count_tokens=count_tokens, boundary=boundary,
            turn=1, prediction=outs[i],
        )  # fmt: skip
        recs.append([rec])
        oracle_recs.append([])
        points.append([])
        oracle_points.append([])
        history.append([Turn(s.turns[0].user, _history_text(outs[i], cfg.context))])
        if rec["valid"] and geoms:
            st = RefineState.initial(geoms, step)
            masks = instance_masks(decoder, geoms, s.size)
            idx = match_targets(masks, gts[i], _centroids(geoms))
            states.append(st)
            ostates.append(st if cfg.oracle else None)
            target_idx.append(idx)
            targets.append([gts[i][j] if j >= 0 else None for j in idx])
        else:
            states.append(None)
            ostates.append(None)
            target_idx.append([])
            targets.append([])

    # ---- turns 2..K: refinements
    for t in range(2, int(cfg.turns) + 1):
        active = [i for i, st in enumerate(states) if st is not None]
        outs_t: dict[int, str] = {}
        if active:
            act = [samples[i] for i in active]
            ctx = [history[i] + [Turn(cfg.refine_prompt, "")] for i in active]
            need = max(sum(states[i].counts()) + 2 * len(states[i].counts()) + 8 + (64 if env[i] else 0) for i in active)
            gr = [refinement_grammar(c, states[i].counts(), envelope=env[i]) for i in active] if constrained else None
            got = generate_fn(act, turns_context=ctx, constrained=gr, max_new_tokens=max(int(max_new_tokens), need))
            _check_outputs(got, len(act))
            outs_t = dict(zip(active, got))
        for i, s in enumerate(samples):
            st = states[i]
            if st is None:
                prev = dict(recs[i][-1])
                prev.update(turn=t, skipped="no_proposal", prediction=None)
                recs[i].append(prev)
                continue
            set_image(i)
            text = outs_t[i]
            history[i].append(Turn(cfg.refine_prompt, _history_text(text, cfg.context)))
            _, res = _decode_refinement(text, c, st)
            override = None
            if res.valid:
                pts = account_points(st, res.geometries, targets[i], r)
                st = st.apply(res.geometries)
                states[i] = st
                points[i].append({"turn": t, "refine_valid": True, **pts})
            else:
                points[i].append({"turn": t, "refine_valid": False, **dict.fromkeys(POINT_KEYS, 0), "point_score_sum": 0.0})
                if cfg.on_invalid == "zero":
                    override = (False, res.error.reason)
            rec, _, _ = score_answer(
                s, text, codec=c, decoder=decoder, gt_masks=gts[i], geometries=st.geometries(),
                count_tokens=count_tokens, boundary=boundary, valid_override=override, turn=t, prediction=text,
                refine_valid=res.valid, refine_reason=None if res.valid else res.error.reason,
            )  # fmt: skip
            recs[i].append(rec)
            # oracle baseline
            ost = ostates[i]
            if ost is not None:
                turn_geoms = oracle_refinement(ost, targets[i], r, cfg.bands)
                opts = account_points(ost, turn_geoms, targets[i], r)
                ost = ost.apply(turn_geoms)
                ostates[i] = ost
                orec, _, _ = score_answer(
                    s, "", codec=c, decoder=decoder, gt_masks=gts[i], geometries=ost.geometries(),
                    count_tokens=count_tokens, boundary=boundary, turn=t, prediction=c.encode_refinement(turn_geoms),
                )  # fmt: skip
                oracle_recs[i].append(orec)
                oracle_points[i].append({"turn": t, "refine_valid": True, **opts})

    out = []
    for i, s in enumerate(samples):
        final = recs[i][-1]
        top = {**describe_sample(s), **{k: v for k, v in final.items() if k not in ("turn",)}, "codec": c.spec}
        top["prediction"] = recs[i][0]["prediction"] if final.get("prediction") is None else final["prediction"]
        top["turns"] = recs[i]
        top["points"] = points[i]
        top["oracle"] = oracle_recs[i]
        top["oracle_points"] = oracle_points[i]
        top["proposal_targets"] = target_idx[i]
        top["n_turns"] = int(cfg.turns)
        out.append(top)
    return out


def _decode_refinement(text: str, codec, state: RefineState):
    """``(answer, DecodeResult)`` of a refinement answer against the turn-1 proposal."""

    try:
        answer = extract_answer(text)
    except DecodeError as exc:
        return "", DecodeResult([], exc)
    return answer, codec.try_decode_refinement(answer, state.proposal)


def _check_outputs(outs, n: int) -> None:
    if not isinstance(outs, (list, tuple)) or len(outs) != n:
        raise ConfigError(f"generate_fn returned {type(outs).__name__} of length {len(outs) if hasattr(outs, '__len__') else '?'} for {n} samples")
