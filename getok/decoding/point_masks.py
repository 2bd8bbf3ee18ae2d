"""``point_masks``: the weight-free decoder that matches the greedy builder — the union of the point masks
of the predicted cells.

The builder turned a target mask into the grid cells whose point masks (one mask per grid point, from a
:class:`~getok.data_builders.proposers.base.MaskProposer`) best cover it; this decoder inverts that: a
grid answer becomes the union of its cells' point masks. With the *same* proposer as the builder (and
its exact point masks) the greedy cells decode back to the mask the builder reached.

Registered as ``point_masks`` and, under its former name, as ``proposals`` (the same factory), so
committed result files and specs such as ``proposals:proposer=exact,n=8`` still parse.

Refined answers (grid + offsets, ``<DELETE>``):

* a ``<DELETE>``-d cell contributes nothing;
* a cell with offset ``(0, 0)`` (or no offsets) contributes its own point mask, as above;
* a moved cell's *refined point* (centre + offset, pixels) selects a mask by ``refined=``:

  - ``"lookup"``: the proposer's own mask at that exact position, ``proposer.propose_at(image,
    points_xy)`` (the optional :class:`PointProposer` extension: a superpixel / label-map proposer
    returns the region under the point, a SAM proposer prompts there);
  - ``"cover"``: among the grid points whose point mask contains the refined point's pixel, the
    point mask of the nearest one; nothing when no point mask contains it (weight-free, needs only the
    stack);
  - ``"cell"``: the point mask of the grid cell that contains the refined point (points on a cell
    border — half-cell offsets land there — go to the cell with the larger index);
  - ``"auto"`` (default): ``"lookup"`` when the proposer has ``propose_at``, else ``"cover"``.

Points-only answers use the same lookup at the points (on an ``n``-grid stack, ``n`` from the decoder's
settings); box-only and polygon answers fall back to their raster; a ``mask`` is returned as it is.
Stacks are computed once per (image, n) and kept in an LRU cache (``cache_size`` images).
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

import numpy as np

from ..backends._common import LRUCache, check_image, check_size
from ..data_builders.proposers import get_proposer
from ..data_builders.proposers.exact import ExactProposer
from ..data_builders.scenes import SceneConfig, generate_scene, label_map_from_objects, scene_seed
from ..errors import ConfigError, DataError, GeometryError
from ..geometry import Geometry
from ..ops.grid import apply_offsets, grid_points, points_to_cells
from ..provenance import image_hash
from .base import register_decoder
from .raster import raster_mask

__all__ = ["PointMaskDecoder", "PointProposer", "REFINED_MODES", "union_of_point_masks", "cover_lookup"]

REFINED_MODES = ("auto", "lookup", "cover", "cell")


@runtime_checkable
class PointProposer(Protocol):
    """Optional extension of ``MaskProposer``: the mask selected by arbitrary points, not only grid points."""

    def propose_at(self, image: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
        """Masks ``(K, H, W)`` bool for points ``(K, 2)`` XY pixels (an empty mask where a point selects none)."""
        ...


def union_of_point_masks(stack, cells: np.ndarray) -> np.ndarray:
    """Union of the point masks of cells ``(K, 2)`` ``(cx, cy)`` on ``stack``'s grid. ``(H, W)`` bool.

    >>> from getok.data_builders.proposers.base import PointMaskStack
    >>> st = PointMaskStack(n=2, size=(2, 2), masks=np.eye(2, dtype=bool)[None], point_to_mask=[0, -1, -1, 0])
    >>> union_of_point_masks(st, np.array([[1, 0]])).any(), union_of_point_masks(st, np.array([[0, 0]])).sum()
    (np.False_, np.int64(2))
    """
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    idx = stack.point_to_mask[c[:, 1] * stack.n + c[:, 0]]
    idx = np.unique(idx[idx >= 0])
    if idx.size == 0:
        return np.zeros(stack.size, dtype=bool)
    if idx.size == 1:
        return stack.masks[idx[0]].copy()
    return np.any(stack.masks[idx], axis=0)


def cover_lookup(stack, points_xy: np.ndarray, window: int = 2) -> np.ndarray:
    """For each point, the point-mask index of the nearest grid point whose point mask covers the point's pixel.

    The grid points of the ``(2 window + 1)^2`` cells around each point are searched first; a point whose
    best candidate there is farther than ``window + 1/2`` cells (where a grid point outside the window
    could be nearer), or that has none, is searched over the whole grid — the result is exact.

    Parameters
    ----------
    stack : PointMaskStack
    points_xy : (K, 2) float
        XY pixels.
    window : int
        Cells searched around a point before the whole grid.

    Returns
    -------
    (K,) int64
        Indices into ``stack.masks``; ``-1`` where no point mask contains the point.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    h, w = stack.size
    n = stack.n
    out = np.full(len(pts), -1, dtype=np.int64)
    if len(pts) == 0 or len(stack.masks) == 0:
        return out
    cols = np.clip(np.floor(pts[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.floor(pts[:, 1]).astype(np.int64), 0, h - 1)
    p2m = stack.point_to_mask
    gp = grid_points(n, stack.size)  # (n*n, 2)

    def nearest(cand: np.ndarray, k_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """cand (K', C) grid indices of points k_idx → (point-mask index of the nearest covering grid point
        or -1, its squared distance)."""
        m = p2m[cand]  # (K', C)
        ok = m >= 0
        ok[ok] = stack.masks[m[ok], np.broadcast_to(rows[k_idx, None], m.shape)[ok],
                             np.broadcast_to(cols[k_idx, None], m.shape)[ok]]
        d = ((gp[cand] - pts[k_idx, None, :]) ** 2).sum(-1)
        d = np.where(ok, d, np.inf)
        best = np.argmin(d, axis=1)
        ar = np.arange(len(k_idx))
        dbest = d[ar, best]
        return np.where(np.isfinite(dbest), m[ar, best], -1), dbest

    # the window of cells around each point
    cell = points_to_cells(pts, n, stack.size)  # (K, 2)
    r = np.arange(-window, window + 1)
    dx, dy = np.meshgrid(r, r)
    cx = np.clip(cell[:, :1] + dx.ravel()[None], 0, n - 1)
    cy = np.clip(cell[:, 1:] + dy.ravel()[None], 0, n - 1)
    out[:], dbest = nearest(cy * n + cx, np.arange(len(pts)))
    safe = ((window + 0.5) * min(w, h) / n) ** 2  # no grid point outside the window is nearer than this
    rest = np.flatnonzero(~(dbest <= safe))
    if rest.size:
        out[rest] = nearest(np.broadcast_to(np.arange(n * n), (rest.size, n * n)), rest)[0]
    return out


class PointMaskDecoder:
    """Union of the predicted cells' point masks (see the module docstring for offsets and deletions).

    Parameters
    ----------
    proposer : MaskProposer or str
        The proposer (the same one the builder used); a string is resolved with
        ``getok.data_builders.proposers.get_proposer``.
    n : int
        Grid size for answers without cells (points-only); answers with cells use their own ``grid_n``.
    refined : {"auto", "lookup", "cover", "cell"}
        How a moved (offset) point selects its mask.
    cache_size : int
        Images whose point-mask stacks are kept.
    **proposer_kwargs
        Settings for a proposer named by a string.
    """

    name = "point_masks"

    def __init__(self, proposer=None, n: int = 32, refined: str = "auto", cache_size: int = 4, **proposer_kwargs):
        if proposer is None:
            raise ConfigError(
                "the point_masks decoder needs a proposer: get_decoder('point_masks', proposer=MyProposer()) "
                "or 'point_masks:proposer=NAME'"
            )
        if isinstance(proposer, str):
            proposer = get_proposer(proposer, **proposer_kwargs)
        elif proposer_kwargs:
            raise ConfigError(f"unknown point_masks decoder settings {sorted(proposer_kwargs)}")
        if not callable(getattr(proposer, "propose", None)):
            raise ConfigError(f"proposer {proposer!r} has no propose(image, n) method (MaskProposer protocol)")
        if refined not in REFINED_MODES:
            raise ConfigError(f"refined must be one of {REFINED_MODES}, got {refined!r}")
        if refined == "lookup" and not isinstance(proposer, PointProposer):
            raise ConfigError(f"refined='lookup' needs a proposer with propose_at(image, points_xy); {proposer!r} has none")
        if int(n) < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        self.proposer = proposer
        self.n = int(n)
        self.refined = refined
        self._cache = LRUCache(cache_size)
        self._image: np.ndarray | None = None
        self._key: str | None = None
        self._size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ protocol
    def settings(self) -> dict:
        ps = getattr(self.proposer, "settings", None)
        return {
            "name": self.name,
            "n": self.n,
            "refined": self.refined,
            "proposer": getattr(self.proposer, "name", type(self.proposer).__name__),
            "proposer_settings": ps() if callable(ps) else {},
        }

    @property
    def stacks_computed(self) -> int:
        """How many stacks were computed (cache misses)."""
        return self._cache.misses

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        if image is None:
            raise DataError("the point_masks decoder needs the image (point masks are computed from it)")
        img = check_image(image)
        if size is not None and tuple(size) != img.shape[:2]:
            raise GeometryError(f"size {tuple(size)} differs from the image's (H, W)={img.shape[:2]}")
        self._image = img
        self._size = img.shape[:2]
        self._key = key if key is not None else image_hash(img)

    def stack(self, n: int):
        """The point-mask stack of the current image on an ``n x n`` grid (cached)."""
        if self._image is None:
            raise DataError("no image set: call set_image(image) before decode()")

        def compute():
            st = self.proposer.propose(self._image, n)
            if tuple(st.size) != self._size or st.n != n:
                raise DataError(
                    f"proposer returned a stack of n={st.n}, size={tuple(st.size)}; expected n={n}, size={self._size}"
                )
            return st

        return self._cache.get_or_compute((self._key, n), compute)

    def decode(self, geometry: Geometry) -> np.ndarray:
        if self._image is None:
            raise DataError("no image set: call set_image(image) before decode()")
        check_size(geometry, self._size)
        g = geometry
        if g.mask is not None or g.polygons or (g.cells is None and g.box is not None and g.points is None):
            return raster_mask(g)
        if g.cells is not None:
            return self._decode_cells(g)
        if g.points is not None and len(g.points):
            return self._masks_at(self.stack(self.n), g.points)
        return np.zeros(self._size, dtype=bool)

    # ------------------------------------------------------------------ internals
    def _decode_cells(self, g: Geometry) -> np.ndarray:
        stack = self.stack(g.grid_n)
        keep = np.ones(len(g.cells), dtype=bool) if g.deleted is None else ~g.deleted
        moved = np.zeros(len(g.cells), dtype=bool)
        if g.offsets is not None:
            moved = keep & np.any(g.offsets != 0, axis=1)
        still = keep & ~moved
        out = union_of_point_masks(stack, g.cells[still])
        if moved.any():
            # refined points of the moved cells only (refined_points drops deleted cells: align by hand)

            pts = apply_offsets(g.cells[moved], g.grid_n, g.size, g.offsets[moved], g.offset_step)
            out |= self._masks_at(stack, pts)
        return out

    def _masks_at(self, stack, points_xy: np.ndarray) -> np.ndarray:
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        mode = self.refined
        if mode == "auto":
            mode = "lookup" if isinstance(self.proposer, PointProposer) else "cover"
        if mode == "lookup":
            masks = np.asarray(self.proposer.propose_at(self._image, pts), dtype=bool)
            if masks.shape != (len(pts), *self._size):
                raise DataError(f"propose_at returned shape {masks.shape}, expected {(len(pts), *self._size)}")
            return masks.any(axis=0) if len(masks) else np.zeros(self._size, dtype=bool)
        if mode == "cell":
            return union_of_point_masks(stack, points_to_cells(pts, stack.n, stack.size))
        idx = np.unique(cover_lookup(stack, pts))
        idx = idx[idx >= 0]
        if idx.size == 0:
            return np.zeros(self._size, dtype=bool)
        return np.any(stack.masks[idx], axis=0)


@register_decoder("point_masks", former=("proposals",))  # committed results and user configs name it proposals
def point_masks_decoder(proposer=None, manifest: dict | None = None, **kwargs):
    """The ``point_masks`` decoder of a spec: a :class:`PointMaskDecoder`, except ``proposer=exact`` without a
    label map, which is a procedural scene rebuilt from its id (:class:`SceneExactDecoder`,
    with the dataset ``manifest``'s scene settings).

    Also registered as ``proposals``, its name from before the per-grid-point masks were called point
    masks: ``proposals:proposer=exact,n=8`` (committed result files, user configs) builds the same decoder."""
    if proposer == "exact" and "label_map" not in kwargs:
        return SceneExactDecoder(manifest, **kwargs)
    return PointMaskDecoder(proposer, **kwargs)


# ---- procedural scenes decoded exactly
_SCENE_ID = re.compile(r"^scene-(\d+)-(\d+)$")


@register_decoder("scene_exact")
class SceneExactDecoder:
    """``point_masks:proposer=exact`` for procedural scenes: each scene's exact proposer, rebuilt from its id.

    The exact proposer needs the scene's label map, which a dataset directory does not store; a scene is
    deterministic in its id ``scene-<seed>-<index>`` and its :class:`~getok.data_builders.scenes.SceneConfig`
    (from the manifest's ``scenes`` source, else the default), so the label map is regenerated and the
    regenerated pixels are checked against the image (:class:`DataError` when they differ). Then a
    :class:`~getok.decoding.point_masks.PointMaskDecoder` on that proposer decodes: greedy grid answers decode
    back to the builder's masks.

    Parameters
    ----------
    manifest : dict, optional
        The dataset manifest (its ``sources``).
    n, refined, background : PointMaskDecoder / ExactProposer settings.
    cache_size : int
        Label maps kept.
    """

    name = "point_masks"

    def __init__(self, manifest: dict | None = None, n: int = 32, refined: str = "auto", background: bool = True,
                 cache_size: int = 8) -> None:  # fmt: skip

        self.configs: dict[int, dict] = {}
        for src in (manifest or {}).get("sources") or []:
            if isinstance(src, dict) and src.get("loader") == "scenes":
                self.configs[int(src.get("seed", 0))] = dict(src.get("config") or {})
        self.n, self.refined, self.background = int(n), refined, bool(background)
        self._maps = LRUCache(cache_size)
        self._dec = None

    def settings(self) -> dict:
        return {"name": self.name, "proposer": "exact (scenes rebuilt from their ids)", "n": self.n, "refined": self.refined}

    def _label_map(self, key: str | None, image) -> np.ndarray:
        m = _SCENE_ID.match(str(key))
        if m is None:
            raise DataError(f"image {key!r} is not a procedural scene (scene-<seed>-<index>): the exact proposer has no label map")
        seed, index = int(m.group(1)), int(m.group(2))

        def build():
            cfg = SceneConfig(**self.configs[seed]) if seed in self.configs else SceneConfig()
            scene = generate_scene(scene_seed(seed, index), cfg, image_id=str(key))
            if image is not None and not np.array_equal(scene.get_image(), np.asarray(image)):
                raise DataError(f"image {key!r} differs from the regenerated scene (another SceneConfig?); no exact label map")
            return label_map_from_objects(scene)

        return self._maps.get_or_compute(str(key), build)

    def set_image(self, image, size=None, key=None) -> None:
        lm = self._label_map(key, image)
        self._dec = PointMaskDecoder(ExactProposer(lm, background=self.background), n=self.n, refined=self.refined)
        self._dec.set_image(image, size=size, key=key)

    def decode(self, geometry):
        if self._dec is None:
            raise ConfigError("call set_image before decode")
        return self._dec.decode(geometry)
