"""The SAM 3 decoder on a tiny transformers ``Sam3TrackerModel`` (random weights, the real code path)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
_MISSING = [n for n in ("Sam3TrackerModel", "Sam3TrackerConfig", "Sam3TrackerProcessor") if not hasattr(transformers, n)]
if _MISSING:
    pytest.skip(f"transformers {transformers.__version__} has no {', '.join(_MISSING)}", allow_module_level=True)

from getok.decoding import get_decoder, list_decoders  # noqa: E402
from getok.decoding.sam2 import build_tiny_sam2  # noqa: E402
from getok.decoding.sam3 import Sam3Decoder, build_tiny_sam3  # noqa: E402
from getok.decoding.sam_prompts import to_sam_box, to_sam_points  # noqa: E402
from getok.errors import ConfigError, DataError  # noqa: E402
from getok.geometry import Geometry  # noqa: E402

from .conftest import SIZE  # noqa: E402

CELLS = [[1, 1], [5, 6], [3, 3], [7, 0]]


@pytest.fixture(scope="module")
def tiny_sam3():
    return build_tiny_sam3()


class EncoderCalls:
    """Counts forward calls of the image encoder and keeps the pixel values it was given."""

    def __init__(self, model) -> None:
        self.pixels = []
        self._handle = model.vision_encoder.register_forward_pre_hook(lambda mod, args: self.pixels.append(args[0]))

    @property
    def n(self) -> int:
        return len(self.pixels)

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def encoder_calls(tiny_sam3):
    calls = EncoderCalls(tiny_sam3)
    yield calls
    calls.remove()


def test_registered():
    assert "sam3" in list_decoders()


def test_embedding_computed_once_per_image_and_cached(tiny_sam3, image, encoder_calls):
    dec = get_decoder("sam3:cache_size=2", model=tiny_sam3)
    dec.set_image(image)
    for mode in ("union", "joint"):
        dec.mode = mode
        dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8))
        dec.decode(Geometry(size=SIZE, box=[4, 4, 40, 30]))
        dec.decode(Geometry(size=SIZE, points=[[10.5, 20.5], [50.0, 40.0]]))
    assert encoder_calls.n == 1
    other = image[:, ::-1].copy()
    dec.set_image(other)
    dec.set_image(image)  # back to the first image: cached, no new embedding
    assert encoder_calls.n == 2 and dec.embeddings_computed == 2
    dec.set_image(image[::-1].copy())  # a third image evicts the least recently used (other)
    dec.set_image(other)
    assert encoder_calls.n == 4
    dec.set_image(image, key="img-1")  # a key names the image instead of its pixel hash
    dec.set_image(image, key="img-1")
    assert encoder_calls.n == 5


def test_masks_for_points_box_cells_and_refined_geometries(tiny_sam3, image):
    dec = Sam3Decoder(model=tiny_sam3)
    dec.set_image(image)
    cells = Geometry(size=SIZE, cells=CELLS, grid_n=8)
    refined = cells.replace(offsets=[[1, 0], [0, 0], [0, -1], [0, 0]], deleted=[False, True, False, False],
                            offset_step=0.5)
    outs = {
        "point": dec.decode(Geometry(size=SIZE, points=[[30.5, 20.5]])),
        "box": dec.decode(Geometry(size=SIZE, box=[4, 4, 40, 30])),
        "cells": dec.decode(cells),
        "refined": dec.decode(refined),
    }
    for name, m in outs.items():
        assert m.shape == SIZE and m.dtype == bool, name
    # offsets move the prompts and <DELETE> drops one: the masks of exactly the refined points
    assert len(refined.refined_points()) == 3
    np.testing.assert_array_equal(outs["refined"], dec.decode(Geometry(size=SIZE, points=refined.refined_points())))
    assert not np.array_equal(outs["refined"], outs["cells"])
    assert not dec.decode(refined.replace(deleted=[True] * 4)).any()  # every point deleted: empty
    # a point answer prompts at the point: the same as the cell whose centre it is
    one = Geometry(size=SIZE, cells=[[2, 5]], grid_n=8)
    np.testing.assert_array_equal(dec.decode(Geometry(size=SIZE, points=one.cell_centers())), dec.decode(one))
    mask = np.zeros(SIZE, bool)
    mask[3:5, 3:5] = True
    np.testing.assert_array_equal(dec.decode(Geometry(size=SIZE, mask=mask)), mask)  # masks pass through


@pytest.mark.parametrize("multimask", [True, False])
def test_batched_decode_equals_one_by_one(tiny_sam3, image, multimask):
    g = Geometry(size=SIZE, cells=CELLS, grid_n=8)
    one = Sam3Decoder(model=tiny_sam3, batch_size=1, multimask=multimask)
    many = Sam3Decoder(model=tiny_sam3, batch_size=32, multimask=multimask)
    one.set_image(image)
    many.set_image(image)
    singles = [one.decode(Geometry(size=SIZE, cells=[c], grid_n=8)) for c in CELLS]
    assert any(not np.array_equal(singles[0], s) for s in singles[1:])  # the points give different masks
    np.testing.assert_array_equal(many.decode(g), np.logical_or.reduce(singles))  # one batch of 4 prompts
    np.testing.assert_array_equal(one.decode(g), np.logical_or.reduce(singles))  # 4 batches of 1
    joint = Sam3Decoder(model=tiny_sam3, mode="joint", multimask=multimask)
    joint.set_image(image)
    assert joint.decode(g).shape == SIZE
    assert not np.array_equal(joint.decode(g), many.decode(g))


def test_follows_transformers_sam3_tracker_pipeline(tiny_sam3, image, encoder_calls):
    """Our preprocessing, prompt scaling and mask upsampling against transformers' own Sam3TrackerProcessor
    (Sam3ImageProcessor at the tiny input size): pixels within one grey level, masks nearly identical."""
    s = tiny_sam3.config.prompt_encoder_config.image_size
    processor = transformers.Sam3TrackerProcessor(
        image_processor=transformers.Sam3ImageProcessor(size={"height": s, "width": s})
    )
    dec = Sam3Decoder(model=tiny_sam3, multimask=True)
    dec.set_image(image)
    point, box = np.array([[30.5, 20.5]]), np.array([4.0, 4.0, 40.0, 30.0])
    ref = processor(images=image, input_points=[[[to_sam_points(point)[0].tolist()]]], input_labels=[[[1]]],
                    input_boxes=[[to_sam_box(box).tolist()]], return_tensors="pt")
    diff = (ref["pixel_values"] - encoder_calls.pixels[0]).abs().max().item()
    assert diff <= 1 / 255 / 0.5 + 1e-6  # normalised with mean = std = 0.5 (not ImageNet's), same resize
    for prompt, keys in (({"points": point}, ("input_points", "input_labels")),
                         ({"box": box}, ("input_boxes",)),
                         ({"points": point, "box": box}, ("input_points", "input_labels", "input_boxes"))):
        ours = dec.decode(Geometry(size=SIZE, **prompt))
        with torch.inference_mode():
            out = tiny_sam3(pixel_values=ref["pixel_values"], multimask_output=True, **{k: ref[k] for k in keys})
        masks = processor.post_process_masks(out.pred_masks, ref["original_sizes"])[0]  # (B, C, H, W)
        theirs = masks[0, out.iou_scores[0, 0].argmax()].numpy()
        assert (ours ^ theirs).mean() < 0.01, prompt


def test_local_checkpoint_round_trip_and_dtype(tiny_sam3, image, tmp_path):
    tiny_sam3.save_pretrained(tmp_path / "tiny-sam3")
    g = Geometry(size=SIZE, cells=CELLS, grid_n=8)
    dec = get_decoder(f"sam3:checkpoint={tmp_path / 'tiny-sam3'},device=cpu")
    ref = Sam3Decoder(model=tiny_sam3)
    dec.set_image(image)
    ref.set_image(image)
    np.testing.assert_array_equal(dec.decode(g), ref.decode(g))
    assert dec.settings()["checkpoint"] == str(tmp_path / "tiny-sam3") and dec.settings()["dtype"] == "float32"
    half = get_decoder(f"sam3:checkpoint={tmp_path / 'tiny-sam3'},dtype=bfloat16")
    assert half.model.dtype == torch.bfloat16 and half.settings()["dtype"] == "bfloat16"
    half.set_image(image)
    out = half.decode(g)
    assert out.shape == SIZE and out.dtype == bool


def test_errors(tiny_sam3, image):
    with pytest.raises(ConfigError, match="needs weights"):
        get_decoder("sam3")
    with pytest.raises(ConfigError, match="SAM 3 checkpoint must be a local transformers model directory; not found"):
        get_decoder("sam3:checkpoint=/nonexistent/sam3")
    with pytest.raises(ConfigError, match="dtype must be one of"):
        get_decoder("sam3:checkpoint=/nonexistent/sam3,dtype=float64")  # checked before the path is read
    with pytest.raises(ConfigError, match="dtype must be one of"):
        get_decoder("sam3:dtype=half", model=tiny_sam3)
    with pytest.raises(ConfigError, match="backend"):
        get_decoder("sam3:backend=sam3", model=tiny_sam3)
    with pytest.raises(ConfigError, match="needs a transformers Sam3TrackerModel"):
        get_decoder("sam3", model=build_tiny_sam2())  # a SAM 2 model: same API, other preprocessing
    with pytest.raises(ConfigError, match="needs a transformers Sam2Model"):
        get_decoder("sam2", model=tiny_sam3)
    with pytest.raises(ConfigError, match="not a transformers Sam3TrackerModel"):
        Sam3Decoder(model=torch.nn.Linear(2, 2))
    with pytest.raises(DataError, match="set_image"):
        Sam3Decoder(model=tiny_sam3).decode(Geometry(size=SIZE, box=[0, 0, 4, 4]))


def test_polygon_answers_refined_by_sam3(tiny_sam3, image):
    dec = get_decoder("polygon:refine=sam3", model=tiny_sam3)
    dec.set_image(image)
    ring = np.array([[10.0, 10.0], [40.0, 10.0], [40.0, 40.0], [10.0, 40.0]])
    out = dec.decode(Geometry(size=SIZE, polygons=[ring]))
    assert out.shape == SIZE and out.dtype == bool and out.any()
