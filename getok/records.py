"""Annotated images: the common record every source (procedural scenes, COCO, real-dev manifests,
refer-style files) produces and every builder consumes.

Images are ``(H, W, 3)`` uint8 RGB; masks ``(H, W)`` bool; boxes XYXY pixels (conventions:
:mod:`getok.conventions`). Images and masks may be held in memory or loaded lazily (``image_path``,
``rle`` / ``polygons``), so a record of a large dataset costs little until it is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .conventions import as_size
from .errors import DataError, GeometryError
from .geometry import Geometry
from .ops.boxes import mask_to_box
from .ops.masks import as_mask, rle_decode
from .ops.polygons import polygons_to_mask

__all__ = [
    "AnnotatedObject",
    "AnnotatedImage",
    "load_image_rgb",
    "read_image_size",
    "check_image_size",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
]

#: Largest image getok reads or accepts as a declared size, in pixels (H * W): 8192 x 8192, 192 MiB of RGB
#: and 64 MiB per decoded mask. Larger files are refused (a PNG header can claim any size and decoding it,
#: or allocating a mask of the declared size, would exhaust memory); downscale them first.
MAX_IMAGE_PIXELS = 8192 * 8192
#: Longest side accepted (JPEG's own limit), so that a 1-pixel-high strip cannot claim 10^9 columns.
MAX_IMAGE_SIDE = 65535
_CAP = f"{MAX_IMAGE_SIDE} pixels a side, 8192 x 8192 = {MAX_IMAGE_PIXELS} pixels in all: getok.records.MAX_IMAGE_PIXELS"


def check_image_size(
    height, width, what: str = "image", names: tuple[str, str] = ("height", "width")
) -> tuple[int, int]:
    """``(H, W)`` as two positive ints within :data:`MAX_IMAGE_SIDE` / :data:`MAX_IMAGE_PIXELS`.

    ``height`` / ``width`` must be integers (integral floats accepted; booleans, strings, NaN and
    fractions are not). Raises :class:`DataError` starting with ``what`` and naming the wrong value by its
    field name (``names``).

    >>> check_image_size(480, 640.0)
    (480, 640)
    >>> check_image_size(200000, 200000)
    Traceback (most recent call last):
    ...
    getok.errors.DataError: image size 200000 x 200000 is above getok's cap (65535 pixels a side, 8192 x 8192 = 67108864 pixels in all: getok.records.MAX_IMAGE_PIXELS)
    """
    vals = []
    for name, v in zip(names, (height, width)):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise DataError(f"{what} {name!r} must be an integer, got {v!r:.60}")
        if v <= 0:
            raise DataError(f"{what} {name!r} must be positive, got {v}")
        vals.append(int(v))
    h, w = vals
    if h > MAX_IMAGE_SIDE or w > MAX_IMAGE_SIDE or h * w > MAX_IMAGE_PIXELS:
        raise DataError(f"{what} size {h} x {w} is above getok's cap ({_CAP})")
    return h, w


@contextmanager
def _open_image(p: Path):
    """``PIL.Image.open`` (header only) with every failure, a decompression bomb included, a :class:`DataError`
    naming the file, and the size checked against :data:`MAX_IMAGE_PIXELS` before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    if not p.is_file():
        raise DataError(f"image file not found: {p}")
    try:
        with warnings.catch_warnings():
            # PIL warns (then refuses at twice its limit) about huge images; our own cap below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {p} is above getok's cap ({_CAP}); PIL: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {p}: {exc}") from exc
    with im:
        w, h = im.size
        check_image_size(h, w, what=f"image {p}:")
        yield im


def read_image_size(path: str | Path) -> tuple[int, int]:
    """The ``(H, W)`` of an image file from its header (no pixels decoded); :class:`DataError` naming the
    file when it is missing, unreadable or above :data:`MAX_IMAGE_PIXELS`."""
    with _open_image(Path(path)) as im:
        w, h = im.size
    return int(h), int(w)


