"""Decoded answers as instances: the masks, boxes and points rewards compare with the targets.

A :class:`DecoderSession` wraps any :class:`~getok.decoding.base.MaskDecoder`, calls ``set_image`` once
per image (so a SAM decoder embeds each image once per group of rollouts) and caches the decoded
:class:`Instance` of each answer line. The default decoder is the weight-free ``raster`` decoder
(:mod:`getok.decoding.raster`); for it the session never builds full-size masks: plain and shifted grid
cells are kept as cells of a (sub-)grid (:func:`~getok.ops.raster.raster_cells`, areas and intersections counted per cell
from :meth:`~getok.rl.truth.Target.cell_counts`), other regions as tight crops (:func:`~getok.ops.raster.raster_crop`).
Both are exact: tests compare them with the decoder's own masks.
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..codecs import NO_TARGET, Codec, get_codec
from ..decoding import get_decoder
from ..decoding.raster import RasterDecoder
from ..errors import ConfigError, DecodeError, GetokError
from ..geometry import Geometry
from ..ops.grid import grid_points
from ..ops.raster import cells_crop, grid_runs, raster_cells, raster_crop, trim_crop
from ..provenance import image_hash
from ..records import load_image_rgb
from .rewards_common import line_key
from .truth import Target, Truth

__all__ = [
    "WEIGHT_FREE",
    "DecoderSession",
    "Instance",
    "instance_key",
    "instance_points",
    "target_iou",
    "box_or_none",
]

log = logging.getLogger(__name__)


def instance_key(line: str, geometry: Geometry) -> str:
    """Canonical key of a decoded answer line: the sorted cell indices of a plain grid answer (the same
    cells in any order are the same instance), else :func:`line_key` of its text."""
    g = geometry
    if g.cells is not None and g.offsets is None and g.deleted is None and len(g.cells):
        return f"g{g.grid_n}:" + np.sort(g.cells[:, 1] * g.grid_n + g.cells[:, 0]).tobytes().hex()
    return line_key(line)


@functools.lru_cache(maxsize=64)
def _cell_centres(n: int, h: int, w: int) -> np.ndarray:
    """:func:`~getok.ops.grid.grid_points` (every cell centre, row-major), cached and read-only: the points
    of plain grid answers, the same floats as :meth:`Geometry.cell_centers` gives the generic path."""
    out = grid_points(n, (h, w))
    out.setflags(write=False)
    return out


def instance_points(g: Geometry) -> np.ndarray:
    """The points a prediction places (what a point-prompted decoder sees), ``(K, 2)`` XY pixels:
    refined points of a refined proposal, cell centres of cells, its points, polygon vertices, the box
    centre — the first that exists."""
    if g.cells is not None and len(g.cells):
        if g.offsets is not None or g.deleted is not None:
            return g.points if g.points is not None else g.refined_points()
        return g.cell_centers()
    if g.points is not None and len(g.points):
        return g.points
    if g.polygons:
        return np.concatenate(list(g.polygons), axis=0)
    if g.box is not None:
        b = g.box
        return np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]])
    return np.zeros((0, 2))


def _unique_sorted(values: np.ndarray, bound: int) -> np.ndarray:
    """Sorted unique integers in ``[0, bound)`` (an occupancy table for small bounds: faster than np.unique)."""
    if bound <= 1 << 16:
        occ = np.zeros(bound, dtype=bool)
        occ[values] = True
        return np.flatnonzero(occ)
    return np.unique(values)


@dataclass(eq=False)
class Instance:
    """One decoded predicted instance with the features rewards use.

    A region is held either as a crop of the decoded mask (``crop`` at ``origin``), or — for plain grid
    cells drawn by the ``raster`` decoder — as its cells (``cells``, unique row-major indices on the
    ``grid_n`` grid), whose areas and intersections are counted per cell, exactly, without pixels; the
    crop is then built only if asked for.

    Attributes
    ----------
    key : str
        Canonical key of its answer line (:func:`instance_key`: instance order, duplicate detection).
    geometry : Geometry
    area : int
        Decoded mask pixels.
    box : (4,) float or None
        XYXY box of the decoded mask; the geometry's box when the mask is empty; ``None`` when neither.
    points : (K, 2) float
        :func:`instance_points`.
    origin : (int, int)
        ``(row0, col0)`` of ``crop`` in the image.
    cells : (U,) int or None
        Cell-space form (see above).
    grid_n : int or None
    min_sep : float or None
        A lower bound of the distance between two distinct ``points`` (the cell size for cell centres).
    point_cells : (K,) int or None
        When ``points`` are the centres of cells of the ``grid_n`` grid (a plain grid answer): their
        row-major indices, in order, repeats kept — rewards then read hits and repeats per cell.
    """

    key: str
    geometry: Geometry
    area: int
    box: np.ndarray | None
    points: np.ndarray
    origin: tuple[int, int] = (0, 0)
    cells: np.ndarray | None = None
    grid_n: int | None = None
    min_sep: float | None = None
    point_cells: np.ndarray | None = None
    _crop: np.ndarray | None = None

    @classmethod
    def build(
        cls, key: str, geometry: Geometry, crop: np.ndarray, row0: int = 0, col0: int = 0, *, tight: bool = False
    ) -> Instance:
        """From a decoded crop (or a full mask with ``row0 = col0 = 0``), trimmed to its content unless
        ``tight`` says it already is."""
        crop = np.asarray(crop, dtype=bool)
        crop, r0, c0 = (crop, int(row0), int(col0)) if tight else trim_crop(crop, int(row0), int(col0))
        h, w = geometry.size
        if r0 < 0 or c0 < 0 or r0 + crop.shape[0] > h or c0 + crop.shape[1] > w:
            raise DecodeError(f"decoded region {crop.shape} at {(r0, c0)} exceeds the image {geometry.size}", "decoder")
        area = int(np.count_nonzero(crop))
        if area:
            box = np.array([c0, r0, c0 + crop.shape[1], r0 + crop.shape[0]], dtype=np.float64)
        else:
            box = geometry.box if geometry.box is not None else None
        return cls(
            key=key,
            geometry=geometry,
            area=area,
            box=box,
            points=instance_points(geometry),
            origin=(r0, c0),
            _crop=crop,
        )

    @classmethod
    def from_cells(
        cls, key: str, geometry: Geometry, indices: np.ndarray, grid: int, points: np.ndarray | None = None
    ) -> Instance:
        """The ``raster`` decoder's region as cells of a ``grid x grid`` grid (:func:`raster_cells`), in
        cell space: exact area and box from the pixel runs of each grid row / column.

        ``points`` default to the centres of the geometry's cells (for a plain grid answer, whose
        distinct points are then at least a cell apart: ``min_sep``).
        """
        h, w = geometry.size
        flat = _unique_sorted(indices, grid * grid)  # sorted row-major
        rr, rs, cc, cs = grid_runs(grid, h, w)
        cy, cx = flat // grid, flat % grid
        pix_r, pix_c = rr[cy], cc[cx]
        area = int(np.dot(pix_r, pix_c))
        box = None
        if area and grid <= min(h, w):  # every grid row / column covers pixels
            x1, x2 = int(cx.min()), int(cx.max())
            y1, y2 = int(cy[0]), int(cy[-1])
            box = np.array([cs[x1], rs[y1], cs[x2] + cc[x2], rs[y2] + rr[y2]], dtype=np.float64)
        elif area:
            nz = (pix_r > 0) & (pix_c > 0)
            box = np.array(
                [cs[cx[nz]].min(), rs[cy[nz]].min(), (cs + cc)[cx[nz]].max(), (rs + rr)[cy[nz]].max()], dtype=np.float64
            )
        min_sep = point_cells = None
        if points is None:
            n = geometry.grid_n
            c = geometry.cells
            point_cells = c[:, 1] * n + c[:, 0]
            points = _cell_centres(n, h, w)[point_cells]  # cell centres, XY
            min_sep = min(w / n, h / n)
        return cls(
            key=key,
            geometry=geometry,
            area=area,
            box=box,
            points=points,
            cells=flat,
            grid_n=grid,
            min_sep=min_sep,
            point_cells=point_cells,
        )

    @property
    def crop(self) -> np.ndarray:
        """The decoded mask inside its tight box (``(0, 0)`` when empty); ``origin`` places it."""
        if self._crop is None:
            n = self.grid_n
            crop, r0, c0 = cells_crop(np.stack([self.cells % n, self.cells // n], axis=1), n, self.geometry.size)
            self._crop, self.origin = crop, (r0, c0)
        return self._crop

    @property
    def mask(self) -> np.ndarray:
        """The decoded mask, full size ``(H, W)`` bool (built on demand)."""
        crop = self.crop
        m = np.zeros(self.geometry.size, dtype=bool)
        r0, c0 = self.origin
        m[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
        return m

    def centroid(self) -> np.ndarray | None:
        """Mean pixel centre ``(x, y)`` of the decoded mask, ``None`` when it is empty."""
        if not self.area:
            return None
        crop = self.crop
        ys, xs = np.nonzero(crop)
        return np.array([xs.mean() + self.origin[1] + 0.5, ys.mean() + self.origin[0] + 0.5])


def box_or_none(inst: Instance | None) -> np.ndarray:
    """The instance's box, NaN row when it has none (matching convention)."""
    if inst is None or inst.box is None:
        return np.full(4, np.nan)
    return inst.box


