"""Fixtures for the runner / self-correction / viz tests: a tiny model with spatial tokens, scene datasets,
and a scripted fake model whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from getok.ops.masks import rle_encode
from getok.samples import Sample, Turn

SPEC = "grid_offset:n=16,r=1,step=0.5"
BINS = "bins:bins=100"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny random Qwen2.5-VL with the tokens of ``grid_offset:n=16`` and ``bins:bins=100``, saved once."""
    from getok.vocab.add_tokens import add_spatial_tokens, save_with_layout
    from getok.vocab.loading import load_model_and_processor
    from getok.vocab.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    base = build_tiny_model(root / "base")
    model, proc = load_model_and_processor(base)
    layout = add_spatial_tokens(proc, model, [SPEC, BINS])
    return save_with_layout(model, proc, layout, root / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from getok.vocab.loading import load_model_and_processor

    return load_model_and_processor(tiny_model_dir)


@pytest.fixture(scope="session")
def scene_dataset(tmp_path_factory):
    """A dataset directory of procedural scenes in ``grid_offset:n=16``: mask / box / point / no-target tasks
    (mask answers: the cells whose centre lies on the object, what the raster decoder inverts) and two-turn
    refinement samples."""
    from getok.data_builders.cli_builders import build_offsets
    from getok.data_builders.dataset import write_dataset
    from getok.data_builders.offsets import OffsetConfig
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import TaskConfig, build_tasks

    imgs = generate_scenes(3, seed=0)
    sl = build_tasks(imgs, SPEC, TaskConfig(tasks=("text>mask", "text>box", "text>point", "none>mask")))
    offs = build_offsets(imgs[:1], SPEC, None, cfg=OffsetConfig(k=6), progress=False)
    sl.extend_from(offs)
    return write_dataset(sl, tmp_path_factory.mktemp("data") / "scenes")


class ScriptedModel:
    """A generate function with known answers: ``answers[(sample_id, turn)]`` (turn = turns in the context;
    1 without a context) or ``default``; records every call."""

    def __init__(self, answers: dict, default: str = "none") -> None:
        self.answers = answers
        self.default = default
        self.calls: list[dict] = []

    def __call__(self, samples, *, turns_context=None, constrained=None, max_new_tokens=128):
        out = []
        for i, s in enumerate(samples):
            turn = 1 if turns_context is None else len(turns_context[i])
            self.calls.append({"id": s.sample_id, "turn": turn, "context": None if turns_context is None else list(turns_context[i]),
                               "constrained": None if constrained is None else constrained[i], "max_new_tokens": max_new_tokens})  # fmt: skip
            out.append(self.answers.get((s.sample_id, turn), self.default))
        return out


@pytest.fixture
def scripted():
    return ScriptedModel


def hand_sample(tmp_path, sample_id="a", size=(64, 64), box=(16, 16, 38, 42), codec="grid_offset:n=8,r=1,step=0.5"):
    """A mask sample over a plain image whose target is the rectangle ``box`` = (x1, y1, x2, y2) pixels."""
    from PIL import Image

    h, w = size
    img = tmp_path / f"{sample_id}.png"
    if not img.exists():
        Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(img)
    m = np.zeros(size, bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return Sample(
        sample_id=sample_id, image_id=sample_id, image=str(img), size=size, task="text>mask", kind="mask", codec=codec,
        turns=[Turn("<image>Segment the rectangle.", "<g8_r2_c2>")],
        truth={"size": list(size), "masks": [rle_encode(m)], "boxes": [[float(v) for v in box]]},
    ), m
