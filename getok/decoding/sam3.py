"""``sam3``: a SAM 3 decoder through Hugging Face transformers' ``Sam3TrackerModel`` (image mode).

``get_decoder("sam3:checkpoint=/models/sam3,device=cuda,dtype=bfloat16")`` loads a local transformers
checkpoint directory (``Sam3TrackerModel.from_pretrained(dir, local_files_only=True)``, safetensors;
nothing is downloaded; the ``facebook/sam3`` weights are gated, so the path is always an argument),
``get_decoder("sam3", model=sam3_tracker_model)`` uses a model in memory, and ``engine=`` a
:class:`~getok.backends.sam3.Sam3Engine` already built. ``Sam3TrackerModel`` is SAM 3's promptable
segmenter with SAM 2's API, so everything but the model and its image preprocessing is the ``sam2``
decoder's: prompts from the geometry (:mod:`getok.decoding.sam_prompts`), the modes, batching and multimask
selection (:mod:`getok.decoding._prompted`), and, in the engine (:class:`~getok.backends.sam3.Sam3Engine`,
a :class:`~getok.backends.sam2.Sam2Engine`), the embedding LRU and on-disk cache, the prompt scaling and
the mask upsampling.

Preprocessing follows transformers' ``Sam3ImageProcessor`` (what ``Sam3TrackerProcessor`` uses): the
image is resized to the square model input (1008 px for SAM 3, no aspect preservation) and normalised
with mean = std = 0.5 per channel (SAM 2 uses the ImageNet mean / std).

Meta's ``sam3`` package is not wired (``backend="sam3"`` raises :class:`~getok.errors.ConfigError`);
neither are SAM 3's text / concept prompts (``Sam3Model``): a geometry is a visual prompt.
"""

from __future__ import annotations

from ..backends.sam3 import Sam3Engine, build_tiny_sam3, load_sam3
from .base import register_decoder
from .sam2 import Sam2Decoder

__all__ = ["Sam3Decoder", "Sam3Engine", "build_tiny_sam3", "load_sam3"]


@register_decoder("sam3")
class Sam3Decoder(Sam2Decoder):
    """SAM 3 decoder (transformers ``Sam3TrackerModel``).

    Parameters
    ----------
    checkpoint : str, optional
        Local transformers checkpoint directory (e.g. a copy of ``facebook/sam3``).
    model : transformers.Sam3TrackerModel or Sam3Engine, optional
        A model already built (takes precedence; used on its own device, in its own dtype).
    engine : Sam3Engine, optional
        An engine already built.
    backend, device, dtype, mode, multimask, cache_size, embedding_cache, batch_size, interior_points
        As for :class:`~getok.decoding.sam2.Sam2Decoder`.
    """

    name = "sam3"
    engine_class = Sam3Engine
