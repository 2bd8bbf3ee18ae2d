"""The SAM 2 decoder on a tiny transformers ``Sam2Model`` (random weights)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "Sam2Model"):
    pytest.skip(f"transformers {transformers.__version__} has no Sam2Model", allow_module_level=True)

from getok.decoding import get_decoder  # noqa: E402
from getok.decoding.sam2 import Sam2Decoder, build_tiny_sam2  # noqa: E402
from getok.errors import ConfigError  # noqa: E402
from getok.geometry import Geometry  # noqa: E402

from .conftest import SIZE  # noqa: E402

CELLS = [[1, 1], [5, 6], [3, 3], [7, 0]]


@pytest.fixture(scope="module")
def tiny_sam2():
    return build_tiny_sam2()


def test_shapes_union_and_embedding_reuse(tiny_sam2, image):
    calls = []
    handle = tiny_sam2.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        dec = get_decoder("sam2", model=tiny_sam2)
        dec.set_image(image)
        singles = [dec.decode(Geometry(size=SIZE, cells=[c], grid_n=8)) for c in CELLS]
        union = dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8))
        assert union.shape == SIZE and union.dtype == bool
        assert any(not np.array_equal(singles[0], s) for s in singles[1:])
        np.testing.assert_array_equal(union, np.logical_or.reduce(singles))
        dec.mode = "joint"
        joint = dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8, ))
        box = dec.decode(Geometry(size=SIZE, box=[4, 4, 40, 30]))
        assert joint.shape == box.shape == SIZE
        dec.set_image(image[::-1].copy())
        dec.set_image(image)
        assert len(calls) == 2 and dec.embeddings_computed == 2
    finally:
        handle.remove()


def test_local_checkpoint_round_trip(tiny_sam2, image, tmp_path):
    tiny_sam2.save_pretrained(tmp_path / "tiny-sam2")
    dec = get_decoder(f"sam2:checkpoint={tmp_path / 'tiny-sam2'}")
    ref = Sam2Decoder(model=tiny_sam2)
    g = Geometry(size=SIZE, cells=CELLS, grid_n=8)
    dec.set_image(image)
    ref.set_image(image)
    np.testing.assert_array_equal(dec.decode(g), ref.decode(g))


def test_errors(tiny_sam2):
    with pytest.raises(ConfigError, match="needs weights"):
        get_decoder("sam2")
    with pytest.raises(ConfigError, match="not found"):
        get_decoder("sam2:checkpoint=/nonexistent/sam2")
    with pytest.raises(ConfigError, match="backend"):
        get_decoder("sam2", model=tiny_sam2, backend="sam2")
