"""Greedy mask → grid tokens (DESIGN.md, "Greedy mask → grid tokens").

Given a target mask and the point masks of an image on an ``n x n`` grid (one mask per grid point), pick the
grid cells whose point masks together cover the target:

1. candidates are the grid points whose point mask overlaps the target;
2. they are sorted by the IoU of their point mask with the target (descending);
3. walking that list, a candidate is added when it raises the IoU of the union of the selected point masks
   with the target; the walk stops as soon as the IoU reaches ``tau`` or ``max_cells`` cells are chosen,
   and is repeated over the rejected candidates (at most ``max_passes`` walks) until a walk adds nothing;
4. the answer is the selected cells, sorted row-major (a stable target; the paper leaves them unordered).

Grid points that share one point mask are one candidate: it is represented by the grid point that lies
inside the target (if any), then has the highest proposer score, then lies nearest the centre of the
target's box, then comes first row-major. A question that names a point (``point>mask``) passes it as
``prefer``: among the grid points of one point mask that lie inside the target, the one nearest that point
represents it (ours; the paper leaves the choice open). Such cells decode to the same mask, so this only
picks, among equivalent answers, the one the question already names — a target the model can read off
the question instead of guessing one arbitrary cell of the object. A non-empty target that no point mask overlaps gets the single
grid cell nearest to it (never zero cells); an empty target is an error.

The union / IoU arithmetic runs on compressed COCO RLEs (pycocotools, C), so a step costs time linear in
the number of runs of the masks involved, not in the image area; point masks are pre-filtered by their
boxes. With cached point masks this converts several hundred real-dev masks per second on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, GeometryError, require
from ..geometry import Geometry
from ..ops.boxes import mask_to_box
from ..ops.grid import grid_points, index_to_cells
from ..ops.masks import as_mask, coco_rle
from .cache import PointMaskCache
from .proposers.base import PointMaskStack, grid_pixels
from .proposers.exact import ExactProposer
from .proposers.registry import get_proposer

__all__ = [
    "GreedyConfig",
    "GreedyResult",
    "GreedyGeometryFn",
    "greedy_cells",
    "greedy_geometry",
    "point_mask_union",
    "nearest_cell",
]


@dataclass(frozen=True)
class GreedyConfig:
    """Settings of the greedy conversion.

    Attributes
    ----------
    tau : float
        Stop once the IoU of the union with the target reaches ``tau`` (in ``(0, 1]``).
    max_cells : int
        Token cap: at most this many cells per target.
    max_passes : int
        Walks over the sorted candidates; a later walk retries the candidates an earlier one rejected
        (adding a point mask can make a rejected one useful), and stops early when it adds nothing.
    min_gain : float
        A candidate must raise the IoU by more than this to be added.
    """

    tau: float = 0.9
    max_cells: int = 64
    max_passes: int = 4
    min_gain: float = 1e-9

    def __post_init__(self):
        if not 0 < self.tau <= 1:
            raise ConfigError(f"greedy.tau must be in (0, 1], got {self.tau}")
        if self.max_cells < 1:
            raise ConfigError(f"greedy.max_cells must be >= 1, got {self.max_cells}")
        if self.max_passes < 1:
            raise ConfigError(f"greedy.max_passes must be >= 1, got {self.max_passes}")
        if self.min_gain < 0:
            raise ConfigError(f"greedy.min_gain must be >= 0, got {self.min_gain}")


@dataclass
class GreedyResult:
    """Outcome of :func:`greedy_cells`.

    Attributes
    ----------
    cells : (K, 2) int64
        Selected cells ``(cx, cy)``, row-major sorted, ``K >= 1``.
    iou : float
        IoU of the union of the selected point masks with the target.
    history : (K,) float
        IoU after each addition, in the order of addition (non-decreasing; strictly increasing unless
        ``fallback``).
    order : (K, 2) int64
        The cells in the order they were added.
    fallback : bool
        True when no point mask overlapped the target and the nearest cell was used.
    """

    cells: np.ndarray
    iou: float
    history: np.ndarray
    order: np.ndarray
    fallback: bool = False


# ---------------------------------------------------------------------------------------------------- index
class _StackIndex:
    """Per-stack data the greedy conversion reuses across targets (built once, kept on the stack)."""

    def __init__(self, stack: PointMaskStack) -> None:
        mu = require("pycocotools.mask", "coco", "the greedy grid-token builder")
        self.rles = stack.rles()
        u = len(self.rles)
        if u:
            bb = mu.toBbox(self.rles)  # (U, 4) x, y, w, h
            self.boxes = np.stack([bb[:, 0], bb[:, 1], bb[:, 0] + bb[:, 2], bb[:, 1] + bb[:, 3]], axis=1)
        else:
            self.boxes = np.zeros((0, 4))
        self.p2m = stack.point_to_mask
        self.scores = np.zeros(len(self.p2m)) if stack.scores is None else np.asarray(stack.scores, np.float64)
        self.rows, self.cols = grid_pixels(stack.n, stack.size)
        self.points = grid_points(stack.n, stack.size)
        self.used = np.zeros(u, dtype=bool)
        self.used[self.p2m[self.p2m >= 0]] = True


def _index(stack: PointMaskStack) -> _StackIndex:
    idx = getattr(stack, "_greedy_index", None)
    if idx is None or idx.rles is not stack.rles():
        idx = _StackIndex(stack)
        stack._greedy_index = idx
    return idx


def _check_target(target_mask, stack: PointMaskStack) -> np.ndarray:
    if not isinstance(stack, PointMaskStack):
        raise GeometryError(f"stack must be a PointMaskStack, got {type(stack).__name__}")
    t = as_mask(target_mask, stack.size, name="target mask")
    if not t.any():
        raise GeometryError("target mask is empty: an empty mask has no grid cells (skip it or answer 'none')")
    return t


# ---------------------------------------------------------------------------------------------------- helpers
def point_mask_union(stack: PointMaskStack, cells) -> np.ndarray:
    """The union ``(H, W)`` bool of the point masks of grid cells ``(K, 2)`` (cx, cy) — what a decoder that
    looks the cells up in the same point masks would return."""
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(stack.size, dtype=bool)
    for k in np.unique(stack.point_to_mask[c[:, 1] * stack.n + c[:, 0]]):
        if k >= 0:
            out |= stack.masks[k]
    return out


def nearest_cell(mask: np.ndarray, n: int) -> np.ndarray:
    """The grid cell ``(1, 2)`` whose grid point is nearest to a non-empty mask (on it: distance 0; ties
    go to the point nearest the centre of the mask's box, then row-major)."""
    m = as_mask(mask)
    if not m.any():
        raise GeometryError("nearest_cell of an empty mask")
    from scipy.ndimage import distance_transform_edt

    rows, cols = grid_pixels(n, m.shape)
    d = distance_transform_edt(~m)[rows, cols]
    box = mask_to_box(m)
    c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    dc = np.hypot(*(grid_points(n, m.shape) - c).T)
    best = np.lexsort((np.arange(n * n), dc, d))[0]
    return index_to_cells([best], n)


# ---------------------------------------------------------------------------------------------------- greedy
def greedy_cells(target_mask, stack: PointMaskStack, cfg: GreedyConfig | None = None, prefer=None) -> GreedyResult:
    """Grid cells whose point masks cover ``target_mask`` (DESIGN.md's greedy conversion).

    Parameters
    ----------
    target_mask : (H, W) bool
        The object; same size as the point masks. Empty, non-binary or wrongly sized masks raise
        :class:`~getok.errors.GeometryError`.
    stack : PointMaskStack
        Point masks of the image on an ``n x n`` grid.
    cfg : GreedyConfig, optional
    prefer : (x, y) pixels, optional
        A point the question names: a point mask shared by several grid points inside the target is
        represented by the one nearest to it (see the module docstring).

    Returns
    -------
    GreedyResult
        ``cells`` (K, 2) row-major, ``iou``, ``history``.

    Examples
    --------
    >>> from getok.data_builders.proposers import ExactProposer
    >>> lab = np.zeros((40, 40), np.int32); lab[0:20, 0:20] = 1; lab[20:40, 20:40] = 2
    >>> stack = ExactProposer(lab).propose(None, 4)
    >>> r = greedy_cells(lab > 0, stack)
    >>> r.cells.tolist(), r.iou
    ([[1, 1], [2, 2]], 1.0)
    >>> greedy_cells(lab == 2, stack).cells.tolist(), greedy_cells(lab == 2, stack, prefer=(35, 24)).cells.tolist()
    ([[2, 2]], [[3, 2]])
    """
    cfg = cfg or GreedyConfig()
    mu = require("pycocotools.mask", "coco", "the greedy grid-token builder")
    t = _check_target(target_mask, stack)
    idx = _index(stack)
    n = stack.n

    tbox = mask_to_box(t)
    t_rle = coco_rle(t, tbox)
    tx0, ty0, tx1, ty1 = tbox

    # candidates: used point masks whose box meets the target's box and that overlap it
    b = idx.boxes
    near = np.flatnonzero(idx.used & (b[:, 0] < tx1) & (b[:, 2] > tx0) & (b[:, 1] < ty1) & (b[:, 3] > ty0))
    ious = np.zeros(len(idx.rles))
    if len(near):
        ious[near] = np.asarray(mu.iou([idx.rles[k] for k in near], [t_rle], [0]), dtype=np.float64).reshape(-1)
    cand = near[ious[near] > 0]
    if len(cand) == 0:
        cell = nearest_cell(t, n)
        k = stack.point_to_mask[cell[0, 1] * n + cell[0, 0]]
        iou = float(ious[k]) if k >= 0 else 0.0
        return GreedyResult(cells=cell, iou=iou, history=np.array([iou]), order=cell.copy(), fallback=True)

    # representative grid point of each candidate point mask
    p2m = idx.p2m
    inside = t[idx.rows, idx.cols]
    centre = np.array([(tx0 + tx1) / 2, (ty0 + ty1) / 2])
    dc = np.hypot(idx.points[:, 0] - centre[0], idx.points[:, 1] - centre[1])
    pts = np.flatnonzero(np.isin(p2m, cand))
    keys = [pts, dc[pts], -idx.scores[pts]]
    if prefer is not None:
        px, py = (float(v) for v in np.asarray(prefer, dtype=np.float64).reshape(2))
        keys.append(np.hypot(idx.points[pts, 0] - px, idx.points[pts, 1] - py))
    order_pts = pts[np.lexsort((*keys, ~inside[pts], p2m[pts]))]
    first = np.ones(len(order_pts), dtype=bool)
    first[1:] = p2m[order_pts[1:]] != p2m[order_pts[:-1]]
    rep = dict(zip(p2m[order_pts[first]].tolist(), order_pts[first].tolist()))

    # candidates by IoU (desc), ties by representative index
    cand_sorted = sorted(cand.tolist(), key=lambda k: (-ious[k], rep[k]))
    union = None
    best = 0.0
    chosen: list[int] = []
    history: list[float] = []
    remaining = cand_sorted
    for _ in range(cfg.max_passes):
        rejected = []
        added = False
        for k in remaining:
            if best >= cfg.tau or len(chosen) >= cfg.max_cells:
                break
            new = idx.rles[k] if union is None else mu.merge([union, idx.rles[k]], intersect=False)
            v = float(ious[k]) if union is None else float(mu.iou([new], [t_rle], [0])[0][0])
            if v > best + cfg.min_gain:
                union, best = new, v
                chosen.append(rep[k])
                history.append(v)
                added = True
            else:
                rejected.append(k)
        remaining = rejected
        if not added or not remaining or best >= cfg.tau or len(chosen) >= cfg.max_cells:
            break
    order = index_to_cells(chosen, n)
    cells = index_to_cells(np.sort(np.asarray(chosen, dtype=np.int64)), n)
    return GreedyResult(cells=cells, iou=best, history=np.asarray(history), order=order)


def greedy_geometry(
    obj_mask, stack: PointMaskStack, cfg: GreedyConfig | None = None, label: str | None = None, prefer=None
) -> Geometry:
    """The target as a :class:`~getok.Geometry` with the greedy ``cells`` (the grid codecs write those),
    ``grid_n``, its ``mask`` and box — the ``geometry_fn`` hook of the query-task builder.

    >>> from getok.data_builders.proposers import ExactProposer
    >>> lab = np.zeros((40, 40), np.int32); lab[0:20, 0:20] = 1
    >>> g = greedy_geometry(lab == 1, ExactProposer(lab).propose(None, 4))
    >>> g.cells.tolist(), g.grid_n
    ([[0, 0]], 4)
    """
    r = greedy_cells(obj_mask, stack, cfg, prefer=prefer)
    m = as_mask(obj_mask, stack.size)
    return Geometry(size=stack.size, cells=r.cells, grid_n=stack.n, mask=m, box=mask_to_box(m), label=label)


class GreedyGeometryFn:
    """``geometry_fn(image, obj) -> Geometry`` for the query-task builder: the greedy grid cells of ``obj``
    on the point masks of ``image`` (picklable, so parallel builds can ship it to workers).

    Parameters
    ----------
    proposer : str or MaskProposer
        ``"exact"`` (default): the label map of a procedural scene (``image.meta["label_map"]``, or rebuilt
        from its disjoint object masks); any other spec goes to
        :func:`~getok.data_builders.proposers.get_proposer`.
    n : int
        Grid size (the grid codec's ``n``).
    cfg : GreedyConfig, optional
    cache_dir : path, optional
        Point-mask cache (:class:`~getok.data_builders.cache.PointMaskCache`) for non-exact proposers.

    The stack of the last image is kept, so the objects of one image share one point-mask run.
    """

    def __init__(self, proposer="exact", n: int = 32, cfg: GreedyConfig | None = None, cache_dir=None) -> None:
        if int(n) < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        self.proposer = proposer
        self.n = int(n)
        self.cfg = cfg or GreedyConfig()
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self._built = None
        self._last: tuple[str, PointMaskStack] | None = None

    def __getstate__(self):
        return {**self.__dict__, "_built": None, "_last": None}

    def _proposer_for(self, image):
        if isinstance(self.proposer, str) and self.proposer.split(":")[0] == "exact":
            return ExactProposer.from_image(image)
        if self._built is None:
            self._built = get_proposer(self.proposer)
        return self._built

    def stack_for(self, image) -> PointMaskStack:
        """Point masks of an :class:`~getok.records.AnnotatedImage` on the ``n``-grid."""
        if self._last is not None and self._last[0] == image.image_id:
            return self._last[1]
        proposer = self._proposer_for(image)
        if proposer.name == "exact":
            stack = proposer.propose(None, self.n)
        elif self.cache_dir is not None:
            stack = PointMaskCache(self.cache_dir).get_or_compute(image.get_image(), proposer, self.n)
        else:
            stack = proposer.propose(image.get_image(), self.n)
        self._last = (image.image_id, stack)
        return stack

    def __call__(self, image, obj, prefer=None) -> Geometry:
        """The greedy cells of ``obj``; ``prefer`` = the (x, y) point a question names (see greedy_cells)."""
        return greedy_geometry(obj.get_mask(), self.stack_for(image), self.cfg, label=obj.category, prefer=prefer)
