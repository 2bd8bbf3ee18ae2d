"""``MaskDecoder``: turns a decoded geometry into a mask, like SAM's predictor.

``set_image`` once per image (a SAM decoder computes and caches the image embedding there), then
``decode(geometry)`` as many times as there are answers for that image. Decoders are registered by name
and built from a spec string (``"raster"``, ``"sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b"``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..geometry import Geometry
from ..registry import Registry

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


_DECODERS = Registry("decoder")


def register_decoder(name: str):
    """Decorator: register a decoder factory (a class or function taking keyword settings) by name."""
    return _DECODERS.register(name)


def list_decoders() -> list[str]:
    return _DECODERS.names()


def get_decoder(spec: str | MaskDecoder, *, manifest: dict | None = None, **overrides) -> MaskDecoder:
    """Build a decoder from ``"name:key=value,..."`` (values parsed as int / float / bool when they look so);
    a decoder instance is returned as is. ``manifest`` (a dataset's) reaches the decoders that rebuild what
    a dataset does not store (``proposals:proposer=exact`` on procedural scenes) and is ignored by the rest."""
    if not isinstance(spec, str):
        return spec
    return _DECODERS.build(spec, context={"manifest": manifest} if manifest is not None else None, **overrides)
