"""Point-mask cache on disk: one JSON file of compressed COCO RLEs per (image, proposer, settings, n).

Computing point masks is the slow part of building grid-token data (SAM: seconds per image on a CPU), and
reading them back is cheap, so point masks are computed once and cached:

* **key** = sha256 of ``{image: sha256 of the pixels, proposer: name, settings: proposer.settings(), n}``,
  so a different checkpoint, threshold or grid never reads a stale entry, and a renamed file still hits;
* **file** = ``<root>/<proposer>/<key[:2]>/<key>.json`` holding the distinct masks as compressed RLE
  (pycocotools), the point → mask index and the scores;
* writes are atomic (temporary file, then rename), so an interrupted build leaves no half-written entry
  and :meth:`PointMaskCache.build` simply skips what is already there (resumable).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..conventions import as_size
from ..errors import DataError, GeometryError, GetokError, require
from ..io import atomic_write_text
from ..provenance import image_hash
from .proposers.base import MaskProposer, PointMaskStack

__all__ = [
    "FORMAT",
    "cache_key",
    "stack_to_record",
    "stack_from_record",
    "PointMaskCache",
    "CacheBuildReport",
    "RlePointMaskStack",
]

log = logging.getLogger(__name__)

#: Format tag written into every cache file (and required on reading). It keeps the name point masks had
#: when the format was made: existing caches stay readable (a changed tag would recompute them all).
FORMAT = "getok-proposals/1"


def cache_key(image_sha256: str, proposer_name: str, settings: dict, n: int) -> str:
    """The cache key (sha256 hex) of point masks of one image by one proposer configuration on one grid."""
    blob = json.dumps(
        {"image": image_sha256, "proposer": proposer_name, "settings": settings, "n": int(n)},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def stack_to_record(stack: PointMaskStack) -> dict:
    """A :class:`PointMaskStack` as a JSON-able dict (masks as compressed RLE strings)."""
    rles = stack.rles()
    counts = [r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"] for r in rles]
    return {
        "n": stack.n,
        "size": list(stack.size),
        "point_to_mask": stack.point_to_mask.tolist(),
        "scores": None if stack.scores is None else np.asarray(stack.scores, dtype=np.float64).round(6).tolist(),
        "counts": counts,
        "counts_sha256": _counts_digest(counts),
    }


def _counts_digest(counts: list[str]) -> str:
    # pycocotools does not validate compressed strings (a corrupt one decodes to garbage), so the cache
    # checks a digest of them instead
    return hashlib.sha256("\n".join(counts).encode("ascii")).hexdigest()


def _decode_rles(rles: list[dict], h: int, w: int) -> np.ndarray:
    """Compressed RLEs → ``(U, H, W)`` bool (a view of pycocotools' Fortran-ordered output, no copy)."""
    mask_utils = require("pycocotools.mask", "coco", "the point-mask cache")
    if not rles:
        return np.zeros((0, h, w), dtype=bool)
    try:
        dec = mask_utils.decode(rles)  # (H, W, U) uint8, Fortran order
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise DataError(f"corrupt RLE in point-mask record: {exc}") from exc
    return dec.reshape(h, w, len(rles)).transpose(2, 0, 1).view(bool)


class RlePointMaskStack(PointMaskStack):
    """A :class:`PointMaskStack` backed by compressed RLEs: ``masks`` are decoded on first access.

    What the cache returns: the greedy builder works on the RLEs alone, so reading a stack for it costs a
    JSON parse, not the decoding of ``U`` full-image masks.
    """

    def __init__(self, n: int, size: tuple[int, int], rles: list[dict], point_to_mask, scores=None) -> None:
        self.n = int(n)
        self.size = as_size(size)
        self._rles = list(rles)
        self._masks: np.ndarray | None = None
        self.point_to_mask = np.asarray(point_to_mask, dtype=np.int64).reshape(-1)
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        if self.point_to_mask.shape != (self.n * self.n,):
            raise GeometryError(f"point_to_mask must have n*n={self.n * self.n} entries")
        if self.point_to_mask.max(initial=-1) >= len(self._rles) or self.point_to_mask.min(initial=0) < -1:
            raise GeometryError("point_to_mask indexes outside masks")
        for r in self._rles:
            if tuple(int(v) for v in r["size"]) != self.size:
                raise GeometryError(f"an RLE has size {r['size']}, the stack {self.size}")

    @property
    def masks(self) -> np.ndarray:
        """``(U, H, W)`` bool, decoded on first access."""
        if self._masks is None:
            self._masks = _decode_rles(self._rles, *self.size)
        return self._masks

    @masks.setter
    def masks(self, value) -> None:  # pragma: no cover - set only by PointMaskStack's own __init__
        self._masks = np.asarray(value, dtype=bool)

    @property
    def num_masks(self) -> int:
        return len(self._rles)

    def rles(self) -> list[dict]:
        return self._rles

    def __repr__(self) -> str:
        return f"RlePointMaskStack(n={self.n}, size={self.size}, masks={len(self._rles)}, decoded={self._masks is not None})"


def stack_from_record(rec: dict, *, lazy: bool = False) -> PointMaskStack:
    """Inverse of :func:`stack_to_record`; the stack keeps the RLEs (no re-encoding later).

    With ``lazy=True`` the result is an :class:`RlePointMaskStack` whose masks are decoded on first use.
    """
    try:
        n = int(rec["n"])
        h, w = (int(v) for v in rec["size"])
        counts = rec["counts"]
        p2m = np.asarray(rec["point_to_mask"], dtype=np.int64)
        scores = rec.get("scores")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"not a point-mask record: {exc}") from exc
    digest = rec.get("counts_sha256")
    try:
        if digest is not None and digest != _counts_digest(counts):
            raise DataError("point-mask record is corrupt: its RLE strings do not match their digest")
        rles = [{"size": [h, w], "counts": c.encode("ascii")} for c in counts]
    except (AttributeError, UnicodeEncodeError) as exc:
        raise DataError(f"not a point-mask record: bad RLE counts ({exc})") from exc
    sc = None if scores is None else np.asarray(scores)
    if lazy:
        return RlePointMaskStack(n, (h, w), rles, p2m, sc)
    stack = PointMaskStack(n=n, size=(h, w), masks=_decode_rles(rles, h, w), point_to_mask=p2m, scores=sc)
    stack.set_rles(rles)
    return stack