def _to_rgb(im, p: Path) -> np.ndarray:
    """Decoded PIL image → ``(H, W, 3)`` uint8. 16-bit grey (``I;16*``, and ``I`` holding 0..65535) keeps
    its top 8 bits (PIL's own conversion would clip it to near-white); float images are refused."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im)
        if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise DataError(f"cannot decode image {p}: 32-bit integer pixels outside 0..65535 (convert it to 8 bits)")
        grey = (a.astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        raise DataError(
            f"cannot decode image {p}: floating-point pixels (mode F) have no fixed range; convert to 8 bits"
        )
    if mode != "RGB":
        try:
            im = im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot convert image {p} (mode {mode}) to RGB: {exc}") from exc
    return np.asarray(im, dtype=np.uint8).copy()


def load_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grayscale, RGBA, CMYK, palette converted; 16-bit
    grayscale scaled by its top 8 bits).

    Raises :class:`DataError` naming the file when it is missing, cannot be decoded, is larger than
    :data:`MAX_IMAGE_PIXELS` or has floating-point pixels.
    """
    from PIL import Image

    p = Path(path)
    with _open_image(p) as im:
        try:
            im.load()
        except Image.DecompressionBombError as exc:
            raise DataError(f"image {p} is above getok's cap ({_CAP}); PIL: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot decode image {p}: {exc}") from exc
        return _to_rgb(im, p)


@dataclass(eq=False)
class AnnotatedObject:
    """One instance: its mask (in memory, or as COCO RLE / polygons), category and expressions.

    ``id`` is unique within its image. ``attributes`` holds whatever the source knows (colour, shape,
    size class, ...); ``expressions`` are referring expressions that name exactly this object.
    """

    id: int
    category: str
    size: tuple[int, int]
    mask: np.ndarray | None = None
    rle: dict | None = None
    polygons: list[list[float]] | None = None  # COCO flat polygons [x1, y1, x2, y2, ...]
    box: np.ndarray | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    expressions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.size = as_size(self.size)
        if self.mask is None and self.rle is None and self.polygons is None:
            raise DataError(f"object {self.id} ({self.category}) has no mask, rle or polygons")
        if self.mask is not None:
            self.mask = as_mask(self.mask, self.size, name=f"mask of object {self.id}")

    def get_mask(self) -> np.ndarray:
        """The instance mask, ``(H, W)`` bool (decoded and cached on first use)."""
        if self.mask is None:
            if self.rle is not None:
                m = rle_decode(self.rle)
            else:
                h, w = self.size
                rings = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in self.polygons if len(p) >= 6]
                # COCO polygon vertices are continuous coordinates already (pixel corners at integers)
                m = polygons_to_mask(rings, self.size) if rings else np.zeros((h, w), bool)
            if m.shape != self.size:
                raise GeometryError(f"object {self.id}: mask shape {m.shape} differs from image size {self.size}")
            self.mask = m
        return self.mask

    def get_box(self) -> np.ndarray | None:
        """The box XYXY: given, else the mask's tight box (``None`` for an empty mask)."""
        if self.box is None:
            self.box = mask_to_box(self.get_mask())
        return self.box

    def geometry(self) -> Geometry:
        """The object as a :class:`~getok.Geometry` (mask and box, label = category)."""
        return Geometry(size=self.size, mask=self.get_mask(), box=self.get_box(), label=self.category)


@dataclass(eq=False)
class AnnotatedImage:
    """One image with its objects.

    Either ``image`` (in memory) or ``image_path`` (loaded on demand by :meth:`get_image`) is set.
    ``no_target_expressions`` are expressions known to name nothing in the image.
    """

    image_id: str
    size: tuple[int, int]
    objects: list[AnnotatedObject]
    image: np.ndarray | None = None
    image_path: str | None = None
    no_target_expressions: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    loader: Callable[[], np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.size = as_size(self.size)
        if self.image is None and self.image_path is None and self.loader is None:
            raise DataError(f"image {self.image_id}: neither pixels nor a path")
        ids = [o.id for o in self.objects]
        if len(set(ids)) != len(ids):
            raise DataError(f"image {self.image_id}: duplicate object ids {sorted(ids)}")
        for o in self.objects:
            if o.size != self.size:
                raise DataError(f"image {self.image_id}: object {o.id} size {o.size} != image size {self.size}")

    def get_image(self) -> np.ndarray:
        """Pixels as ``(H, W, 3)`` uint8 RGB (loaded and checked against ``size`` on first use)."""
        if self.image is None:
            img = self.loader() if self.loader is not None else load_image_rgb(self.image_path)
            if img.shape[:2] != self.size:
                raise DataError(f"image {self.image_id}: pixels are {img.shape[:2]}, annotations say {self.size}")
            self.image = img
        return self.image


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as PNG (lossless, so the dataset holds the exact scene pixels)."""
    from PIL import Image

    a = np.asarray(pixels)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise DataError(f"image pixels must be (H, W, 3) uint8, got {a.shape} {a.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, format="PNG", compress_level=1)
