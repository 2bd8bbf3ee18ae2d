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

__all__ = ["MaskDecoder", "register_decoder", "get_decoder", "list_decoders", "canonical_decoder_spec",
           "former_decoder_specs"]


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
_FORMER_NAMES: dict[str, str] = {}  # a former decoder name -> its current name


def register_decoder(name: str, *, former: tuple[str, ...] = ()):
    """Decorator: register a decoder factory (a class or function taking keyword settings) by name.

    ``former``: names the decoder had before, registered too (the same factory), so that specs written
    with them (committed results, user configs) still build it; :func:`canonical_decoder_spec` maps them
    to ``name``.
    """

    def wrap(factory):
        _DECODERS.register(name)(factory)
        for old in former:
            _DECODERS.register(old)(factory)
            _FORMER_NAMES[old] = name
        return factory

    return wrap


def canonical_decoder_spec(spec):
    """A spec with a former decoder name written with the current one (anything else unchanged), so that
    two specs of the same decoder compare equal.

    >>> import getok.decoding
    >>> canonical_decoder_spec("proposals:proposer=exact,n=8"), canonical_decoder_spec("raster")
    ('point_masks:proposer=exact,n=8', 'raster')
    """
    if not isinstance(spec, str):
        return spec
    name, sep, rest = spec.partition(":")
    new = _FORMER_NAMES.get(name.strip())
    return spec if new is None else new + sep + rest


def former_decoder_specs(obj):
    """``obj`` (nested dicts / lists) with every decoder spec of a renamed decoder written with its former
    name: what a settings record looked like before the rename (a resumed run's fingerprint check accepts
    both).

    >>> import getok.decoding
    >>> former_decoder_specs({"eval": {"decoder": "point_masks:proposer=exact,n=8"}, "codec": "grid:n=8"})
    {'eval': {'decoder': 'proposals:proposer=exact,n=8'}, 'codec': 'grid:n=8'}
    """
    current = {new: old for old, new in _FORMER_NAMES.items()}
    if isinstance(obj, dict):
        return {k: former_decoder_specs(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(former_decoder_specs(v) for v in obj)
    if isinstance(obj, str):
        name, sep, rest = obj.partition(":")
        if name in current:
            return current[name] + sep + rest
    return obj


def list_decoders() -> list[str]:
    return _DECODERS.names()


def get_decoder(spec: str | MaskDecoder, *, manifest: dict | None = None, **overrides) -> MaskDecoder:
    """Build a decoder from ``"name:key=value,..."`` (values parsed as int / float / bool when they look so);
    a decoder instance is returned as is. ``manifest`` (a dataset's) reaches the decoders that rebuild what
    a dataset does not store (``point_masks:proposer=exact`` on procedural scenes) and is ignored by the rest."""
    if not isinstance(spec, str):
        return spec
    return _DECODERS.build(spec, context={"manifest": manifest} if manifest is not None else None, **overrides)
