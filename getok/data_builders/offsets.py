"""Offset-aware samples: noisy proposals of grid cells and two-turn refinement samples (one offset token or
``<DELETE>`` per proposed cell).

DESIGN.md, "Offset-aware samples". A training pair (:func:`offset_sample`) shows a *noisy proposal* —
cells drawn from the true (greedy) cells, jittered copies of them and distractor cells (other objects,
background), topped up from the whole grid — subsampled to ``k`` cells with band weights biased to Inside
and Ring, and answers one offset token or ``<DELETE>`` per proposed cell, in the proposal's (row-major)
order.

A proposed cell's answer is its refinement label: its band (Inside, Ring, Far, Hard-Delete) and deepest
one-step move, computed in :mod:`~getok.data_builders.offset_bands`, whose names are importable from here
too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..codecs import get_codec
from ..codecs.grid_offset import GridOffsetCodec
from ..errors import ConfigError, GeometryError
from ..geometry import Geometry
from ..ops.boxes import mask_to_box
from ..ops.grid import index_to_cells, points_to_cells
from ..ops.masks import as_mask, rle_encode
from ..ops.refine import landing_pixels
from ..samples import IMAGE_PLACEHOLDER, Sample, Turn
from .offset_bands import (  # also importable from here
    BAND_NAMES,
    FAR,
    HARD_DELETE,
    INSIDE,
    RING,
    BandConfig,
    PointLabels,
    _grid,
    _label_points,
    label_grid,
    label_points,
    step_pixels,
)

__all__ = [
    "INSIDE",
    "RING",
    "FAR",
    "HARD_DELETE",
    "BAND_NAMES",
    "BandConfig",
    "PointLabels",
    "OffsetConfig",
    "OffsetProposal",
    "step_pixels",
    "label_points",
    "label_grid",
    "noisy_proposal",
    "offset_geometry",
    "offset_sample",
]


@dataclass(frozen=True)
class OffsetConfig:
    """Settings of offset-aware samples (grid n, r and step come from the ``grid_offset`` codec).

    Attributes
    ----------
    k : int
        Proposed cells per target (fewer only when the grid has fewer candidates).
    band_weights : (4,) float
        Relative weights of Inside, Ring, Far, Hard-Delete when subsampling the proposal: the expected
        share of each band among the ``k`` cells (a band with no candidates passes its weight on).
    p_true : float
        Share of the true (greedy) cells kept in the noisy proposal before subsampling.
    n_jitter : int
        Jittered copies of true cells (moved by up to ``jitter`` cells in x and y, not zero).
    jitter : int
    n_distractors : int
        Cells drawn from ``distractor_mask`` (other objects) or, without one, from the background.
    inside_steps, far_steps : float, optional
        Band widths (:class:`BandConfig`).
    """

    k: int = 16
    band_weights: tuple[float, float, float, float] = (0.35, 0.35, 0.1, 0.2)
    p_true: float = 0.8
    n_jitter: int = 4
    jitter: int = 1
    n_distractors: int = 2
    inside_steps: float | None = None
    far_steps: float | None = None

    def __post_init__(self):
        if self.k < 1:
            raise ConfigError(f"offsets.k must be >= 1, got {self.k}")
        bw = tuple(float(v) for v in self.band_weights)
        if len(bw) != 4 or not all(math.isfinite(v) and v >= 0 for v in bw) or sum(bw) <= 0:
            raise ConfigError(f"offsets.band_weights must be 4 non-negative numbers with a positive sum, got {self.band_weights}")
        object.__setattr__(self, "band_weights", bw)
        if not 0 <= self.p_true <= 1:
            raise ConfigError(f"offsets.p_true must be in [0, 1], got {self.p_true}")
        if self.n_jitter < 0 or self.n_distractors < 0:
            raise ConfigError("offsets.n_jitter and offsets.n_distractors must be >= 0")
        if self.jitter < 1:
            raise ConfigError(f"offsets.jitter must be >= 1, got {self.jitter}")
        BandConfig(self.inside_steps, self.far_steps)

    @property
    def bands(self) -> BandConfig:
        return BandConfig(self.inside_steps, self.far_steps)


@dataclass
class OffsetProposal:
    """A noisy proposal and its refinement labels.

    Attributes
    ----------
    cells : (K, 2) int64
        Proposed cells ``(cx, cy)``, row-major sorted (the order the codec writes them).
    labels : PointLabels
        Aligned with ``cells``.
    source : (K,) str
        ``"true"``, ``"jitter"``, ``"distractor"`` or ``"grid"`` (the top-up).
    """

    cells: np.ndarray
    labels: PointLabels
    source: np.ndarray

    def band_counts(self) -> dict[str, int]:
        return {name: int((self.labels.band == b).sum()) for b, name in enumerate(BAND_NAMES)}


def _weighted_pick(candidates: np.ndarray, band: np.ndarray, weights, k: int, rng: np.random.Generator) -> np.ndarray:
    """Pick up to ``k`` of ``candidates`` (flat indices) without replacement so that the expected band
    shares follow ``weights`` (weight of a candidate = band weight / candidates in that band)."""
    if len(candidates) <= k:
        return candidates
    b = band[candidates]
    counts = np.bincount(b, minlength=4).astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w = np.where(counts > 0, w, 0.0)
    if w.sum() <= 0:
        w = (counts > 0).astype(np.float64)
    per = np.where(counts > 0, w / np.maximum(counts, 1), 0.0)[b]
    pos = np.flatnonzero(per > 0)
    # Efraimidis–Spirakis weighted sampling without replacement: the k largest keys u^(1/w)
    keys = np.log(rng.random(len(pos))) / per[pos]
    chosen = pos if len(pos) <= k else pos[np.argpartition(-keys, k - 1)[:k]]
    if len(chosen) < k:  # only zero-weight candidates left: take them in random order
        zero = rng.permutation(np.flatnonzero(per <= 0))
        chosen = np.concatenate([chosen, zero[: k - len(chosen)]])
    return candidates[chosen]


def noisy_proposal(
    mask,
    n: int,
    r: int,
    step: float,
    cfg: OffsetConfig | None = None,
    *,
    true_cells=None,
    distractor_mask=None,
    rng: np.random.Generator | int | None = None,
    anchor=None,
) -> OffsetProposal:
    """A noisy proposal of ``cfg.k`` cells for ``mask`` with its refinement labels.

    Parameters
    ----------
    mask : (H, W) bool
        The target (non-empty).
    n, r, step : the ``grid_offset`` codec's grid, radius and step.
    cfg : OffsetConfig, optional
    true_cells : (K0, 2) int, optional
        The stage-1 answer for the target (greedy cells); default: cells whose grid point is on the mask.
    distractor_mask : (H, W) bool, optional
        Other objects, where distractor cells come from (default: the background).
    rng : numpy Generator or seed
    anchor : ((cx, cy), (dx, dy)), optional
        A cell that is always proposed (source ``"anchor"``), and the move that refines it: the point a
        ``point>mask`` question names, as cell + offset. Its label is that move whenever the move lands on
        the mask (like the greedy builder's ``prefer``: the question's own point is the answer when it is
        as good as the deepest landing); otherwise the usual band label.

    Returns
    -------
    OffsetProposal
    """
    cfg = cfg or OffsetConfig()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    m = as_mask(mask, name="target mask")
    box = mask_to_box(m)
    if box is None:
        raise GeometryError("target mask is empty: no offset sample for an empty target")
    return _noisy_proposal(m, box, n, r, step, cfg, true_cells, distractor_mask, rng, anchor)


_SOURCES = np.array(["", "true", "jitter", "distractor", "grid", "anchor"])
_NONE, _TRUE, _JITTER, _DISTRACTOR, _GRID, _ANCHOR = range(6)


def _anchor_index(m, pts, n, r, step, labels: PointLabels, anchor) -> int | None:
    """Flat index of the anchor cell; relabels it with the anchor's move when that move lands on ``m``."""
    if anchor is None:
        return None
    cell, off = (np.asarray(a, dtype=np.int64).reshape(2) for a in anchor)
    if (cell < 0).any() or (cell >= n).any():
        raise GeometryError(f"anchor cell {cell.tolist()} is outside the {n}x{n} grid")
    if np.abs(off).max() > r:
        raise GeometryError(f"anchor move {off.tolist()} exceeds the codec radius r={r}")
    idx = int(cell[1] * n + cell[0])
    rr, cc = landing_pixels(pts[idx], off[None], n, step, m.shape)
    if m[rr[0, 0], cc[0, 0]]:
        labels.offsets[idx] = off
        labels.deleted[idx] = False
        if labels.band[idx] not in (INSIDE, RING):
            labels.band[idx] = RING
    return idx


