"""segment-anything (SAM v1): safe checkpoint loading, a tiny random-weight twin, and :class:`SamEngine`.

:class:`SamEngine` is the one place that runs a SAM v1 model: it embeds images (in-memory LRU, optional
on-disk cache; :mod:`getok.backends._engine`) and answers batched point / box prompts. The grid proposer
(:mod:`getok.data_builders.proposers.sam`) and the mask decoder (:mod:`getok.decoding.sam`) both use it, and
can share one. Checkpoints are read with ``torch.load(..., weights_only=True)`` (tensors only, never
arbitrary pickles) or from ``.safetensors``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, require
from ._engine import ImageEmbedding, PromptEngine, model_fingerprint

__all__ = ["SAM_MODEL_TYPES", "SamEngine", "load_state_dict", "load_sam", "build_tiny_sam", "model_fingerprint"]

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "default")


def load_state_dict(path: str | Path) -> dict:
    """Tensors of a checkpoint: ``.safetensors``, or a ``torch.save``-d state dict read with ``weights_only``.

    Raises :class:`ConfigError` when the file is missing and :class:`DataError` when it holds anything but
    tensors (nothing is unpickled).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        st = require("safetensors.torch", "hf", "safetensors checkpoints")
        return st.load_file(str(p))
    torch = require("torch", "sam", "SAM checkpoints")
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError / EOFError on non-tensor content
        raise DataError(f"{p} is not a plain tensor state dict (refusing to unpickle objects): {exc}") from exc
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise DataError(f"{p} holds a {type(sd).__name__}, not a state dict")
    return sd


