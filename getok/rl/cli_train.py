"""The ``getok train grpo`` hook: SFT's :data:`getok.train.cli.TRAIN_EXTENSIONS` names this module."""

from __future__ import annotations

from .cli import register_train

__all__ = ["register_train"]
