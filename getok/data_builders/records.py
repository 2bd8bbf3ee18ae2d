"""Annotated images: the common record every source (procedural scenes, COCO, real-dev manifests,
refer-style files) produces and every builder consumes.

Images are ``(H, W, 3)`` uint8 RGB; masks ``(H, W)`` bool; boxes XYXY pixels (conventions:
:mod:`getok.conventions`). Images and masks may be held in memory or loaded lazily (``image_path``,
``rle`` / ``polygons``), so a record of a large dataset costs little until it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..conventions import as_size
from ..errors import DataError, GeometryError
from ..geom.masks import as_mask, mask_to_box, rle_decode
from ..geometry import Geometry

__all__ = ["AnnotatedObject", "AnnotatedImage", "load_image_rgb"]


def load_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grayscale, RGBA, CMYK, palette converted).

    Raises :class:`DataError` naming the file when it is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {p}: {exc}") from exc


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
                from ..geom.polygons import polygons_to_mask

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