def _noisy_proposal(m, box, n, r, step, cfg, true_cells, distractor_mask, rng, anchor=None) -> OffsetProposal:
    size = m.shape
    pts, rows, cols = _grid(n, size)
    labels = _label_points(m, pts, n, r, step, cfg.bands, box, (rows, cols))
    anchor_idx = _anchor_index(m, pts, n, r, step, labels, anchor)
    nn = n * n
    source = np.zeros(nn, dtype=np.int8)

    if true_cells is None:
        tc = _cells_on(m, n, rows, cols, box)
    else:
        tc = np.asarray(true_cells, dtype=np.int64).reshape(-1, 2)
        if len(tc) and ((tc < 0).any() or (tc >= n).any()):
            raise GeometryError(f"true_cells must satisfy 0 <= cx, cy < n={n}")
    true_idx = np.unique(tc[:, 1] * n + tc[:, 0])
    if len(true_idx):
        keep = true_idx[rng.random(len(true_idx)) < cfg.p_true]
        if not len(keep):
            keep = true_idx[rng.integers(len(true_idx), size=1)]
        source[keep] = _TRUE

    if cfg.n_jitter and len(tc):
        base = tc[rng.integers(len(tc), size=cfg.n_jitter)]
        d = rng.integers(-cfg.jitter, cfg.jitter + 1, size=(cfg.n_jitter, 2))
        zero = ~d.any(axis=1)
        d[zero, 0] = rng.choice([-1, 1], size=int(zero.sum()))
        j = np.clip(base + d, 0, n - 1)
        jit = j[:, 1] * n + j[:, 0]
        source[jit[source[jit] == _NONE]] = _JITTER

    if cfg.n_distractors:
        if distractor_mask is not None:
            dm = as_mask(distractor_mask, size, name="distractor mask")
            src = np.flatnonzero(dm[rows, cols] & ~m[rows, cols] & (source == _NONE))
        else:
            src = np.flatnonzero((labels.band == FAR) & (source == _NONE))
        if len(src):
            dis = rng.choice(src, size=min(cfg.n_distractors, len(src)), replace=False)
            source[dis] = _DISTRACTOR

    k = cfg.k
    if anchor_idx is not None:
        source[anchor_idx] = _ANCHOR
        k -= 1
    pool = np.flatnonzero((source != _NONE) & (source != _ANCHOR))
    picked = _weighted_pick(pool, labels.band, cfg.band_weights, k, rng)
    if len(picked) < k:
        rest = np.flatnonzero(source == _NONE)
        extra = _weighted_pick(rest, labels.band, cfg.band_weights, k - len(picked), rng)
        source[extra] = _GRID
        picked = np.concatenate([picked, extra])
    if anchor_idx is not None:
        picked = np.concatenate([picked, [anchor_idx]]).astype(np.int64)
    picked = np.sort(picked)
    sub = PointLabels(labels.band[picked], labels.offsets[picked], labels.deleted[picked])
    return OffsetProposal(cells=index_to_cells(picked, n), labels=sub, source=_SOURCES[source[picked]])


