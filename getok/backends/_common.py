"""Small helpers shared by the model engines and the mask decoders: image and size checks, an LRU cache."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..conventions import as_size
from ..errors import ConfigError, GeometryError
from ..geometry import Geometry

__all__ = ["image_size", "check_size", "check_image", "LRUCache"]


def check_image(image) -> np.ndarray:
    """Validate an ``(H, W, 3)`` uint8 RGB image and return it as an array."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise GeometryError(f"image must be (H, W, 3) RGB, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise GeometryError(f"image must be uint8 RGB, got dtype {arr.dtype}")
    return arr


def image_size(image: np.ndarray | None, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The ``(H, W)`` given by an image and / or a size (they must agree); ``None`` when neither is given."""
    if image is not None:
        hw = tuple(check_image(image).shape[:2])
        if size is not None and as_size(size) != hw:
            raise GeometryError(f"size {tuple(size)} differs from the image's (H, W)={hw}")
        return hw
    return None if size is None else as_size(size)


def check_size(geometry: Geometry, size: tuple[int, int] | None) -> None:
    """Raise when ``geometry`` is not a Geometry or its size differs from the image set (``size``)."""
    if not isinstance(geometry, Geometry):
        raise GeometryError(f"decode expects a Geometry, got {type(geometry).__name__}")
    if size is not None and geometry.size != size:
        raise GeometryError(f"geometry size (H, W)={geometry.size} differs from the image set, {size}")


class LRUCache:
    """A small least-recently-used map (image key → embedding, point-mask stack, ...).

    ``get_or_compute(key, fn)`` returns the cached value or calls ``fn()`` once and stores it; the
    least recently used entry is evicted when more than ``capacity`` are held. ``misses`` counts the
    computations (what a test of embedding reuse checks).
    """

    def __init__(self, capacity: int) -> None:
        if int(capacity) < 1:
            raise ConfigError(f"cache_size must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key) -> bool:
        return key in self._data

    def get_or_compute(self, key, fn: Callable[[], Any]):
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        value = fn()
        self.misses += 1
        self._data[key] = value
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        self._data.clear()
