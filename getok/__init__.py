"""getok — learnable spatial tokens for vision-language models.

Grid tokens that name image cells, offset tokens that move a point by a fraction of a cell and a
``<DELETE>`` token that withdraws one (GETok), beside the representations they are compared with (text
coordinates, 1-D bins, polygons, run-length descriptors); data builders, SFT and two-stage GRPO training,
mask decoding and evaluation.

``import getok`` costs numpy and scipy only; torch, transformers and segment-anything are imported by the
parts that need them. Conventions: :mod:`getok.conventions`.

The two registries a user meets first sit side by side: ``getok.get_codec(spec)`` (answer text ↔ geometry)
and ``getok.get_decoder(spec)`` (geometry → mask; :class:`~getok.decoding.base.MaskDecoder`), the latter
imported on first use.
"""

from ._lazy import lazy_attributes
from ._version import __version__
from .codecs import NO_TARGET, Codec, DecodeResult, get_codec, list_codecs
from .errors import (
    ConfigError,
    DataError,
    DecodeError,
    GeometryError,
    GetokError,
    LayoutMismatchError,
    MissingDependencyError,
)
from .geometry import KINDS, Geometry

__all__ = [
    "__version__",
    "Geometry",
    "KINDS",
    "Codec",
    "DecodeResult",
    "NO_TARGET",
    "get_codec",
    "list_codecs",
    "GetokError",
    "DecodeError",
    "GeometryError",
    "ConfigError",
    "DataError",
    "LayoutMismatchError",
    "MissingDependencyError",
    "MaskDecoder",
    "get_decoder",
    "list_decoders",
]

#: Names resolved on first use (PEP 562), so that ``import getok`` stays light.
_LAZY = {"MaskDecoder": "decoding", "get_decoder": "decoding", "list_decoders": "decoding"}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
