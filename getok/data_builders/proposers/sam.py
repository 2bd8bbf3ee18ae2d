"""``SamProposer``: segment-anything prompted at every grid point.

Every grid point of the ``n x n`` grid is a one-point positive prompt; the prompts run in batches on one
image embedding, and each point keeps the best of SAM's three multimask outputs by predicted IoU (that IoU
is the point's score) — the same masks as ``SamPredictor.predict_torch``. This is deliberately not
``SamAutomaticMaskGenerator``: its filtering and NMS drop masks, and the grid builders need exactly one mask
per grid point (:mod:`getok.data_builders.proposers._prompted`).

The model runs in :class:`~getok.backends.sam.SamEngine`, the one SAM v1 integration, shared with the
``sam`` mask decoder: the image embedding is computed once per image (``set_image``; repeated calls for the
same pixels, e.g. for another grid size, reuse it from the engine's in-memory cache) and, with
``embedding_cache=DIR``, saved as safetensors and loaded on the next run. Pass ``engine=`` to share one
engine with a decoder. Checkpoints are read with ``torch.load(weights_only=True)`` or safetensors — never
unpickled.
"""

from __future__ import annotations

from pathlib import Path

from ...backends.sam import SamEngine, build_tiny_sam, load_sam
from ...errors import ConfigError, require
from ._prompted import PromptedProposer
from .registry import register_proposer

__all__ = ["SamProposer", "SamEngine", "load_sam", "build_tiny_sam"]


@register_proposer("sam")
class SamProposer(PromptedProposer):
    """segment-anything, one prompt per grid point, batched.

    Parameters
    ----------
    checkpoint : path, optional
        SAM weights (``.pth`` state dict or ``.safetensors``); required unless ``model`` or ``engine`` is given.
    model_type : {"vit_b", "vit_l", "vit_h"}
    model : segment_anything.modeling.Sam or SamEngine, optional
        A prebuilt model (e.g. :func:`build_tiny_sam`) instead of ``checkpoint``.
    engine : SamEngine, optional
        An engine already built, e.g. shared with a :class:`~getok.decoding.sam.SamDecoder` (instead of
        ``checkpoint`` / ``model``; ``device``, ``cache_size`` and ``embedding_cache`` are the engine's).
    points_per_batch : int
        Prompts per mask-decoder call (memory vs speed).
    multimask : bool
        Ask for three masks per point and keep the best by predicted IoU (SAM's advice for one-point
        prompts); ``False`` takes the single-mask output.
    device : str
        Where the model runs (a prebuilt model is moved there).
    embedding_cache : path, optional
        Directory where image embeddings are saved (safetensors) and looked up by image hash and weights.
    cache_size : int
        Image embeddings kept in memory.

    Attributes
    ----------
    embedding_calls : int
        How many times the image encoder ran (tests check it runs once per image).
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        model_type: str = "vit_b",
        *,
        model=None,
        engine: SamEngine | None = None,
        points_per_batch: int = 64,
        multimask: bool = True,
        device: str = "cpu",
        embedding_cache: str | Path | None = None,
        cache_size: int = 4,
    ) -> None:
        require("torch", "sam", "the SAM proposer")
        require("segment_anything", "sam", "the SAM proposer")
        if isinstance(model, SamEngine):
            model, engine = None, model
        if engine is None:
            if model is None and checkpoint is None:
                raise ConfigError("SamProposer needs a checkpoint path or a prebuilt model")
            engine = SamEngine(model, checkpoint=None if model is not None else checkpoint, model_type=model_type,
                               device=device, cache_size=cache_size, embedding_cache=embedding_cache)
        elif not isinstance(engine, SamEngine):
            raise ConfigError(f"engine must be a SamEngine, got {type(engine).__name__}")
        elif embedding_cache is not None and engine.embedding_cache != Path(embedding_cache):
            raise ConfigError("embedding_cache is the engine's: set it when building the SamEngine")
        super().__init__(engine, points_per_batch=points_per_batch, multimask=multimask)
        self.checkpoint = engine.checkpoint
        self.model_type = engine.model_type or "prebuilt"
        self.device = str(engine.device)

    def settings(self) -> dict:
        return {"model_type": self.model_type, "weights_sha256": self.fingerprint, "multimask": self.multimask}