def _cells_on(mask: np.ndarray, n: int, rows: np.ndarray, cols: np.ndarray, box) -> np.ndarray:
    """Cells whose grid point lies on the mask; if none, the cell under the centre of the mask's box
    (a cheap stand-in for the true answer of a target smaller than a cell)."""
    on = np.flatnonzero(mask[rows, cols])
    if len(on):
        return index_to_cells(on, n)
    centre = np.array([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]])
    return points_to_cells(centre, n, mask.shape)


def offset_geometry(mask, proposal: OffsetProposal, n: int, step: float, label: str | None = None) -> Geometry:
    """The proposal as a :class:`~getok.Geometry`: ``cells`` with their ``offsets`` / ``deleted`` answers,
    ``offset_step``, and the target ``mask`` and box."""
    m = as_mask(mask, name="target mask")
    return Geometry(
        size=m.shape,
        cells=proposal.cells,
        grid_n=n,
        offsets=proposal.labels.offsets,
        deleted=proposal.labels.deleted,
        offset_step=step,
        mask=m,
        box=mask_to_box(m),
        label=label,
    )


@functools.lru_cache(maxsize=16)
def _config_dict(cfg: OffsetConfig) -> dict:
    return asdict(cfg)


DEFAULT_ASK = IMAGE_PLACEHOLDER + "Segment {query}. Answer with grid tokens."
DEFAULT_REFINE = "Refine your answer: for each proposed cell, in order, give an offset token or <DELETE>."


