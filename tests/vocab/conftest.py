"""Fixtures of the vocab tests: the tiny Qwen2.5-VL built once per session (untied, tied, Qwen-like padded)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Small, fast variants (2 decoder layers); the default sizes are built once in test_tiny.
SMALL = dict(num_layers=2, seed=0)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """``{"untied": dir, "tied": dir, "padded": dir}`` of tiny models (built once, ~1 s each)."""
    from getok.vocab.tiny import TinyModelConfig, build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {
        "untied": build_tiny_model(root / "untied", TinyModelConfig(**SMALL)),
        "tied": build_tiny_model(root / "tied", TinyModelConfig(tie_word_embeddings=True, **SMALL)),
        "padded": build_tiny_model(root / "padded", TinyModelConfig(vocab_multiple=64, **SMALL)),
    }


@pytest.fixture
def load_tiny(tiny_dirs):
    """``load_tiny(kind)`` → fresh ``(model, processor)`` from the session's tiny directory."""
    from getok.vocab.loading import load_model_and_processor

    def load(kind: str = "untied"):
        return load_model_and_processor(tiny_dirs[kind])

    return load


@pytest.fixture(scope="session")
def image112():
    from PIL import Image

    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8))
