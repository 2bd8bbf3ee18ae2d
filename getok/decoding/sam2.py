"""``sam2``: a SAM 2 decoder through Hugging Face transformers' ``Sam2Model`` (image mode).

``get_decoder("sam2:checkpoint=/models/sam2.1-hiera-tiny")`` loads a local transformers checkpoint
directory (``Sam2Model.from_pretrained(dir, local_files_only=True)``, safetensors; nothing is
downloaded), ``get_decoder("sam2", model=sam2_model)`` uses a model in memory, and
``get_decoder("sam2", engine=engine)`` the engine a SAM 2 proposer uses. Prompts, modes, multimask
selection and batching are those of the ``sam`` decoder (:mod:`getok.decoding._prompted`).

The model runs in :class:`~getok.backends.sam2.Sam2Engine`, the one SAM 2 integration, shared with the
grid proposer (:mod:`getok.data_builders.proposers.sam2`). Its pre- and post-processing follow
transformers' ``Sam2Processor``: the image is resized to the square model input (no aspect preservation),
normalised with the ImageNet mean / std; point and box coordinates are scaled per axis to that square;
low-resolution mask logits are upsampled bilinearly to the original size and thresholded at 0. The
embedding LRU and the optional on-disk cache (``embedding_cache=DIR``) are the engine's.

Only transformers' implementation is wired: the ``sam2`` package of facebookresearch
(``SAM2ImagePredictor``) is not (``backend="sam2"`` raises :class:`~getok.errors.ConfigError`).
"""

from __future__ import annotations

from ..backends.sam2 import Sam2Engine, build_tiny_sam2, load_sam2
from ..errors import ConfigError, require
from ._prompted import PromptedDecoder
from .base import register_decoder

__all__ = ["Sam2Decoder", "Sam2Engine", "build_tiny_sam2", "load_sam2"]


@register_decoder("sam2")
class Sam2Decoder(PromptedDecoder):
    """SAM 2 decoder (transformers ``Sam2Model``).

    Parameters
    ----------
    checkpoint : str, optional
        Local transformers checkpoint directory.
    model : transformers.Sam2Model or Sam2Engine, optional
        A model already built (takes precedence; used on its own device, in its own dtype).
    engine : Sam2Engine, optional
        An engine already built, e.g. shared with a :class:`~getok.data_builders.proposers.sam2.Sam2Proposer`
        (instead of ``checkpoint`` / ``model``; ``device``, ``dtype``, ``cache_size`` and ``embedding_cache``
        are the engine's).
    backend : {"transformers"}
        Only transformers is wired.
    device : str
        Torch device for a model loaded here (``"cpu"``, ``"cuda"``).
    dtype : {"float32", "bfloat16", "float16"}, optional
        Torch dtype for a model loaded here (default: the checkpoint's). Prompts stay float32; masks are
        upsampled and thresholded in float32.
    mode, multimask, cache_size, embedding_cache, batch_size, interior_points
        As for :class:`~getok.decoding.sam.SamDecoder`.
    """

    name = "sam2"
    #: the engine class this decoder builds (and accepts)
    engine_class = Sam2Engine

    def __init__(
        self,
        checkpoint: str | None = None,
        model=None,
        backend: str = "transformers",
        device: str = "cpu",
        dtype: str | None = None,
        mode: str = "union",
        multimask: bool = True,
        cache_size: int = 4,
        batch_size: int = 32,
        interior_points: int = 1,
        engine: Sam2Engine | None = None,
        embedding_cache: str | None = None,
    ) -> None:
        require("torch", "hf", f"the {self.name} decoder")
        cls = self.engine_class
        if backend != "transformers":
            raise ConfigError(
                f"{self.name} backend {backend!r} is not supported; use backend=transformers with a local "
                f"transformers checkpoint directory ({cls.model_class}.save_pretrained)"
            )
        if isinstance(model, Sam2Engine):
            model, engine = None, model
        if engine is None:
            if model is None and checkpoint is None:
                raise ConfigError(
                    f"the {self.name} decoder needs weights: '{self.name}:checkpoint=/path/to/transformers_dir' "
                    f"or get_decoder('{self.name}', model={self.name}_model)"
                )
            engine = cls(model, checkpoint=None if model is not None else checkpoint,
                         device=device if model is None else None, dtype=dtype, cache_size=cache_size,
                         embedding_cache=embedding_cache)
        elif type(engine) is not cls:
            raise ConfigError(f"the {self.name} decoder needs a {cls.__name__}, got a {type(engine).__name__}")
        super().__init__(engine, mode=mode, multimask=multimask, batch_size=batch_size,
                         interior_points=interior_points)
        self.checkpoint = None if engine.checkpoint is None else str(engine.checkpoint)
        self.input_size = engine.input_size

    def settings(self) -> dict:
        return {**super().settings(), "checkpoint": self.checkpoint, "input_size": self.input_size,
                "dtype": str(self.model.dtype).removeprefix("torch.")}
