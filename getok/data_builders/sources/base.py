"""What every source loader shares: the result collection with its skip list, safe paths, COCO masks.

Loaders never stop half-way over one bad record: a record or object that cannot be used is skipped,
logged and listed in :attr:`ImageCollection.skipped` with the reason (``strict=True`` raises
:class:`~getok.errors.DataError` instead). Paths that escape the data root are always an error.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError

__all__ = ["ImageCollection", "safe_join", "coco_mask_fields", "is_pickle_path"]

log = logging.getLogger("getok.data_builders.sources")


class ImageCollection(list):
    """A list of :class:`~getok.data_builders.records.AnnotatedImage` plus what was left out and why.

    Attributes
    ----------
    skipped : list of dict
        ``{"item": str, "reason": str}`` per skipped image, object or expression.
    source : dict
        Where the images came from (loader name, paths, options), for manifests.
    stats : dict
        Counts the loader keeps (e.g. crowd regions excluded by policy).
    strict : bool
        Raise on the first problem instead of skipping.
    """

    def __init__(self, items=(), *, source: dict | None = None, strict: bool = False) -> None:
        super().__init__(items)
        self.skipped: list[dict[str, str]] = []
        self.source: dict[str, Any] = dict(source or {})
        self.stats: dict[str, int] = {}
        self.strict = strict

    def skip(self, item: str, reason: str) -> None:
        """Record a skipped item (or raise :class:`DataError` when ``strict``)."""
        if self.strict:
            raise DataError(f"{item}: {reason}")
        log.warning("skipped %s: %s", item, reason)
        self.skipped.append({"item": str(item), "reason": str(reason)})

    def note(self, key: str, n: int = 1) -> None:
        """Increment ``stats[key]`` (policy exclusions that are not errors)."""
        self.stats[key] = self.stats.get(key, 0) + n


def safe_join(root: str | Path, rel: str) -> Path:
    """``root / rel``, refusing paths that leave ``root`` (``..``, absolute paths, symlinks outside).

    >>> safe_join("/data", "images/a.jpg").as_posix()
    '/data/images/a.jpg'
    >>> safe_join("/data", "../etc/passwd")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: path '../etc/passwd' escapes the data root /data
    """
    if not isinstance(rel, str) or not rel.strip():
        raise DataError(f"image path must be a non-empty string, got {rel!r}")
    root_p = Path(root)
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise DataError(f"path {rel!r} escapes the data root {root_p}")
    full = root_p / p
    try:
        resolved_root = root_p.resolve()
        resolved = full.resolve()
    except OSError as exc:  # pragma: no cover - e.g. a symlink loop
        raise DataError(f"cannot resolve {full}: {exc}") from exc
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise DataError(f"path {rel!r} escapes the data root {root_p} (resolves to {resolved})")
    return full


def is_pickle_path(path: str | Path) -> bool:
    """True for files that are pickles by name (never unpickled here)."""
    return Path(path).suffix.lower() in (".p", ".pkl", ".pickle")


def _polygon_area(flat: list[float]) -> float:
    xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def coco_mask_fields(seg: Any, size: tuple[int, int], *, tol: float = 2.0) -> dict:
    """Check a COCO ``segmentation`` and return ``AnnotatedObject`` fields (``polygons=`` or ``rle=``).

    Accepts a polygon list ``[[x1, y1, x2, y2, ...], ...]`` (continuous pixel coordinates), an
    uncompressed RLE ``{"size": [H, W], "counts": [int, ...]}`` (column-major) or a compressed RLE
    (``counts`` a string). Raises :class:`DataError` for an empty mask, an RLE whose size differs from
    the image (a mask larger than the image), polygon vertices more than ``tol`` pixels outside the
    image, or malformed values.
    """
    h, w = size
    if isinstance(seg, list):
        polys = []
        for p in seg:
            if not isinstance(p, list) or len(p) % 2:
                raise DataError("malformed mask: a polygon must be a flat list [x1, y1, x2, y2, ...] of even length")
            try:
                vals = [float(v) for v in p]
            except (TypeError, ValueError) as exc:
                raise DataError(f"malformed mask: polygon has non-numeric coordinates ({exc})") from exc
            if not all(math.isfinite(v) for v in vals):
                raise DataError("malformed mask: polygon has NaN or infinite coordinates")
            if len(vals) < 6:
                continue  # fewer than 3 vertices: no area (COCO has a few); dropped, others kept
            xs, ys = vals[0::2], vals[1::2]
            if min(xs) < -tol or min(ys) < -tol or max(xs) > w + tol or max(ys) > h + tol:
                raise DataError(f"mask larger than the image: polygon extends outside (H, W)={size}")
            if _polygon_area(vals) > 0:
                polys.append(vals)
        if not polys:
            raise DataError("empty mask: no polygon with a positive area")
        return {"polygons": polys}
    if isinstance(seg, dict):
        try:
            rh, rw = (int(v) for v in seg["size"])
            counts = seg["counts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed mask: RLE must have 'size' [H, W] and 'counts' ({exc})") from exc
        if (rh, rw) != (h, w):
            raise DataError(f"mask larger than the image: RLE size {(rh, rw)} differs from the image size {(h, w)}")
        if isinstance(counts, list):
            try:
                c = np.asarray(counts, dtype=np.int64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"malformed mask: RLE counts must be integers ({exc})") from exc
            if c.ndim != 1 or (c < 0).any() or int(c.sum()) != h * w:
                raise DataError(
                    f"malformed mask: uncompressed RLE counts must be >= 0 and sum to H*W={h * w}, got {int(c.sum())}"
                )
            if not c[1::2].any():
                raise DataError("empty mask: the RLE has no foreground run")
            return {"rle": {"size": [h, w], "counts": [int(v) for v in c]}}
        if isinstance(counts, (str, bytes)):
            text = counts.decode("ascii") if isinstance(counts, bytes) else counts
            return {"rle": {"size": [h, w], "counts": text}}
        raise DataError(f"malformed mask: RLE counts must be a list or a string, got {type(counts).__name__}")
    raise DataError(f"malformed mask: segmentation must be a polygon list or an RLE dict, got {type(seg).__name__}")
