"""``sam``: a plug-in segment-anything (SAM v1) decoder, prompted by the decoded geometry.

``get_decoder("sam:checkpoint=/models/sam_vit_b.pth,model_type=vit_b,mode=union")``, with a model already
in memory ``get_decoder("sam", model=sam)``, or with the engine a SAM proposer uses
``get_decoder("sam", engine=engine)``. Prompts (:mod:`getok.decoding.sam_prompts`): grid cells → cell
centres as positive points (refined by offsets, ``<DELETE>``-d cells dropped), points → points, boxes →
box, polygons → box + interior points. Modes and multimask selection: :mod:`getok.decoding._prompted`.

The model runs in :class:`~getok.backends.sam.SamEngine`, the one SAM v1 integration, shared with the grid
proposer (:mod:`getok.data_builders.proposers.sam`): SAM's input pipeline (longest side resized to the
encoder size, pixel normalisation, padding), the image embedding computed once per image and kept in an
LRU keyed by the image's ``key`` (or a hash of its pixels), optionally saved on disk
(``embedding_cache=DIR``), and batched prompts whose chosen output alone is upsampled to the image size.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (tensors only, never arbitrary
pickles) or from ``.safetensors``.
"""

from __future__ import annotations

from ..backends.sam import SAM_MODEL_TYPES, SamEngine, build_tiny_sam, load_sam, load_state_dict
from ..errors import ConfigError, require
from ._prompted import PromptedDecoder
from .base import register_decoder

__all__ = ["SamDecoder", "SamEngine", "load_sam", "build_tiny_sam", "load_state_dict", "SAM_MODEL_TYPES"]


@register_decoder("sam")
class SamDecoder(PromptedDecoder):
    """segment-anything decoder.

    Parameters
    ----------
    checkpoint : str, optional
        Path to SAM weights (``sam_vit_b_01ec64.pth`` or a ``.safetensors`` file).
    model_type : {"vit_b", "vit_l", "vit_h", "default"}
    model : segment_anything.modeling.Sam or SamEngine, optional
        A model already built (takes precedence over ``checkpoint``; used on its own device).
    engine : SamEngine, optional
        An engine already built, e.g. shared with a :class:`~getok.data_builders.proposers.sam.SamProposer`
        (instead of ``checkpoint`` / ``model``; ``device``, ``cache_size`` and ``embedding_cache`` are the
        engine's).
    device : str
        Torch device for a model loaded here (``"cpu"``, ``"cuda"``).
    mode : {"union", "joint"}
        Per-point masks unioned (matches the greedy builder), or one joint prompt.
    multimask : bool
        Keep the best-scoring of SAM's three masks (default) instead of its single-mask output.
    cache_size : int
        Image embeddings kept in memory (vit_b: 4 MB each).
    embedding_cache : str, optional
        Directory where embeddings are saved and looked up (safetensors, by image and weights).
    batch_size : int
        Prompts per mask-decoder call in union mode.
    interior_points : int
        Interior points per polygon when a polygon answer is prompted.
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        model=None,
        device: str = "cpu",
        mode: str = "union",
        multimask: bool = True,
        cache_size: int = 4,
        batch_size: int = 32,
        interior_points: int = 1,
        engine: SamEngine | None = None,
        embedding_cache: str | None = None,
    ) -> None:
        require("torch", "sam", "the SAM decoder")
        if isinstance(model, SamEngine):
            model, engine = None, model
        if engine is None:
            if model is None and checkpoint is None:
                raise ConfigError(
                    "the sam decoder needs weights: 'sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b' "
                    "or get_decoder('sam', model=sam_model)"
                )
            engine = SamEngine(model, checkpoint=None if model is not None else checkpoint, model_type=model_type,
                               device=device if model is None else None, cache_size=cache_size,
                               embedding_cache=embedding_cache)
        elif not isinstance(engine, SamEngine):
            raise ConfigError(f"engine must be a SamEngine, got {type(engine).__name__}")
        super().__init__(engine, mode=mode, multimask=multimask, batch_size=batch_size,
                         interior_points=interior_points)
        self.model_type = engine.model_type or type(engine.model).__name__
        self.checkpoint = None if engine.checkpoint is None else str(engine.checkpoint)

    @property
    def transform(self):
        """SAM's ``ResizeLongestSide`` to the encoder size (the engine's)."""
        return self.engine.transform

    def settings(self) -> dict:
        return {**super().settings(), "model_type": self.model_type, "checkpoint": self.checkpoint}
