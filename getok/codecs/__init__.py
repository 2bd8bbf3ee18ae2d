"""The codec zoo: every spatial representation behind one API.

>>> from getok.codecs import get_codec, list_codecs
>>> list_codecs()
['bins', 'grid', 'grid_offset', 'polygon', 'rle_descriptors', 'text_coords']

Each codec encodes geometries into answer text and decodes text back (:class:`~getok.codecs.base.Codec`);
specs like ``"grid_offset:n=32,r=1,step=0.5"`` name a codec and its configuration.
"""

from . import bins, grid, grid_offset, polygon, rle_descriptors, text_coords  # noqa: F401  (register)
from .base import NO_TARGET, Codec, CodecProtocol, DecodeResult, get_codec, list_codecs, parse_spec, register_codec
from .count import qwen_style_count, tokenizer_count
from .token_names import DELETE

__all__ = [
    "NO_TARGET",
    "DELETE",
    "Codec",
    "CodecProtocol",
    "DecodeResult",
    "get_codec",
    "list_codecs",
    "parse_spec",
    "register_codec",
    "qwen_style_count",
    "tokenizer_count",
]
