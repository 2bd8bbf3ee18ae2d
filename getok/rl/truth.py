"""Ground truth for rewards, packed as JSON (EasyR1 passes only a ``ground_truth`` string to rewards).

A packed truth is one JSON object (version 1)::

    {"v": 1,
     "task": "stage1" | "stage2" | "polygon",
     "codec": "grid:n=32",            # codec spec of the answers (stage 2: a grid_offset spec)
     "kind": "mask",                  # kind of the answer (point, box, mask, polyline)
     "size": [H, W],                  # image size in pixels
     "masks": [RLE, ...],             # per target: a COCO RLE of the image ({"size": [H, W], "counts": ...})
                                      # or of its tight box: {"crop": [x1, y1, x2, y2], "rle": RLE of the crop}
     "boxes": [[x1, y1, x2, y2], ...],# optional; XYXY pixels, derived from the masks when absent
     "points": [[[x, y], ...], ...],  # optional; per-instance points (XY pixels), carried, not scored
     "proposal": "<g32_r03_c04>...",  # stage 2: the stage-1 answer the refinement applies to
     "image": "images/0001.jpg",      # optional: path, for decoders that need pixels (SAM)
     "image_id": "0001"}              # optional: key of the image for embedding caches

Empty ``masks`` (and ``boxes``) is a no-target query. The keys are those of
:attr:`getok.samples.Sample.truth` plus ``task`` / ``codec`` / ``kind`` / ``image`` /
``image_id``, so ``unpack_truth(sample.truth, codec=sample.codec)`` works on a sample's truth.
A truth with boxes but no masks (a REC query) uses the boxes' rasters as target masks. :func:`pack_truth`
writes the cropped form (it decodes without building a full-size mask: a GRPO group decodes its truth
once, and that is most of the reward's cost per group); both forms are read.

Boxes are finite with ``x1 <= x2`` and ``y1 <= y2`` and points finite: :func:`pack_truth` refuses others,
and :func:`unpack_truth` raises :class:`~getok.errors.DataError` naming any malformed field (``v`` other
than 1, a non-string ``codec`` / ``proposal`` / ``image``, a NaN box ...), which the rewards score as an
invalid truth (``reason = "bad_truth"``) instead of raising.

Examples
--------
>>> import numpy as np
>>> m = np.zeros((40, 60), bool); m[10:20, 5:25] = True
>>> text = pack_truth(size=(40, 60), masks=[m], codec="grid:n=8")
>>> t = unpack_truth(text)
>>> t.size, t.n_targets, t.targets[0].box.tolist(), t.targets[0].area
((40, 60), 1, [5.0, 10.0, 25.0, 20.0], 200)
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..conventions import as_size
from ..errors import DataError, GeometryError
from ..geometry import KINDS
from ..ops.boxes import box_to_mask, mask_to_box
from ..ops.grid import grid_points, pixel_cell_lookup
from ..ops.masks import as_mask, rle_decode, rle_encode
from ..ops.points import pixel_values
from ..records import check_image_size

__all__ = ["TASKS", "TRUTH_VERSION", "Target", "Truth", "pack_truth", "unpack_truth", "truth_from_json"]

#: Reward tasks: stage-1 grid proposals, stage-2 offset refinement, polygon answers (SimpleSeg).
TASKS = ("stage1", "stage2", "polygon")
TRUTH_VERSION = 1


@dataclass(frozen=True, eq=False)
class Target:
    """One ground-truth instance with the features rewards need, computed once.

    Attributes
    ----------
    crop_mask : (h, w) bool
        The mask inside its tight box, row-major (``(0, 0)`` for an empty mask).
    origin : (int, int)
        ``(row0, col0)`` of ``crop_mask`` in the image.
    size : (H, W)
    box : (4,) float
        XYXY pixels (the given box, else the tight box of the mask).
    area : int
        Mask pixels.
    """

    crop_mask: np.ndarray
    origin: tuple[int, int]
    size: tuple[int, int]
    box: np.ndarray
    area: int

    @classmethod
    def from_mask(cls, mask: np.ndarray, box=None) -> Target:
        """From a full ``(H, W)`` mask; ``box`` defaults to its tight box."""
        m = as_mask(mask)
        tight = mask_to_box(m)
        if tight is None:
            return cls.from_crop(np.zeros((0, 0), dtype=bool), (0, 0), m.shape, box)
        x1, y1, x2, y2 = (int(v) for v in tight)
        return cls.from_crop(m[y1:y2, x1:x2], (y1, x1), m.shape, box)

    @classmethod
    def from_crop(cls, crop: np.ndarray, origin: tuple[int, int], size: tuple[int, int], box=None) -> Target:
        """From the part of a mask inside a rectangle at ``origin = (row0, col0)`` (zero elsewhere)."""
        crop = as_mask(crop, name="crop") if np.asarray(crop).size else np.zeros((0, 0), dtype=bool)
        h, w = as_size(size)
        r0, c0 = int(origin[0]), int(origin[1])
        if r0 < 0 or c0 < 0 or r0 + crop.shape[0] > h or c0 + crop.shape[1] > w:
            raise DataError(f"mask crop {crop.shape} at (row, col)={(r0, c0)} exceeds the image (H, W)={(h, w)}")
        tight = mask_to_box(crop) if crop.size else None
        if tight is None:
            crop, (r0, c0) = np.zeros((0, 0), dtype=bool), (0, 0)
        else:
            x1, y1, x2, y2 = (int(v) for v in tight)
            # row-major copy of the tight box only (RLE decodes column-major; lookups want row-major)
            crop, r0, c0 = np.ascontiguousarray(crop[y1:y2, x1:x2]), r0 + y1, c0 + x1
        if box is None:
            box = (
                np.array([c0, r0, c0 + crop.shape[1], r0 + crop.shape[0]], dtype=np.float64)
                if crop.size
                else np.zeros(4)
            )
        box = _as_box(box)
        return cls(crop_mask=crop, origin=(r0, c0), size=(h, w), box=box, area=int(np.count_nonzero(crop)))

    def to_rle(self, cropped: bool = True) -> dict:
        """The packed mask: ``{"crop": [x1, y1, x2, y2], "rle": RLE of the crop}`` or a full-image RLE."""
        if not cropped:
            return rle_encode(self.mask)
        (r0, c0), (h, w) = self.origin, self.crop_mask.shape
        return {"crop": [c0, r0, c0 + w, r0 + h], "rle": rle_encode(self.crop_mask)}

    @property
    def crop(self) -> tuple[slice, slice]:
        """Rows and columns of the tight box: ``mask[crop]`` holds every mask pixel."""
        (r0, c0), (h, w) = self.origin, self.crop_mask.shape
        return slice(r0, r0 + h), slice(c0, c0 + w)

    def cell_counts(self, n: int) -> np.ndarray:
        """Mask pixels in each cell of the ``n x n`` grid, ``(n, n)`` int indexed ``[cy, cx]`` (pixels
        assigned to cells as :func:`~getok.ops.grid.pixel_cell_lookup` does); cached per ``n``."""
        cache = self.__dict__.setdefault("_cell_counts", {})
        if n not in cache:
            finer = next((k * n for k in (2, 4, 8) if k * n in cache), None)
            if finer is not None:  # grid rows of n are exactly unions of k rows of k n (k a power of 2)
                k = finer // n
                cache[n] = cache[finer].reshape(n, k, n, k).sum(axis=(1, 3))
                return cache[n]
            out = np.zeros((n, n), dtype=np.int64)
            if self.area:
                rows, cols = pixel_cell_lookup(n, self.size)
                (r0, c0), (h, w) = self.origin, self.crop_mask.shape
                rsel, csel = rows[r0 : r0 + h], cols[c0 : c0 + w]  # non-decreasing
                rstart = np.flatnonzero(np.r_[True, rsel[1:] != rsel[:-1]])
                cstart = np.flatnonzero(np.r_[True, csel[1:] != csel[:-1]])
                per_row = np.add.reduceat(self.crop_mask.view(np.uint8), rstart, axis=0, dtype=np.int32)
                out[np.ix_(rsel[rstart], csel[cstart])] = np.add.reduceat(per_row, cstart, axis=1)
            cache[n] = out
        return cache[n]

    @functools.cached_property
    def mask(self) -> np.ndarray:
        """The full mask ``(H, W)`` bool (built on first use)."""
        m = np.zeros(self.size, dtype=bool)
        m[self.crop] = self.crop_mask
        return m

    @functools.cached_property
    def centroid(self) -> np.ndarray:
        """Mean pixel centre ``(x, y)`` of the mask (the box centre for an empty mask)."""
        if self.area == 0:
            b = self.box
            return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        ys, xs = np.nonzero(self.crop_mask)
        return np.array([xs.mean() + self.origin[1] + 0.5, ys.mean() + self.origin[0] + 0.5])


def _as_box(box, name: str = "box") -> np.ndarray:
    """A ``(4,)`` float XYXY box, finite with ``x1 <= x2`` and ``y1 <= y2``; else :class:`DataError`
    naming ``name`` (a NaN or reversed box would be scored silently as something else)."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(4)
    except (TypeError, ValueError) as exc:
        raise DataError(f"truth {name} must be [x1, y1, x2, y2], got {box!r}") from exc
    if not np.isfinite(b).all():
        raise DataError(f"truth {name} must be finite, got {b.tolist()}")
    if b[2] < b[0] or b[3] < b[1]:
        raise DataError(f"truth {name} is reversed (needs x1 <= x2 and y1 <= y2), got {b.tolist()}")
    return b