def target_iou(inst: Instance, target: Target | None) -> float:
    """IoU of a decoded instance with a target (``None`` = an empty target); 1 when both are empty.

    The intersection is counted on the overlap of the two tight boxes only (exact).
    """
    if target is None or target.area == 0:
        return 1.0 if inst.area == 0 else 0.0
    if inst.area == 0:
        return 0.0
    if inst.cells is not None:  # cell space: the target's pixels in each cell, summed over the cells
        inter = int(target.cell_counts(inst.grid_n).reshape(-1)[inst.cells].sum())
        union = inst.area + target.area - inter
        return inter / union if union else 1.0
    r0, c0 = inst.origin
    ih, iw = inst.crop.shape
    tr0, tc0 = target.origin
    th, tw = target.crop_mask.shape
    ra, rb = max(r0, tr0), min(r0 + ih, tr0 + th)
    ca, cb = max(c0, tc0), min(c0 + iw, tc0 + tw)
    inter = 0
    if rb > ra and cb > ca:
        a = inst.crop[ra - r0 : rb - r0, ca - c0 : cb - c0]
        inter = int(np.count_nonzero(a & target.crop_mask[ra - tr0 : rb - tr0, ca - tc0 : cb - tc0]))
    union = inst.area + target.area - inter
    return inter / union if union else 1.0


