"""``Sam2Proposer``: SAM 2 (through transformers' ``Sam2Model``) prompted at every grid point.

Same contract as :class:`~getok.data_builders.proposers.sam.SamProposer` (and the same code,
:mod:`getok.data_builders.proposers._prompted`): one positive point prompt per grid point, batched over one
image embedding (computed once per image, optionally saved with ``embedding_cache=DIR``), best of the
multimask outputs by predicted IoU.

The model runs in :class:`~getok.backends.sam2.Sam2Engine`, the one SAM 2 integration, shared with the
``sam2`` mask decoder: SAM 2 resizes the image to a square ``S x S`` (``S = 1024`` for the released models,
without keeping the aspect ratio), normalises with the ImageNet mean / std, and its low-resolution masks are
upsampled straight to the image size — done with OpenCV and torch, so neither torchvision nor a processor
from the hub is needed.

Weights come from a local directory (``Sam2Model.from_pretrained(dir, local_files_only=True)``, safetensors),
a prebuilt model (tests build a tiny one from a ``Sam2Config``) or an engine (``engine=``). The ``sam2``
package (Meta's reference code) is not wired: convert its checkpoints with transformers' conversion script.
"""

from __future__ import annotations

from pathlib import Path

from ...backends.sam2 import IMAGENET_MEAN, IMAGENET_STD, Sam2Engine, build_tiny_sam2
from ...errors import ConfigError, require
from ._prompted import PromptedProposer
from .registry import register_proposer

__all__ = ["Sam2Proposer", "Sam2Engine", "build_tiny_sam2", "IMAGENET_MEAN", "IMAGENET_STD"]


@register_proposer("sam2")
class Sam2Proposer(PromptedProposer):
    """SAM 2, one prompt per grid point, batched.

    Parameters
    ----------
    pretrained : path, optional
        Local directory of a transformers SAM 2 checkpoint (``config.json`` + safetensors).
    model : transformers.Sam2Model or Sam2Engine, optional
        A prebuilt model instead of ``pretrained``.
    engine : Sam2Engine, optional
        An engine already built, e.g. shared with a :class:`~getok.decoding.sam2.Sam2Decoder` (instead of
        ``pretrained`` / ``model``; ``device``, ``cache_size`` and ``embedding_cache`` are the engine's).
    points_per_batch : int
    multimask : bool
    mask_threshold : float
        Logit threshold of the upsampled masks.
    device : str
        Where the model runs (a prebuilt model is moved there).
    embedding_cache : path, optional
        Directory where image embeddings are saved (safetensors) and looked up by image hash and weights.
    cache_size : int
        Image embeddings kept in memory.

    Attributes
    ----------
    embedding_calls : int
        How many times the image encoder ran.
    """

    name = "sam2"

    def __init__(
        self,
        pretrained: str | Path | None = None,
        *,
        model=None,
        engine: Sam2Engine | None = None,
        points_per_batch: int = 64,
        multimask: bool = True,
        mask_threshold: float = 0.0,
        device: str = "cpu",
        embedding_cache: str | Path | None = None,
        cache_size: int = 4,
    ) -> None:
        require("torch", "hf", "the SAM 2 proposer")
        tr = require("transformers", "hf", "the SAM 2 proposer")
        if not hasattr(tr, "Sam2Model"):
            raise ConfigError(f"transformers {tr.__version__} has no Sam2Model; SAM 2 needs transformers >= 4.56")
        if isinstance(model, Sam2Engine):
            model, engine = None, model
        if engine is None:
            if model is None and pretrained is None:
                raise ConfigError("Sam2Proposer needs a local pretrained directory or a prebuilt model")
            engine = Sam2Engine(model, checkpoint=None if model is not None else pretrained, device=device,
                                cache_size=cache_size, embedding_cache=embedding_cache)
        elif type(engine) is not Sam2Engine:
            raise ConfigError(f"engine must be a Sam2Engine, got {type(engine).__name__}")
        elif embedding_cache is not None and engine.embedding_cache != Path(embedding_cache):
            raise ConfigError("embedding_cache is the engine's: set it when building the Sam2Engine")
        super().__init__(engine, points_per_batch=points_per_batch, multimask=multimask,
                         mask_threshold=float(mask_threshold))
        self.pretrained = engine.checkpoint
        self.mask_threshold = float(mask_threshold)
        self.input_size = engine.input_size
        self.device = str(engine.device)

    def settings(self) -> dict:
        return {
            "weights_sha256": self.fingerprint,
            "multimask": self.multimask,
            "mask_threshold": self.mask_threshold,
            "input_size": self.input_size,
        }
