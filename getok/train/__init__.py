"""Supervised fine-tuning on the spatial vocabulary (TRL ``SFTTrainer``), checkpoints and merging.

``import getok.train`` is light: the names below that need torch / transformers / TRL load on first use.

* :class:`SFTRunConfig` and its sections, :func:`load_sft_config` — the YAML / ``a.b=c`` schema
  (:mod:`getok.train.config`);
* :func:`build_mixture`, :func:`prepare_examples`, :func:`mix_pools`, :func:`build_eval_set` — the training
  data (:mod:`getok.train.data`);
* :func:`run_sft`, :func:`setup_model`, :func:`training_arguments` — the run (:mod:`getok.train.sft`);
* :func:`merge_checkpoint`, :func:`load_checkpoint` — checkpoints → models (:mod:`getok.train.merge`);
* CLI: ``getok train sft CONFIG.yaml [k=v ...]``, ``getok train merge CKPT --out DIR``
  (:mod:`getok.train.cli`; see ``docs/training.md``).
"""

from __future__ import annotations

from .._lazy import lazy_attributes
from .config import (
    DataConfig,
    EvalConfig,
    MixtureEntry,
    ModelConfig,
    ScenesConfig,
    SFTRunConfig,
    TrainConfig,
    TuningConfig,
    VocabConfig,
    load_sft_config,
)

_LAZY = {
    "build_mixture": "data",
    "build_eval_set": "data",
    "mix_pools": "data",
    "prepare_examples": "data",
    "run_sft": "sft",
    "setup_model": "sft",
    "training_arguments": "sft",
    "merge_checkpoint": "merge",
    "load_checkpoint": "merge",
}

__all__ = [
    "SFTRunConfig",
    "ModelConfig",
    "VocabConfig",
    "TuningConfig",
    "ScenesConfig",
    "MixtureEntry",
    "DataConfig",
    "TrainConfig",
    "EvalConfig",
    "load_sft_config",
    *_LAZY,
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
