"""Fixtures for the training tests: a tiny model + processor with the grid_offset:n=8 vocabulary."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_with_vocab():
    """``(model, processor, layout)``: the tiny Qwen2.5-VL (112-px images) with ``grid_offset:n=8`` added."""
    from getok.train.sft import set_pixel_bounds
    from getok.vocab import add_spatial_tokens, make_tiny_model

    model, processor = make_tiny_model()
    set_pixel_bounds(processor, 56 * 56, 112 * 112)
    layout = add_spatial_tokens(processor, model, ["grid_offset:n=8,r=1,step=0.5"])
    return model, processor, layout
