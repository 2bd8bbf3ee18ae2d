"""Spatial vocabulary: layouts, adding tokens to a Hugging Face model, initialisation, resizing, LoRA.

``import getok.vocab`` is light (numpy only): the public names below that need torch / transformers /
peft are resolved lazily, on first attribute access.

* :class:`VocabLayout` — which spatial tokens (and ids) a model, dataset or checkpoint was made with;
* :func:`add_spatial_tokens`, :func:`validate_layout` — add codec tokens as non-special tokens, resize
  embedding and head (tied or untied), check a layout against a tokenizer / model;
* :func:`register_init`, :func:`get_init` — row init strategies (``mean``, ``text``, ``2d``, ``random``);
* :func:`resize_grid`, :func:`resize_offsets` — change the grid or offset set, interpolating learned rows;
* :func:`build_tiny_model`, :class:`TinyModelConfig`, :func:`load_model_and_processor` — the offline tiny
  Qwen2.5-VL and a loader for tiny / real model directories;
* :func:`lora_config_for`, :func:`get_peft_model_for`, :func:`apply_trl_fused_head_fix`,
  :func:`full_finetune_setup`, :func:`save_adapter`, :func:`load_adapter`, :func:`merge_and_save`;
* :func:`adapter_for`, :class:`ModelAdapter`, :func:`register_adapter` — what differs between VLM families
  (image-token counts, pixel bounds, parts, end-of-turn tokens), one registered adapter per family;
* :func:`make_family_model`, :func:`build_family_model` — tiny random-weight models of the open VLM families
  (Qwen2-VL ... Mistral 3, :mod:`getok.vocab.families`), the rows of the tested family matrix.
"""

from __future__ import annotations

from .._lazy import lazy_attributes
from .layout import LAYOUT_FILE, VocabLayout

_LAZY = {
    "add_spatial_tokens": "add_tokens",
    "validate_layout": "add_tokens",
    "tokenizer_of": "add_tokens",
    "is_tied": "add_tokens",
    "save_with_layout": "add_tokens",
    "register_init": "init",
    "get_init": "init",
    "list_inits": "init",
    "InitContext": "init",
    "resize_grid": "resize",
    "resize_offsets": "resize",
    "TinyModelConfig": "tiny",
    "build_tiny_model": "tiny",
    "make_tiny_model": "tiny",
    "load_model_and_processor": "loading",
    "lora_config_for": "peft_utils",
    "get_peft_model_for": "peft_utils",
    "apply_trl_fused_head_fix": "peft_utils",
    "full_finetune_setup": "peft_utils",
    "save_adapter": "peft_utils",
    "load_adapter": "peft_utils",
    "merge_and_save": "peft_utils",
    "ModelAdapter": "adapters",
    "adapter_for": "adapters",
    "register_adapter": "adapters",
    "make_family_model": "families",
    "build_family_model": "families",
}

__all__ = ["VocabLayout", "LAYOUT_FILE", *_LAZY]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
