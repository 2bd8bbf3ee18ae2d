"""Loading a model directory with its processor: any Hugging Face VLM, a getok checkpoint or the tiny model
(its processor rebuilt when the directory holds none), the vocabulary layout checked against the tokenizer."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..errors import ConfigError as _ConfigError
from .add_tokens import validate_layout
from .layout import LAYOUT_FILE, VocabLayout

__all__ = ["ensure_processor", "load_model_and_processor"]


def ensure_processor(obj, path: str | Path, trust_remote_code: bool = False):
    """Return a full multimodal processor for ``path``, rebuilding one when ``AutoProcessor`` gave a tokenizer.

    ``AutoProcessor.from_pretrained`` falls back to the bare tokenizer when it cannot resolve the
    processor class (a missing / non-stock ``processor_class``). Then the processor class registered for
    the model type in ``config.json`` is assembled from ``AutoImageProcessor`` (+ ``AutoVideoProcessor``
    when the class takes one) and the tokenizer.
    """
    if hasattr(obj, "image_processor"):
        return obj

    import transformers
    from transformers import AutoConfig, AutoImageProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    model_type = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).model_type
    cls_name = PROCESSOR_MAPPING_NAMES.get(model_type)
    if cls_name is None or not hasattr(transformers, cls_name):
        raise _ConfigError(
            f"AutoProcessor returned a {type(obj).__name__} for {path} and no processor class is known for "
            f"model type {model_type!r}"
        )
    cls = getattr(transformers, cls_name)
    kwargs = {
        "image_processor": AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code),
        "tokenizer": obj,
        "chat_template": getattr(obj, "chat_template", None),
    }
    if "video_processor" in inspect.signature(cls.__init__).parameters:
        from transformers import AutoVideoProcessor

        kwargs["video_processor"] = AutoVideoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    return cls(**kwargs)


def load_model_and_processor(
    path: str | Path,
    dtype: Any = None,
    device: Any = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    check_layout: bool = True,
    **model_kwargs,
):
    """Load a VLM directory (the tiny model, a real ``Qwen2.5-VL-7B-Instruct``, a merged getok checkpoint).

    Parameters
    ----------
    path
        Local directory (nothing is downloaded when ``HF_HUB_OFFLINE=1``).
    dtype
        ``None`` (the checkpoint's dtype, ``"auto"``), a ``torch.dtype`` or its name (``"bfloat16"``).
    device
        Where to move the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None`` leaves it on the CPU.
        Pass ``device_map=...`` in ``model_kwargs`` for multi-GPU sharding instead.
    trust_remote_code
        Off unless asked (getok never runs a checkpoint's own code by default).
    check_layout
        When the directory holds ``getok_layout.json``, validate it against the tokenizer (and the model's
        embedding rows) and raise :class:`~getok.errors.LayoutMismatchError` on a difference.

    Returns
    -------
    (model, processor)
        The model in eval mode and a full processor (never a bare tokenizer).
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if isinstance(dtype, str) and dtype != "auto":
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ConfigError(f"dtype {dtype!r} is not a torch dtype name (e.g. 'bfloat16', 'float32', 'auto')")
        dtype = getattr(torch, dtype)
    kwargs = dict(model_kwargs)
    kwargs["dtype"] = "auto" if dtype is None else dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a model directory (no config.json)")
    model = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    if device is not None:
        model = model.to(device)
    model.eval()
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    processor = ensure_processor(processor, path, trust_remote_code=trust_remote_code)
    if check_layout:
        if (path / LAYOUT_FILE).is_file():
            validate_layout(VocabLayout.load(path), processor.tokenizer, model=model)
    return model, processor
