"""The model an SFT run trains: the base directory (a model path or the embedded tiny model), its
vision warm-up (``OUTPUT/base-warm``), the spatial vocabulary and the tuning set-up (LoRA or full).

* :func:`prepare_base`, :func:`prepare_warm_base` — the base model directory of a run;
* :func:`setup_model` — load it, bound its image sizes (:func:`set_pixel_bounds`), add or validate the
  vocabulary, and :func:`setup_tuning` (shared by SFT and GRPO).

:mod:`getok.train.sft` re-exports every name here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..data_builders.scenes import generate_scenes
from ..errors import ConfigError, DataError
from ..io import atomic_write_json
from ..vocab import (
    add_spatial_tokens,
    apply_trl_fused_head_fix,
    full_finetune_setup,
    get_peft_model_for,
    load_model_and_processor,
    save_with_layout,
    validate_layout,
)
from ..vocab.adapters import adapter_for
from ..vocab.tiny import build_tiny_model, read_tiny_config
from .config import SFTRunConfig
from .trainer import usable_cores
from .vision_warmup import warm_up_vision

__all__ = [
    "set_pixel_bounds",
    "prepare_base",
    "WARM_DIR",
    "prepare_warm_base",
    "setup_model",
    "setup_tuning",
]


def set_pixel_bounds(processor, min_pixels: int | None, max_pixels: int | None) -> bool:
    """Bound ``H * W`` after the image processor's resize (``min_pixels`` / ``max_pixels``) where the
    processor has such bounds, through the family's adapter (:mod:`getok.vocab.adapters`): Qwen2 / 2.5-VL
    ``size`` ``shortest_edge`` / ``longest_edge``, Qwen3-VL the same in its patch x merge unit; a CLIP /
    SigLIP / Idefics3 processor keeps its own sizes (logged). Returns whether the processor was changed."""

    return adapter_for(processor).set_pixel_bounds(processor, min_pixels, max_pixels)


def prepare_base(cfg: SFTRunConfig, output_dir: str | Path) -> Path:
    """The base model directory: ``model.path``, or the tiny model built into ``OUTPUT/base`` (once)."""
    if not cfg.model.is_tiny:
        p = Path(cfg.model.path)
        if not (p / "config.json").is_file():
            raise ConfigError(f"model.path {p} is not a model directory (no config.json); use 'tiny' or a local dir")
        return p

    base = Path(output_dir) / "base"
    want = cfg.model.tiny_config()
    if base.exists():
        have = read_tiny_config(base)
        if have != want:
            raise DataError(f"{base} holds a tiny model built with other settings; remove it or change output_dir")
        return base
    build_tiny_model(base, want)
    return base


WARM_DIR = "base-warm"
_WARM_INFO = "getok_vision_warmup.json"


def _warmup_key(wc) -> dict:
    """The warm-up settings in its cache key; ``moves`` only when used, so earlier warm-ups still match."""
    d = dataclasses.asdict(wc)
    if not d.get("moves"):
        d.pop("moves", None)
    return d


def prepare_warm_base(cfg: SFTRunConfig, base: Path, output_dir: str | Path, *, progress: bool = True) -> Path:
    """``base`` with the vocabulary added and the vision tower warmed up (``vision_warmup.steps > 0``),
    written once to ``OUTPUT/base-warm`` (reused when its settings match); ``base`` itself otherwise.

    The warmed directory is the base of the run: LoRA adapters and resumed runs refer to it, so the vision
    weights the warm-up changed are part of every checkpoint's starting point.
    """
    wc = cfg.vision_warmup
    steps = wc.steps_for(cfg.model)
    if not steps:
        return Path(base)

    out = Path(output_dir) / WARM_DIR
    wc = dataclasses.replace(wc, steps=steps)
    tiny = read_tiny_config(base)  # a tiny base is named by its settings, so a moved run directory still matches
    key = {"base": tiny.to_dict() if tiny is not None else str(Path(base).resolve()),
           "vision_warmup": _warmup_key(wc), "codecs": cfg.vocab.codecs, "init": cfg.vocab.init,
           "init_seed": cfg.vocab.init_seed, "scenes": dataclasses.asdict(cfg.data.scenes),
           "min_pixels": cfg.model.min_pixels, "max_pixels": cfg.model.max_pixels}  # fmt: skip
    if (out / _WARM_INFO).is_file():
        info = json.loads((out / _WARM_INFO).read_text())
        if info.get("key") == key:
            return out
        raise DataError(f"{out} was warmed up with other settings; remove it or change output_dir")
    m = cfg.model
    model, processor = load_model_and_processor(base, dtype=None if m.dtype == "auto" else m.dtype,
                                                 trust_remote_code=m.trust_remote_code)  # fmt: skip
    set_pixel_bounds(processor, m.min_pixels, m.max_pixels)
    layout = add_spatial_tokens(processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed,
                                pad_to_multiple_of=cfg.vocab.pad_to_multiple_of)  # fmt: skip
    validate_layout(layout, processor, model)
    sc = cfg.data.scenes
    # no more scenes than the warm-up can draw (a short warm-up on a large scene series)
    scenes = generate_scenes(min(sc.n, steps * wc.batch_size), seed=sc.seed, cfg=sc.scene_config())
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(wc.torch_threads or usable_cores())
    try:
        stats = warm_up_vision(model, processor, layout, scenes, wc, progress=progress)
    finally:
        torch.set_num_threads(threads)
    save_with_layout(model, processor, layout, out, overwrite=True)  # a directory without the marker is redone
    atomic_write_json(out / _WARM_INFO, {"key": key, "stats": stats})  # the marker, last
    return out


def setup_model(cfg: SFTRunConfig, base: str | Path):
    """Load the base, add (or validate) the vocabulary, set up LoRA or full fine-tuning.

    Returns
    -------
    (model, processor, layout, counts)
        ``model`` is a ``PeftModel`` (LoRA) or the base model (full); ``layout`` has ids; ``counts`` are
        ``{"trainable": ..., "frozen": ...}`` parameter counts.
    """

    m = cfg.model
    model, processor = load_model_and_processor(
        base, dtype=None if m.dtype == "auto" else m.dtype, trust_remote_code=m.trust_remote_code,
        attn_implementation=m.attn_implementation,
    )  # fmt: skip
    set_pixel_bounds(processor, m.min_pixels, m.max_pixels)
    layout = add_spatial_tokens(
        processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed,
        pad_to_multiple_of=cfg.vocab.pad_to_multiple_of,
    )  # fmt: skip
    validate_layout(layout, processor, model)
    model, counts = setup_tuning(model, layout, cfg.tuning)
    return model, processor, layout, counts


def setup_tuning(model, layout, t):
    """LoRA (+ trainable new rows, TRL's fused-head fix) or full fine-tuning per a ``tuning:`` section
    (:class:`~getok.train.config.TuningConfig`, shared by SFT and GRPO); returns ``(model, counts)`` with
    ``counts = {"trainable": ..., "frozen": ...}`` parameter counts, the model in train mode."""

    if t.mode == "lora":
        apply_trl_fused_head_fix()
        model = get_peft_model_for(
            model, layout, rank=t.rank, alpha=t.alpha, dropout=t.dropout, train_new_rows=t.train_new_rows,
            target_modules=t.target_modules, experts=t.experts,
        )  # fmt: skip
        counts = {"trainable": 0, "frozen": 0}
        for p in model.parameters():
            counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    else:
        counts = full_finetune_setup(
            model, train_vision=t.train_vision, train_merger=t.train_merger, train_embeddings=t.train_embeddings,
            layout=layout, new_rows_only=t.new_rows_only,
        )  # fmt: skip
    model.train()
    return model, counts