def offset_sample(
    mask,
    codec,
    *,
    sample_id: str,
    image_id: str,
    image: str,
    query: str,
    cfg: OffsetConfig | None = None,
    true_cells=None,
    distractor_mask=None,
    rng: np.random.Generator | int | None = None,
    ask: str = DEFAULT_ASK,
    refine: str = DEFAULT_REFINE,
    meta: dict | None = None,
    anchor=None,
) -> Sample:
    """A two-turn refinement :class:`~getok.samples.Sample` for one target.

    Turn 1: the user asks for ``query``; the assistant answers the noisy proposal in the ``grid_offset``
    codec (``kind="mask"``: its cells, row-major). Turn 2: the user asks to refine; the assistant answers
    ``codec.encode_refinement`` — one offset token or ``<DELETE>`` per proposed cell, in order.

    Parameters
    ----------
    mask : (H, W) bool
        Target mask.
    codec : str or GridOffsetCodec
        A ``grid_offset`` spec or codec; its ``n``, ``r`` and ``step`` define the grid and the moves.
    sample_id, image_id, image : identifiers and image path (relative to the dataset root).
    query : str
        What turn 1 asks for (category or referring expression).
    cfg, true_cells, distractor_mask, rng, anchor : see :func:`noisy_proposal`.
    ask, refine : prompt templates (``{query}`` is filled in ``ask``).
    meta : dict, optional
        Added to the sample's meta.

    Returns
    -------
    Sample
        ``task="refine"``, ``kind="mask"``; ``truth`` holds ``size``, ``masks`` (one COCO RLE), ``boxes``,
        ``proposal`` (turn 1's answer) and ``proposal_cells``.
    """

    c = get_codec(codec) if isinstance(codec, str) else codec
    if not isinstance(c, GridOffsetCodec):
        raise ConfigError(f"offset samples need a grid_offset codec, got {getattr(c, 'spec', c)!r}")
    cfg = cfg or OffsetConfig()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    m = as_mask(mask, name="target mask")
    box = mask_to_box(m)
    if box is None:
        raise GeometryError("target mask is empty: no offset sample for an empty target")
    n, r, step = c.config.n, c.config.r, c.config.step
    prop = _noisy_proposal(m, box, n, r, step, cfg, true_cells, distractor_mask, rng, anchor)
    g = Geometry(
        size=m.shape, cells=prop.cells, grid_n=n, offsets=prop.labels.offsets, deleted=prop.labels.deleted,
        offset_step=step, box=box, label=query,
    )
    proposal_text = c.encode_cells(prop.cells)  # row-major already: what encode(kind="mask") writes
    answer = c.encode_refinement([g])
    truth = {
        "size": list(m.shape),
        "masks": [rle_encode(m, box)],
        "boxes": [[float(v) for v in box]],
        "proposal": proposal_text,
        "proposal_cells": prop.cells.tolist(),
    }
    info = {
        "query": query,
        "bands": [BAND_NAMES[b] for b in prop.labels.band],
        "sources": prop.source.tolist(),
        "offsets_config": _config_dict(cfg),
        **(meta or {}),
    }
    return Sample(
        sample_id=sample_id,
        image_id=image_id,
        image=image,
        size=m.shape,
        task="refine",
        kind="mask",
        codec=c.spec,
        turns=[Turn(ask.format(query=query), proposal_text), Turn(refine, answer)],
        truth=truth,
        meta=info,
    )