@dataclass
class CacheBuildReport:
    """What :meth:`PointMaskCache.build` did."""

    computed: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"computed": self.computed, "cached": self.cached, "failed": [list(f) for f in self.failed]}


class PointMaskCache:
    """Point masks on disk under ``root``.

    Examples
    --------
    >>> import tempfile
    >>> from getok.data_builders.proposers import SuperpixelProposer
    >>> cache = PointMaskCache(tempfile.mkdtemp())
    >>> img = np.zeros((32, 32, 3), np.uint8); img[:, 16:] = 255
    >>> prop = SuperpixelProposer(min_size=10)
    >>> a = cache.get_or_compute(img, prop, 4)
    >>> cache.contains(img, prop, 4), cache.get_or_compute(img, prop, 4).point_to_mask.tolist() == a.point_to_mask.tolist()
    (True, True)
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ keys and paths
    def key(self, image: np.ndarray, proposer: MaskProposer, n: int, *, image_sha256: str | None = None) -> str:
        return cache_key(image_sha256 or image_hash(image), proposer.name, proposer.settings(), n)

    def path(self, key: str, proposer_name: str) -> Path:
        return self.root / proposer_name / key[:2] / f"{key}.json"

    def contains(self, image: np.ndarray, proposer: MaskProposer, n: int) -> bool:
        return self.path(self.key(image, proposer, n), proposer.name).is_file()

    # ------------------------------------------------------------------ read / write
    def load_path(self, path: str | Path, *, lazy: bool = True) -> PointMaskStack:
        """Read one cache file (raises :class:`DataError` naming it when it is unreadable).

        ``lazy`` (default): an :class:`RlePointMaskStack`, masks decoded on first access.
        """
        p = Path(path)
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read point-mask cache file {p}: {exc}") from exc
        if rec.get("format") != FORMAT:
            raise DataError(f"{p}: not a {FORMAT} file (format={rec.get('format')!r})")
        return stack_from_record(rec, lazy=lazy)

    def load(self, image: np.ndarray, proposer: MaskProposer, n: int) -> PointMaskStack | None:
        """The cached stack, or ``None`` when there is none."""
        p = self.path(self.key(image, proposer, n), proposer.name)
        return self.load_path(p) if p.is_file() else None

    def save(
        self, image: np.ndarray, proposer: MaskProposer, n: int, stack: PointMaskStack, *, image_sha256: str | None = None
    ) -> Path:
        """Write ``stack`` atomically under its key; returns the file path."""
        if stack.n != n:
            raise DataError(f"stack is on a {stack.n}-grid, not n={n}")
        if image is not None and tuple(np.shape(image)[:2]) != stack.size:
            raise DataError(f"stack size {stack.size} differs from the image {np.shape(image)[:2]}")
        ih = image_sha256 or image_hash(image)
        settings = proposer.settings()
        key = cache_key(ih, proposer.name, settings, n)
        rec = {"format": FORMAT, "image_sha256": ih, "proposer": proposer.name, "settings": settings, **stack_to_record(stack)}
        return atomic_write_text(self.path(key, proposer.name), json.dumps(rec, separators=(",", ":"), default=str))

    def get_or_compute(self, image: np.ndarray, proposer: MaskProposer, n: int) -> PointMaskStack:
        """The cached stack, computing and saving it first when missing."""
        ih = image_hash(image)
        p = self.path(cache_key(ih, proposer.name, proposer.settings(), n), proposer.name)
        if p.is_file():
            return self.load_path(p)
        stack = proposer.propose(image, n)
        self.save(image, proposer, n, stack, image_sha256=ih)
        return stack

    def build(
        self,
        images: Iterable[tuple[str, np.ndarray | Callable[[], np.ndarray]]],
        proposer: MaskProposer,
        n: int,
        *,
        progress: bool = True,
        total: int | None = None,
    ) -> CacheBuildReport:
        """Fill the cache for many images; already cached ones are skipped (an interrupted build resumes).

        Parameters
        ----------
        images : iterable of (image_id, pixels or a zero-argument loader)
            Pixels ``(H, W, 3)`` uint8 RGB. A loader or proposer that raises a :class:`GetokError`
            counts as a failure (logged, reported), not a crash.
        """
        from tqdm.auto import tqdm

        report = CacheBuildReport()
        for image_id, src in tqdm(images, total=total, disable=not progress, desc=f"point masks ({proposer.name})"):
            try:
                img = src() if callable(src) else src
                ih = image_hash(img)
                p = self.path(cache_key(ih, proposer.name, proposer.settings(), n), proposer.name)
                if p.is_file():
                    report.cached += 1
                    continue
                self.save(img, proposer, n, proposer.propose(img, n), image_sha256=ih)
                report.computed += 1
            except GetokError as exc:
                log.warning("point masks for %s skipped: %s", image_id, exc)
                report.failed.append((str(image_id), str(exc)))
        return report