def _image_key(image) -> str:
    return "img:" + image_hash(np.asarray(image))


#: Decoders that need only the image size, never its pixels.
WEIGHT_FREE = frozenset({"raster"})


class DecoderSession:
    """A mask decoder used across many responses: one ``set_image`` per image, cached line decodes.

    Parameters
    ----------
    decoder : MaskDecoder or str, optional
        A decoder instance or a spec for :func:`~getok.decoding.base.get_decoder`; default: the
        weight-free ``raster`` decoder (drawn as crops by :func:`raster_crop`). A decoder may offer
        ``decode_crop(geometry) -> (crop, row0, col0)`` to skip full-size masks, and ``needs_image``
        (default: true unless its name is in :data:`WEIGHT_FREE`).
    cache_size : int
        Decoded instances kept (LRU), keyed by (image key, codec spec, kind, line text).
    image_loader : callable, optional
        ``path -> (H, W, 3) uint8`` for truths that name an image file (default
        :func:`~getok.records.load_image_rgb`).

    Responses of one image should be scored consecutively (a group of rollouts): switching images
    re-runs ``set_image``.
    """

    def __init__(self, decoder=None, cache_size: int = 512, image_loader: Callable | None = None) -> None:
        if decoder is None or isinstance(decoder, str):
            decoder = get_decoder(decoder or "raster")
        self.decoder = decoder
        #: the raster decoder is drawn as crops (:func:`raster_crop`, same pixels, no full-size masks)
        self._crops = raster_crop if type(decoder) is RasterDecoder else getattr(decoder, "decode_crop", None)
        needs = getattr(decoder, "needs_image", None)
        self.needs_image = bool(needs) if needs is not None else getattr(decoder, "name", "") not in WEIGHT_FREE
        self.cache_size = int(cache_size)
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._codecs: dict[str, Codec] = {}
        self._image_cache: dict[str, np.ndarray] = {}
        self._image_loader = image_loader
        self.key: str | None = None
        self._last_image = None
        self._last_image_key: str | None = None
        self.set_image_calls = 0
        self.hits = 0
        self.misses = 0

    def codec(self, spec: str) -> Codec:
        if not isinstance(spec, str):
            raise ConfigError(f"a codec spec must be a string, got {type(spec).__name__} {spec!r:.60}")
        c = self._codecs.get(spec)
        if c is None:
            c = self._codecs[spec] = get_codec(spec)
        return c

    def prepare(self, truth: Truth, image=None) -> str:
        """Make the decoder ready for the truth's image; returns the image key in use."""
        key = truth.key
        if self.needs_image and image is not None and truth.image_id is None and truth.image is None:
            if image is not self._last_image:  # the rollouts of a group pass the same image object
                self._last_image, self._last_image_key = image, _image_key(image)
            key = self._last_image_key
        if key == self.key:
            return key
        if self.needs_image and image is None and truth.image is not None:
            image = self._load(truth.image)
        if image is not None and not isinstance(image, np.ndarray):
            image = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
        self.decoder.set_image(image if self.needs_image else None, size=truth.size, key=key)
        self.set_image_calls += 1
        self.key = key
        return key

    def _load(self, path: str) -> np.ndarray:
        if path not in self._image_cache:
            if self._image_loader is None:
                self._image_loader = load_image_rgb
            if len(self._image_cache) > 8:
                self._image_cache.clear()
            self._image_cache[path] = self._image_loader(path)
        return self._image_cache[path]

    def cached(self, key: tuple) -> Instance | None:
        inst = self._cache.get((self.key,) + key)
        if inst is not None:
            self._cache.move_to_end((self.key,) + key)
            self.hits += 1
        return inst

    def store(self, key: tuple, inst: Instance) -> Instance:
        self.misses += 1
        self._cache[(self.key,) + key] = inst
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return inst

    def instance(self, key: str, geometry: Geometry) -> Instance:
        """Decode one geometry into an :class:`Instance` (no caching)."""
        fast = self._crops
        g = geometry
        if fast is raster_crop:
            as_cells = raster_cells(g)
            if as_cells is not None:
                plain = g.offsets is None and g.deleted is None
                return Instance.from_cells(key, g, *as_cells, points=None if plain else instance_points(g))
        try:
            if fast is not None:
                return Instance.build(key, geometry, *fast(geometry), tight=True)
            mask = np.asarray(self.decoder.decode(geometry), dtype=bool)
        except GetokError as exc:  # a decoder that refuses a geometry: an empty region, logged
            log.debug("decoder %s refused %r: %s", getattr(self.decoder, "name", "?"), geometry, exc)
            mask = np.zeros(geometry.size, dtype=bool)
        if mask.shape != geometry.size:
            raise DecodeError(f"decoder returned a mask of shape {mask.shape} for size {geometry.size}", "decoder")
        return Instance.build(key, geometry, mask)

    def decode_lines(self, spec: str, lines: list[str], size, kind: str) -> list[Instance]:
        """Decode answer lines into instances (cached per line); raises :class:`DecodeError` on the first
        malformed line (reason from the codec)."""
        codec = self.codec(spec)
        out = []
        for i, line in enumerate(lines):
            ck = ("line", spec, kind, size, line)
            inst = self.cached(ck)
            if inst is None:
                if line.lower() == NO_TARGET:
                    raise DecodeError(f"instance {i}: 'none' mixed with instances", "bad_structure")
                res = codec.try_decode(line, size, kind)
                if res.error is not None:
                    raise DecodeError(f"instance {i}: {res.error}", res.error.reason)
                if len(res.geometries) != 1:
                    raise DecodeError(f"instance {i}: line decodes to {len(res.geometries)} objects", "bad_structure")
                inst = self.store(ck, self.instance(instance_key(line, res.geometries[0]), res.geometries[0]))
            out.append(inst)
        return out
