"""What every source loader shares: the result collection with its skip list, safe paths, JSON reading,
one validator per field kind, COCO masks.

Loaders never stop half-way over one bad record: a record or object that cannot be used is skipped,
logged and listed in :attr:`ImageCollection.skipped` with the reason (``strict=True`` raises
:class:`~getok.errors.DataError` instead). Paths that escape the data root are always an error.

Every value a loader takes from a file goes through one of the field validators below (:func:`as_list`,
:func:`as_int`, :func:`as_id`, :func:`as_flag`, :func:`as_str`, :func:`as_texts`, :func:`as_box`,
:func:`as_points`, and :func:`~getok.records.check_image_size` for sizes): a value of the
wrong type is a :class:`~getok.errors.DataError` naming the field, which the loader turns into a skip
naming the file and the record (or raises, with ``strict=True``), never a ``TypeError`` from deep inside.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...records import check_image_size

__all__ = [
    "ImageCollection",
    "safe_join",
    "coco_mask_fields",
    "is_pickle_path",
    "read_json",
    "as_list",
    "as_int",
    "as_id",
    "as_flag",
    "as_str",
    "as_texts",
    "as_box",
    "as_points",
    "check_image_size",
]

log = logging.getLogger("getok.data_builders.sources")


class ImageCollection(list):
    """A list of :class:`~getok.records.AnnotatedImage` plus what was left out and why.

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
    except (OSError, ValueError) as exc:  # a symlink loop, a NUL byte in the name
        raise DataError(f"cannot resolve {full!s:.200}: {exc}") from exc
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise DataError(f"path {rel!r} escapes the data root {root_p} (resolves to {resolved})")
    return full


def read_json(path: str | Path, encodings: tuple[str, ...] = ("utf-8",)) -> Any:
    """Parse a JSON file; any failure (unreadable, bad encoding, bad syntax, nesting too deep, an integer
    with more digits than Python converts) is a :class:`DataError` naming the file. ``encodings`` are
    tried in order."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    text = None
    for enc in encodings:
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError as exc:
            err = exc
    if text is None:
        raise DataError(f"{path} is not valid JSON: {err}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path} is not valid JSON: {type(exc).__name__}: {exc}") from exc


def _show(v: Any) -> str:
    r = repr(v)
    return f"{type(v).__name__} {r if len(r) <= 60 else r[:57] + '...'}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_finite_number(v: Any) -> bool:
    return _is_number(v) and (isinstance(v, (int, np.integer)) or math.isfinite(v))  # ints: no float overflow


def as_list(value: Any, field: str) -> list:
    """A list field (``None`` / absent → ``[]``).

    >>> as_list(None, "objects"), as_list([1], "objects")
    ([], [1])
    >>> as_list(5, "captions")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: 'captions' must be a list, got int 5
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{field!r} must be a list, got {_show(value)}")
    return value


def as_int(value: Any, field: str) -> int:
    """An integer field (object ids): an int, an integral float or a string of an int; not a bool.

    >>> as_int(3.0, "id"), as_int("4", "id")
    (3, 4)
    >>> as_int("abc", "object_ids")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: 'object_ids' must be an integer, got str 'abc'
    """
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise DataError(f"{field!r} must be an integer, got {_show(value)}")


def as_id(value: Any, field: str) -> int | str:
    """An identifier that keys an index (COCO / refer ``id``, ``image_id``, ``category_id``): an int (an
    integral float becomes one) or a non-empty string; never a list, a dict, a bool or NaN.

    >>> as_id(581857, "image_id"), as_id("n01", "image_id")
    (581857, 'n01')
    >>> as_id([1], "image_id")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: 'image_id' must be an integer or a string, got list [1]
    """
    if isinstance(value, str) and value:
        return value
    if _is_number(value):
        try:
            return as_int(value, field)
        except DataError:
            pass
    raise DataError(f"{field!r} must be an integer or a string, got {_show(value)}")


def as_flag(value: Any, field: str) -> bool:
    """A yes/no field (``iscrowd``, ``is_sentence``, ``no_target``): a bool or 0 / 1 (``None`` → False)."""
    if value is None:
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_number(value) and value in (0, 1):
        return bool(value)
    raise DataError(f"{field!r} must be true/false or 0/1, got {_show(value)}")


