"""``MaskDecoder``: turns a decoded geometry into a mask, like SAM's predictor.

``set_image`` once per image (a SAM decoder computes and caches the image embedding there), then
``decode(geometry)`` as many times as there are answers for that image. Decoders are registered by name
and built from a spec string (``"raster"``, ``"sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..geometry import Geometry

__all__ = ["MaskDecoder", "register_decoder", "get_decoder", "list_decoders"]


@runtime_checkable
class MaskDecoder(Protocol):
    """Geometry → mask, one image at a time."""

    name: str

    def set_image(self, image: np.ndarray | None, size: tuple[int, int] | None = None, key: str | None = None) -> None:
        """Prepare for one image: ``image`` ``(H, W, 3)`` uint8 RGB (``None`` for decoders that need only
        the size); ``key`` names the image for embedding caches."""
        ...

    def decode(self, geometry: Geometry) -> np.ndarray:
        """The mask ``(H, W)`` bool of one decoded geometry (empty for a geometry with no region)."""
        ...


_DECODERS: dict[str, Callable[..., MaskDecoder]] = {}


def register_decoder(name: str):
    """Decorator: register a decoder factory (a class or function taking keyword settings) by name."""

    def wrap(factory):
        if name in _DECODERS and _DECODERS[name] is not factory:
            raise ConfigError(f"a decoder named {name!r} is already registered")
        _DECODERS[name] = factory
        return factory

    return wrap


def list_decoders() -> list[str]:
    return sorted(_DECODERS)


def get_decoder(spec: str | MaskDecoder, **overrides) -> MaskDecoder:
    """Build a decoder from ``"name:key=value,..."`` (values parsed as int / float / bool when they look so)."""
    if not isinstance(spec, str):
        return spec
    from ..codecs.base import parse_spec

    name, params = parse_spec(spec)
    if name not in _DECODERS:
        raise ConfigError(f"unknown decoder {name!r}; registered: {list_decoders()}")
    kwargs: dict = {k: _auto(v) for k, v in params.items()}
    kwargs.update(overrides)
    return _DECODERS[name](**kwargs)


def _auto(v: str):
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v
