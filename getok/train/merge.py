"""``getok train merge``: a training checkpoint → a standalone model directory.

A LoRA checkpoint (adapter + new token rows) is loaded onto its base (the ``base_model`` its
``getok_checkpoint.json`` records, resized with the same codecs, init and seed), merged
(``merge_and_unload``) and written with the processor and ``getok_layout.json``. A full fine-tuning
checkpoint is re-saved the same way (weights only, no optimiser state). The result loads with
``AutoModelForImageTextToText.from_pretrained`` / ``AutoProcessor.from_pretrained`` and gives the
checkpoint's logits; it can be the ``model.path`` of a further SFT or GRPO run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import ConfigError
from ..vocab import load_adapter, load_model_and_processor, merge_and_save, save_with_layout, validate_layout
from ..vocab.layout import VocabLayout
from .callbacks import CONFIG_FILE, read_checkpoint_info, write_checkpoint_info

__all__ = ["merge_checkpoint", "load_checkpoint"]


def load_checkpoint(checkpoint: str | Path, *, base: str | Path | None = None, dtype=None):
    """Load a getok SFT checkpoint (LoRA or full) for inference.

    Returns
    -------
    (model, processor, layout, info)
        ``model`` is a ``PeftModel`` for LoRA checkpoints, a plain model for full ones; ``info`` is the
        checkpoint's ``getok_checkpoint.json``.
    """

    ckpt = Path(checkpoint)
    info = read_checkpoint_info(ckpt)
    layout = VocabLayout.load(ckpt)
    if info.get("tuning") == "lora":
        kw = {} if dtype is None else {"dtype": dtype}
        model, processor, got = load_adapter(ckpt, base=base or info.get("base_model"), **kw)
        got.check_matches(layout, what=f"checkpoint {ckpt}")
    elif info.get("tuning") == "full":
        model, processor = load_model_and_processor(ckpt, dtype=dtype)
        validate_layout(layout, processor, model)
    else:
        raise ConfigError(f"{ckpt}: unknown tuning mode {info.get('tuning')!r} in its checkpoint info")
    model.eval()
    return model, processor, layout, info


def merge_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, base: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write a standalone model directory (merged weights, processor, layout, config) for ``checkpoint``.

    Parameters
    ----------
    checkpoint : path
        ``OUTPUT/checkpoint-N`` or ``OUTPUT/final`` of :func:`getok.train.sft.run_sft`.
    out_dir : path
        Written atomically; must not exist unless ``overwrite``.
    base : path, optional
        Base model directory (default: the one the checkpoint records).
    """

    ckpt = Path(checkpoint)
    model, processor, layout, info = load_checkpoint(ckpt, base=base)
    out = Path(out_dir)
    if info["tuning"] == "lora":
        merge_and_save(model, processor, layout, out, overwrite=overwrite)
    else:
        save_with_layout(model, processor, layout, out, overwrite=overwrite)
    cfg = ckpt / CONFIG_FILE
    config_text = cfg.read_text() if cfg.is_file() else ""
    merged_info = {k: v for k, v in info.items() if k not in ("format", "version", "codecs", "layout_hash")}
    merged_info.update({"merged_from": str(ckpt.resolve()), "tuning": "merged", "source_tuning": info["tuning"]})
    write_checkpoint_info(out, layout, config_text, merged_info)
    readme = ckpt / "README.md"
    if readme.is_file() and not (out / "README.md").exists():
        shutil.copyfile(readme, out / "README.md")
    return out