def as_str(value: Any, field: str, default: str | None = None) -> str | None:
    """A string field (``None`` / absent → ``default``)."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise DataError(f"{field!r} must be a string, got {_show(value)}")
    return value


def as_texts(value: Any, field: str, keys: tuple[str, ...] = ("text",)) -> list[str]:
    """A list of texts (expressions, captions, sentences): each entry a string or an object holding the
    string under the first of ``keys`` that is set; one string alone counts as a list of one. Blank
    entries are dropped; an entry of another type is a :class:`DataError`.

    >>> as_texts([{"text": " the cup "}, "a mug", {"text": ""}], "expressions")
    ['the cup', 'a mug']
    >>> as_texts(5, "expressions")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: 'expressions' must be a list of strings or {'text': ...} objects, got int 5
    """
    what = f"{field!r} must be a list of strings or {{{keys[0]!r}: ...}} objects"
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise DataError(f"{what}, got {_show(value)}")
    out = []
    for k, e in enumerate(value):
        t = e
        if isinstance(e, dict):
            t = next((e[key] for key in keys if e.get(key) not in (None, "")), "")
        if not isinstance(t, str):
            raise DataError(f"{what}, got {_show(t)} at [{k}]")
        if t.strip():
            out.append(t.strip())
    return out


def as_box(value: Any, field: str) -> list:
    """A box ``[x, y, w, h]`` (COCO ``bbox``): four finite numbers with ``w, h >= 0``, returned as given.

    >>> as_box([1, 2.5, 3, 4], "bbox")
    [1, 2.5, 3, 4]
    >>> as_box(7, "bbox")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: 'bbox' must be [x, y, w, h] (4 finite numbers, w and h >= 0), got int 7
    """
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(_is_finite_number(v) for v in value)
        and value[2] >= 0
        and value[3] >= 0
    )
    if not ok:
        raise DataError(f"{field!r} must be [x, y, w, h] (4 finite numbers, w and h >= 0), got {_show(value)}")
    return list(value)


def as_points(value: Any, field: str) -> np.ndarray:
    """Points ``[[x, y], ...]`` as a ``(K, 2)`` float64 array: a list of pairs of finite numbers (not
    strings, not ragged).

    >>> as_points([[1, 2], [3.5, 4]], "points").tolist()
    [[1.0, 2.0], [3.5, 4.0]]
    >>> as_points([[1, 2], [3]], "points")
    Traceback (most recent call last):
    ...
    getok.errors.DataError: 'points' must be a list of [x, y] pairs of finite numbers, got list [[1, 2], [3]]
    """
    ok = isinstance(value, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_number(v) for v in p) for p in value
    )
    if ok:
        try:
            pts = np.asarray(value, dtype=np.float64).reshape(-1, 2)
        except OverflowError:  # an integer beyond float64
            ok = False
        else:
            ok = bool(np.isfinite(pts).all())
    if not ok:
        raise DataError(f"{field!r} must be a list of [x, y] pairs of finite numbers, got {_show(value)}")
    return pts


def is_pickle_path(path: str | Path) -> bool:
    """True for files that are pickles by name (never unpickled here)."""
    return Path(path).suffix.lower() in (".p", ".pkl", ".pickle")


def _polygon_area(flat: list[float]) -> float:
    xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _compressed_rle_counts(text: str, total: int) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), checked: characters
    in ``0``..``o``, no truncated number, runs >= 0 summing to ``total`` (= H*W). pycocotools itself does
    no such check and reads (and writes) past the buffer on a corrupt string, so it is never handed one.

    >>> _compressed_rle_counts("41202", 12)  # pycocotools' encoding of runs 4, 1, 2, 1, 4
    [4, 1, 2, 1, 4]
    """
    counts: list[int] = []
    x = k = 0
    for ch in text:
        c = ord(ch) - 48
        if not 0 <= c < 64 or k > 12:
            raise DataError(f"malformed mask: corrupt compressed RLE counts {text[:40]!r}")
        x |= (c & 0x1F) << (5 * k)
        k += 1
        if c & 0x20:
            continue
        if c & 0x10:
            x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise DataError(f"malformed mask: compressed RLE has a negative run in {text[:40]!r}")
        counts.append(x)
        x = k = 0
    if k or sum(counts) != total:
        raise DataError(f"malformed mask: compressed RLE counts do not sum to H*W={total}: {text[:40]!r}")
    return counts


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
                if not all(_is_number(v) for v in p):
                    raise TypeError(f"got {_show(p)}")
                vals = [float(v) for v in p]
            except (TypeError, OverflowError) as exc:
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
            rsize = seg["size"]
            if not isinstance(rsize, list) or len(rsize) != 2:
                raise DataError(f"'size' is {_show(rsize)}")
            rh, rw = (as_int(v, "size") for v in rsize)
            counts = seg["counts"]
        except (KeyError, DataError) as exc:
            raise DataError(f"malformed mask: RLE must have 'size' [H, W] and 'counts' ({exc})") from exc
        if (rh, rw) != (h, w):
            raise DataError(f"mask larger than the image: RLE size {(rh, rw)} differs from the image size {(h, w)}")
        if isinstance(counts, list):
            if not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= h * w for v in counts
            ):
                raise DataError(f"malformed mask: RLE counts must be integers in 0..H*W, got {_show(counts)}")
            c = np.asarray(counts, dtype=np.int64)
            if c.ndim != 1 or (c < 0).any() or int(c.sum()) != h * w:
                raise DataError(
                    f"malformed mask: uncompressed RLE counts must be >= 0 and sum to H*W={h * w}, got {int(c.sum())}"
                )
            if not c[1::2].any():
                raise DataError("empty mask: the RLE has no foreground run")
            return {"rle": {"size": [h, w], "counts": [int(v) for v in c]}}
        if isinstance(counts, (str, bytes)):
            try:
                text = counts.decode("ascii") if isinstance(counts, bytes) else counts
            except UnicodeDecodeError as exc:
                raise DataError(f"malformed mask: compressed RLE counts are not ASCII ({exc})") from exc
            c = _compressed_rle_counts(text, h * w)  # checked here: pycocotools reads past a corrupt string
            if not any(c[1::2]):
                raise DataError("empty mask: the RLE has no foreground run")
            return {"rle": {"size": [h, w], "counts": text}}
        raise DataError(f"malformed mask: RLE counts must be a list or a string, got {type(counts).__name__}")
    raise DataError(f"malformed mask: segmentation must be a polygon list or an RLE dict, got {type(seg).__name__}")
