"""What every SAM engine shares: image embeddings (in-memory LRU, optional on-disk cache) and batched prompts.

A SAM engine (:class:`~getok.backends.sam.SamEngine`, :class:`~getok.backends.sam2.Sam2Engine`,
:class:`~getok.backends.sam3.Sam3Engine`) owns one model and is the only code that calls it. Decoders
(:mod:`getok.decoding.sam`, ``sam2``, ``sam3``) and grid proposers
(:mod:`getok.data_builders.proposers.sam`, ``sam2``) are thin users of it, and one engine can serve both,
so an image embedded while building data is not embedded again when decoding. Its two calls:

* ``embed(image, key=None) -> ImageEmbedding``: the embedding of an ``(H, W, 3)`` uint8 RGB image. The last
  ``cache_size`` embeddings are kept in memory, keyed by ``key`` (a path or id that always names the same
  pixels) or else by the hash of the pixels (:func:`getok.provenance.image_hash`). With
  ``embedding_cache=DIR`` an embedding is also saved as ``DIR/<sha256(pixel hash | fingerprint)>.safetensors``
  (written whole to a temporary file, then renamed) and loaded from there on a later run.
* ``predict(embedding, points=None, boxes=None, multimask=True, batch_size=64, mask_threshold=None)
  -> (masks, scores)``: ``B`` prompts, ``points`` ``(B, P, 2)`` positive points and / or ``boxes`` ``(B, 4)``
  xyxy, both in the model's pixel-index coordinates (SAM adds 0.5 itself; see
  :func:`getok.decoding.sam_prompts.to_sam_points`), sent ``batch_size`` at a time; per prompt the mask of the
  best-scoring multimask output (or the single output with ``multimask=False``) at the image's resolution,
  ``(B, H, W)`` bool, and its predicted IoU, ``(B,)`` float32.

A subclass implements ``_encode(image) -> ImageEmbedding`` and ``_predict(embedding, points, boxes,
multimask, mask_threshold) -> (masks, scores)`` for one batch (``points`` / ``boxes`` float32 arrays or
``None``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..provenance import image_hash
from ._common import LRUCache, check_image

__all__ = ["ImageEmbedding", "PromptEngine", "file_sha256", "model_fingerprint"]


@dataclass(frozen=True)
class ImageEmbedding:
    """One image's embedding: ``features`` (a tensor, or a tuple of multi-scale tensors, on the model's
    device), the image's ``original_size`` ``(H, W)`` and the model input's ``input_size`` ``(h, w)``."""

    features: Any
    original_size: tuple[int, int]
    input_size: tuple[int, int]


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """sha256 of a torch module's parameters and buffers (names, shapes, dtypes, values): a cache key."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(a.shape)}|{a.dtype}|".encode())
        h.update(a.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class PromptEngine:
    """Base class of the SAM engines; see the module docstring.

    Attributes
    ----------
    model
        The torch model (eval mode).
    checkpoint : Path or None
        Where the weights came from (``None`` for a model given in memory).
    embedding_calls : int
        How many times the image encoder ran (embeddings found in memory or on disk do not count).
    """

    #: the model's name in messages
    what = "SAM"

    def __init__(self, model, *, checkpoint: str | Path | None = None, cache_size: int = 4,
                 embedding_cache: str | Path | None = None) -> None:

        self.model = model.eval()
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.embedding_cache = None if embedding_cache is None else Path(embedding_cache)
        self.cache = LRUCache(cache_size)
        self.embedding_calls = 0
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ identity
    @property
    def device(self):
        return self.model.device

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights: of the checkpoint file when there is one, else of the model's tensors;
        computed once, when first asked (the on-disk cache and ``settings()`` of a proposer ask)."""
        if self._fingerprint is None:
            if self.checkpoint is not None and self.checkpoint.is_file():
                self._fingerprint = file_sha256(self.checkpoint)
            else:
                self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    # ------------------------------------------------------------------ embeddings
    def embed(self, image: np.ndarray, key: str | None = None) -> ImageEmbedding:
        """The embedding of ``image`` ``(H, W, 3)`` uint8 RGB: from memory, from the on-disk cache, or computed.

        ``key`` names the image in memory and must always name the same pixels; without one the pixels are
        hashed (~1 ms per megapixel). The on-disk cache is always keyed by the pixels and the weights.
        """

        img = check_image(image)
        pixel_hash = None
        if key is None:
            key = pixel_hash = image_hash(img)

        def compute() -> ImageEmbedding:
            path = None
            if self.embedding_cache is not None:
                ph = pixel_hash if pixel_hash is not None else image_hash(img)
                name = hashlib.sha256(f"{ph}|{self.fingerprint}".encode()).hexdigest()
                path = self.embedding_cache / f"{name}.safetensors"
                if path.is_file():
                    emb = self._read_embedding(path)
                    if emb.original_size != tuple(img.shape[:2]):
                        raise DataError(f"{path} holds the embedding of a {emb.original_size} image, "
                                        f"not of this {tuple(img.shape[:2])} one")
                    return emb
            emb = self._encode(img)
            self.embedding_calls += 1
            if path is not None:
                self._write_embedding(emb, path)
            return emb

        return self.cache.get_or_compute(key, compute)

    def _write_embedding(self, emb: ImageEmbedding, path: Path) -> None:
        import torch
        from safetensors.torch import save_file

        feats = emb.features
        tensors = ({"features": feats} if isinstance(feats, torch.Tensor)
                   else {f"features_{i}": t for i, t in enumerate(feats)})
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        tensors["original_size"] = torch.tensor(emb.original_size)
        tensors["input_size"] = torch.tensor(emb.input_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")  # written whole, then renamed (atomic)
        save_file(tensors, str(tmp))
        tmp.replace(path)

    def _read_embedding(self, path: Path) -> ImageEmbedding:
        from safetensors.torch import load_file

        d = load_file(str(path))
        dev = self.device
        if "features" in d:
            feats = d["features"].to(dev)
        else:
            n = sum(k.startswith("features_") for k in d)
            feats = [d[f"features_{i}"].to(dev) for i in range(n)]
        return ImageEmbedding(
            features=feats,
            original_size=tuple(int(v) for v in d["original_size"].tolist()),
            input_size=tuple(int(v) for v in d["input_size"].tolist()),
        )

    # ------------------------------------------------------------------ prompts
    def predict(self, embedding: ImageEmbedding, points: np.ndarray | None = None, boxes: np.ndarray | None = None,
                *, multimask: bool = True, batch_size: int = 64,
                mask_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(B, H, W)`` bool and predicted IoUs ``(B,)`` float32 of ``B`` prompts; see the module docstring.

        ``mask_threshold`` ``None`` is the model's (0 on the logits).
        """
        if points is None and boxes is None:
            raise ConfigError("a prompt needs points or a box")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        pts = None if points is None else np.asarray(points, dtype=np.float32)
        bxs = None if boxes is None else np.asarray(boxes, dtype=np.float32)
        if pts is not None and (pts.ndim != 3 or pts.shape[2] != 2):
            raise ConfigError(f"points must be (B, P, 2), got {pts.shape}")
        if bxs is not None and (bxs.ndim != 2 or bxs.shape[1] != 4):
            raise ConfigError(f"boxes must be (B, 4), got {bxs.shape}")
        if pts is not None and bxs is not None and len(pts) != len(bxs):
            raise ConfigError(f"{len(pts)} point prompts but {len(bxs)} boxes")
        b = len(pts) if pts is not None else len(bxs)
        h, w = embedding.original_size
        if b == 0:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        bs = int(batch_size)
        masks, scores = [], []
        for i in range(0, b, bs):
            m, s = self._predict(
                embedding,
                None if pts is None else np.ascontiguousarray(pts[i : i + bs]),
                None if bxs is None else np.ascontiguousarray(bxs[i : i + bs]),
                bool(multimask),
                mask_threshold,
            )
            masks.append(m)
            scores.append(s)
        if len(masks) == 1:
            return masks[0], scores[0]
        return np.concatenate(masks, axis=0), np.concatenate(scores, axis=0)

    # ------------------------------------------------------------------ the model (subclasses)
    def _encode(self, image: np.ndarray) -> ImageEmbedding:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, embedding: ImageEmbedding, points, boxes, multimask: bool,
                 mask_threshold: float | None):  # pragma: no cover - abstract
        raise NotImplementedError