def load_sam(checkpoint: str | Path | None = None, model_type: str = "vit_b", device: str = "cpu"):
    """A segment-anything ``Sam`` of ``model_type`` with ``checkpoint`` loaded (random weights if ``None``)."""
    if model_type not in SAM_MODEL_TYPES:
        raise ConfigError(f"model_type must be one of {SAM_MODEL_TYPES}, got {model_type!r}")
    state = load_state_dict(checkpoint) if checkpoint is not None else None  # fail fast, before building
    sa = require("segment_anything", "sam", "SAM")
    model = sa.sam_model_registry[model_type](checkpoint=None)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DataError(
                f"checkpoint {checkpoint} does not fit SAM {model_type}: "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
    return model.to(device).eval()


def build_tiny_sam(img_size: int = 128, embed_dim: int = 32, prompt_dim: int = 32, depth: int = 1, seed: int = 0):
    """A tiny ``Sam`` from ``segment_anything.modeling`` classes with random weights (tests, benchmarks).

    The real code path (ViT image encoder, prompt encoder, two-way transformer mask decoder, SAM's
    pre- and post-processing) at toy sizes: ``img_size`` input (patch 16), ``depth`` encoder blocks, one
    decoder block; embedding ``(prompt_dim, img_size / 16, img_size / 16)``; ~0.1 M parameters.
    """
    torch = require("torch", "sam", "the tiny SAM")
    require("segment_anything", "sam", "the tiny SAM")
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    if img_size % 16:
        raise ConfigError(f"img_size must be a multiple of the patch size 16, got {img_size}")
    torch.manual_seed(seed)
    grid = img_size // 16
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=16,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=prompt_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_abs_pos=True,
            use_rel_pos=False,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=prompt_dim,
            transformer=TwoWayTransformer(depth=1, embedding_dim=prompt_dim, mlp_dim=2 * prompt_dim, num_heads=2),
            num_multimask_outputs=3,
            iou_head_depth=2,
            iou_head_hidden_dim=prompt_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return model.eval()


class SamEngine(PromptEngine):
    """A SAM v1 model, its input transform, image embeddings and batched prompts (see :mod:`getok.backends._engine`).

    SAM's own pipeline (``SamPredictor``): the longest side resized to the encoder size
    (``ResizeLongestSide``), pixel normalisation and padding (``Sam.preprocess``); prompt coordinates mapped
    by the same transform; of each prompt's outputs the one with the highest predicted IoU is upsampled
    (``Sam.postprocess_masks``) and thresholded at ``Sam.mask_threshold``.

    Parameters
    ----------
    model : segment_anything.modeling.Sam, optional
        A model already built (e.g. :func:`build_tiny_sam`); else ``checkpoint`` is loaded.
    checkpoint : path, optional
        SAM weights (``.pth`` state dict or ``.safetensors``), read by :func:`load_sam`.
    model_type : {"vit_b", "vit_l", "vit_h", "default"}
        The architecture of ``checkpoint``.
    device : str, optional
        Where a loaded model goes (default ``"cpu"``); a ``model`` given is moved there only when set.
    cache_size : int
        Embeddings kept in memory (vit_b at 1024 px: 4 MB each).
    embedding_cache : path, optional
        Directory of embeddings saved as safetensors (the format of ``SamProposer`` before engines:
        ``features``, ``original_size``, ``input_size``).
    """

    what = "SAM"

    def __init__(self, model=None, *, checkpoint: str | Path | None = None, model_type: str = "vit_b",
                 device: str | None = None, cache_size: int = 4,
                 embedding_cache: str | Path | None = None) -> None:
        if model is None:
            if checkpoint is None:
                raise ConfigError("SamEngine needs a checkpoint path or a prebuilt model")
            model = load_sam(checkpoint, model_type, device or "cpu")
        else:
            for part in ("image_encoder", "prompt_encoder", "mask_decoder", "postprocess_masks"):
                if not hasattr(model, part):
                    raise ConfigError(f"model is not a segment-anything Sam (no {part!r})")
            if device is not None:
                model = model.to(device)
        require("segment_anything", "sam", "SAM")
        from segment_anything.utils.transforms import ResizeLongestSide

        super().__init__(model, checkpoint=checkpoint, cache_size=cache_size, embedding_cache=embedding_cache)
        #: the architecture name of a checkpoint loaded here; ``None`` for a model given in memory
        self.model_type = model_type if checkpoint is not None else None
        self.transform = ResizeLongestSide(model.image_encoder.img_size)

    def _encode(self, image: np.ndarray) -> ImageEmbedding:
        torch = require("torch", "sam", "SAM")
        model = self.model
        resized = self.transform.apply_image(image)  # (h', w', 3), long side = encoder size
        x = torch.as_tensor(resized, device=model.device).permute(2, 0, 1).contiguous()[None]
        with torch.inference_mode():
            features = model.image_encoder(model.preprocess(x))  # (1, C, h, w)
        return ImageEmbedding(features, tuple(image.shape[:2]), tuple(x.shape[-2:]))

    def _predict(self, embedding: ImageEmbedding, points, boxes, multimask: bool, mask_threshold):
        torch = require("torch", "sam", "SAM")
        model = self.model
        dev = model.device
        orig = embedding.original_size
        pts_arg = None
        if points is not None:
            coords = self.transform.apply_coords_torch(torch.as_tensor(points, device=dev), orig)
            labels = torch.ones(coords.shape[:2], dtype=torch.int, device=dev)
            pts_arg = (coords, labels)
        box_arg = None
        if boxes is not None:
            box_arg = self.transform.apply_boxes_torch(torch.as_tensor(boxes, device=dev), orig)
        thr = model.mask_threshold if mask_threshold is None else float(mask_threshold)
        with torch.inference_mode():
            sparse, dense = model.prompt_encoder(points=pts_arg, boxes=box_arg, masks=None)
            low_res, iou = model.mask_decoder(
                image_embeddings=embedding.features,
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )  # (B, C, 256, 256), (B, C)
            best = iou.argmax(dim=1)  # (B,)
            ar = torch.arange(len(best), device=dev)
            chosen = low_res[ar, best][:, None]  # (B, 1, 256, 256): only the kept output is upsampled
            masks = model.postprocess_masks(chosen, embedding.input_size, orig)[:, 0] > thr
        return masks.cpu().numpy(), iou[ar, best].float().cpu().numpy()
