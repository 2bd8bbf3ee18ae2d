"""Loading a promptable segmenter (SAM 2, SAM 3 tracker) from a local transformers directory.

One loader for every transformers SAM back end: the directory must exist (nothing is downloaded,
``local_files_only=True``), the weights are safetensors, and a ``dtype`` name is checked before any
weight is read.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, require

__all__ = ["DTYPES", "torch_dtype", "load_pretrained"]

DTYPES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str | None):
    """The ``torch.dtype`` of a name in :data:`DTYPES`; ``None`` stays ``None`` (the checkpoint's own)."""
    if name is None:
        return None
    if str(name) not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {name!r}")
    torch = require("torch", "hf", "a torch dtype")
    return getattr(torch, str(name))


def load_pretrained(class_name: str, checkpoint: str | Path, device: str = "cpu", dtype: str | None = None,
                    *, what: str):
    """``transformers.<class_name>`` from the local directory ``checkpoint`` (never downloads), in eval mode.

    ``what`` names the model in messages (``"SAM2"``, ``"SAM 3"``). ``dtype`` ``None`` keeps the
    checkpoint's dtype.
    """
    dt = torch_dtype(dtype)
    p = Path(checkpoint)
    if not p.is_dir():
        raise ConfigError(f"{what} checkpoint must be a local transformers model directory; not found: {p}")
    tf = require("transformers", "hf", f"the {what} decoder")
    cls = getattr(tf, class_name, None)
    if cls is None:
        raise ConfigError(f"transformers {tf.__version__} has no {class_name}; upgrade transformers")
    kwargs = {} if dt is None else {"dtype": dt}
    model = cls.from_pretrained(str(p), local_files_only=True, use_safetensors=True, **kwargs)
    return model.to(device).eval()