def _as_points(points, name: str = "points") -> tuple[np.ndarray, ...]:
    """Per-instance ``(K, 2)`` float points, finite; else :class:`DataError` naming ``name``."""
    try:
        out = tuple(np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in points)
    except (TypeError, ValueError) as exc:
        raise DataError(f"truth {name} must be per-instance lists of [x, y]: {exc}") from exc
    for i, p in enumerate(out):
        if not np.isfinite(p).all():
            raise DataError(f"truth {name}[{i}] must be finite, got {p.tolist()}")
    return out


def _optional_str(value, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise DataError(f"truth.{name} must be a string or null, got {type(value).__name__} {value!r:.60}")
    return value


#: Caches a :class:`Truth` keeps in its ``__dict__`` (functions of ``size`` and ``targets`` only).
_TRUTH_CACHES = ("label_bits", "_centre_bits")


@dataclass(frozen=True, eq=False)
class Truth:
    """Unpacked ground truth of one query.

    Attributes
    ----------
    size : (H, W)
    targets : tuple of Target
        Empty for a no-target query.
    task : str
        One of :data:`TASKS`.
    codec : str or None
        Codec spec of the answers.
    kind : str
        Answer kind.
    proposal : str or None
        Stage 2: the stage-1 answer text the refinement applies to.
    points : tuple of (K, 2) float, optional
        Per-instance points (XY pixels), when the truth carries them.
    image : str or None
        Image path for decoders that need pixels.
    image_id : str or None
        Key naming the image (decoder caches).
    """

    size: tuple[int, int]
    targets: tuple[Target, ...] = ()
    task: str = "stage1"
    codec: str | None = None
    kind: str = "mask"
    proposal: str | None = None
    points: tuple[np.ndarray, ...] | None = None
    image: str | None = None
    image_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "size", as_size(self.size))
        except GeometryError as exc:
            raise DataError(f"truth.size: {exc}") from exc
        check_image_size(*self.size, what="truth.size")  # a mask of that size must fit in memory
        for name in ("codec", "proposal", "image", "image_id"):
            _optional_str(getattr(self, name), name)
        if not isinstance(self.targets, tuple) or not all(isinstance(t, Target) for t in self.targets):
            raise DataError("truth.targets must be a tuple of Target")
        if not isinstance(self.extra, dict):
            raise DataError(f"truth.extra must be a dict, got {type(self.extra).__name__}")
        if not isinstance(self.task, str) or self.task not in TASKS:
            raise DataError(f"truth.task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise DataError(f"truth.kind must be one of {KINDS}, got {self.kind!r}")
        for t in self.targets:
            if t.size != self.size:
                raise DataError(f"truth mask shape {t.size} differs from size (H, W)={self.size}")

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @functools.cached_property
    def label_bits(self) -> np.ndarray | None:
        """Target membership of every pixel as bits, ``(H, W)`` unsigned: bit ``j`` set where target
        ``j`` covers the pixel (targets may overlap); ``None`` with more than 64 targets."""
        g = len(self.targets)
        if g > 64:
            return None
        dtype = np.uint8 if g <= 8 else np.uint16 if g <= 16 else np.uint32 if g <= 32 else np.uint64
        bits = np.zeros(self.size, dtype=dtype)
        for j, t in enumerate(self.targets):
            if t.area:
                bits[t.crop] |= t.crop_mask.astype(dtype) << dtype(j)
        return bits

    def centre_bits(self, n: int) -> np.ndarray | None:
        """:attr:`label_bits` at the pixel holding each cell centre of the ``n x n`` grid, ``(n * n,)``
        indexed row-major (``cy * n + cx``; :func:`~getok.ops.points.pixel_values`' rule); cached per ``n``."""
        bits = self.label_bits
        if bits is None:
            return None
        cache = self.__dict__.setdefault("_centre_bits", {})
        if n not in cache:
            cache[n] = pixel_values(grid_points(n, self.size), bits)
        return cache[n]

    @property
    def key(self) -> str:
        """Image key for decoder caches: ``image_id``, else ``image``, else the size."""
        if self.image_id is not None:
            return str(self.image_id)
        if self.image is not None:
            return str(self.image)
        return f"size:{self.size[0]}x{self.size[1]}"

    def replace(self, **changes) -> Truth:
        """A copy with some fields changed (validated as a new :class:`Truth`; an unknown name is a
        ``TypeError``). Only the constructor's fields are copied, never the cached values in
        ``__dict__``; those (functions of ``size`` and ``targets``) carry over when neither changes."""
        out = dataclasses.replace(self, **changes)
        if out.size == self.size and out.targets is self.targets:
            for k in _TRUTH_CACHES:
                if k in self.__dict__:
                    v = self.__dict__[k]
                    out.__dict__[k] = dict(v) if isinstance(v, dict) else v
        return out

    def with_proposal(self, proposal: str | None) -> Truth:
        """A copy with another stage-1 proposal (e.g. the policy's own, in real two-turn rollouts)."""
        return self.replace(proposal=proposal)

    def to_dict(self, cropped: bool = True) -> dict:
        """The JSON-able packed form (see the module docstring); ``cropped=False`` writes full-image RLEs."""
        d: dict[str, Any] = {
            "v": TRUTH_VERSION,
            "task": self.task,
            "codec": self.codec,
            "kind": self.kind,
            "size": list(self.size),
            "masks": [t.to_rle(cropped) for t in self.targets],
            "boxes": [[float(v) for v in t.box] for t in self.targets],
        }
        if self.points is not None:
            d["points"] = [np.asarray(p, dtype=float).reshape(-1, 2).tolist() for p in self.points]
        for k in ("proposal", "image", "image_id"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d.update(self.extra)
        return d


def pack_truth(
    size: tuple[int, int],
    masks: Sequence[np.ndarray] = (),
    boxes: Sequence[Sequence[float]] | None = None,
    *,
    codec: str | None = None,
    task: str = "stage1",
    kind: str = "mask",
    proposal: str | None = None,
    points: Sequence[np.ndarray] | None = None,
    image: str | None = None,
    image_id: str | None = None,
    cropped: bool = True,
) -> str:
    """Pack ground truth into the JSON string of the module docstring.

    Parameters
    ----------
    size : (H, W)
    masks : sequence of (H, W) bool
        One per target instance; empty for a no-target query.
    boxes : sequence of (4,) XYXY pixels, optional
        Defaults to the masks' tight boxes.
    codec, task, kind, proposal, points, image, image_id
        As in :class:`Truth`.
    cropped : bool
        Write each mask as the RLE of its tight box (default) rather than of the whole image.
    """
    size = as_size(size)
    ms = [as_mask(m, size) for m in masks]
    if boxes is None:
        bs = [mask_to_box(m) for m in ms]
        bs = [b if b is not None else np.zeros(4) for b in bs]
    else:
        bs = [_as_box(b, f"boxes[{i}]") for i, b in enumerate(boxes)]
        if len(bs) != len(ms):
            raise DataError(f"{len(bs)} boxes for {len(ms)} masks")
    truth = Truth(
        size=size,
        targets=tuple(Target.from_mask(m, b) for m, b in zip(ms, bs)),
        task=task,
        codec=codec,
        kind=kind,
        proposal=proposal,
        points=None if points is None else _as_points(points),
        image=image,
        image_id=image_id,
    )
    return json.dumps(truth.to_dict(cropped), separators=(",", ":"))


def unpack_truth(truth: str | dict | Truth, **overrides) -> Truth:
    """A packed truth (JSON string or dict, or a :class:`Truth`) → :class:`Truth`.

    ``overrides`` replace fields (``codec=``, ``task=``, ``proposal=`` ...). JSON strings are cached
    (LRU), so the same truth scored for every rollout of a group is decoded once.
    Raises :class:`~getok.errors.DataError` on a malformed truth (a data problem, not a model one).
    """
    if isinstance(truth, Truth):
        base = truth
    elif isinstance(truth, str):
        base = truth_from_json(truth)
    elif isinstance(truth, dict):
        base = _from_dict(truth)
    else:
        raise DataError(f"truth must be a JSON string, a dict or a Truth, got {type(truth).__name__}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return base
    return base.replace(**overrides)


@functools.lru_cache(maxsize=512)
def truth_from_json(text: str) -> Truth:
    """Cached JSON string → :class:`Truth` (the result is shared: treat it as read-only)."""
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"truth is not valid JSON: {exc}; starts {str(text)[:60]!r}") from exc
    if not isinstance(d, dict):
        raise DataError(f"truth JSON must be an object, got {type(d).__name__}")
    return _from_dict(d)


_KNOWN = {"v", "task", "codec", "kind", "size", "masks", "boxes", "points", "proposal", "image", "image_id"}


def _from_dict(d: dict) -> Truth:
    """Packed dict → :class:`Truth`; any malformed field is a :class:`DataError` naming it."""
    try:
        return _parse_dict(d)
    except DataError:
        raise
    except (GeometryError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise DataError(f"malformed truth: {type(exc).__name__}: {exc}") from exc


def _list_field(d: dict, name: str) -> list | None:
    value = d.get(name)
    if value is not None and not isinstance(value, (list, tuple)):
        raise DataError(f"truth {name!r} must be a list or null, got {type(value).__name__}")
    return None if value is None else list(value)


def _parse_dict(d: dict) -> Truth:
    v = d.get("v", TRUTH_VERSION)
    if isinstance(v, bool) or not isinstance(v, int) or v != TRUTH_VERSION:
        raise DataError(f"truth version 'v' = {v!r:.60} is not supported (this getok reads v{TRUTH_VERSION})")
    if "size" not in d:
        raise DataError("truth has no 'size' [H, W]")
    try:
        size = as_size(d["size"])
    except GeometryError as exc:
        raise DataError(f"truth 'size': {exc}") from exc
    boxes = _list_field(d, "boxes")
    boxes = None if boxes is None else [_as_box(b, f"boxes[{i}]") for i, b in enumerate(boxes)]
    entries = _list_field(d, "masks") or []
    if boxes is not None and entries and len(boxes) != len(entries):
        raise DataError(f"truth has {len(boxes)} boxes for {len(entries)} masks")
    targets = []
    for i, r in enumerate(entries):
        box = None if boxes is None else boxes[i]
        if not isinstance(r, dict):
            raise DataError(f"truth masks[{i}] must be an RLE object, got {type(r).__name__}")
        if "crop" in r:
            x1, y1, x2, y2 = (int(v) for v in r["crop"])
            crop = rle_decode(r["rle"])
            if crop.shape != (y2 - y1, x2 - x1):
                raise DataError(f"mask crop RLE of shape {crop.shape} for the box {r['crop']}")
            targets.append(Target.from_crop(crop, (y1, x1), size, box))
        else:
            m = rle_decode(r)
            if m.shape != size:
                raise DataError(f"truth mask shape {m.shape} differs from size (H, W)={size}")
            targets.append(Target.from_mask(m, box))
    if not entries and boxes:
        targets = [Target.from_mask(box_to_mask(b, size), b) for b in boxes]
    pts = _list_field(d, "points")
    if pts is not None:
        pts = _as_points(pts)
    image_id = d.get("image_id")
    if isinstance(image_id, bool) or not isinstance(image_id, (str, int, type(None))):
        raise DataError(f"truth 'image_id' must be a string, an integer or null, got {image_id!r:.60}")
    return Truth(
        size=size,
        targets=tuple(targets),
        task=d.get("task") or "stage1",
        codec=d.get("codec"),
        kind=d.get("kind") or "mask",
        proposal=d.get("proposal"),
        points=pts,
        image=d.get("image"),
        image_id=None if image_id is None else str(image_id),
        extra={k: v for k, v in d.items() if k not in _KNOWN},
    )
