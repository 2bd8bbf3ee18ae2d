"""Spatial vocabulary: layouts, adding tokens to a Hugging Face model, initialisation, resizing, LoRA."""

from .layout import LAYOUT_FILE, VocabLayout

__all__ = ["VocabLayout", "LAYOUT_FILE"]
