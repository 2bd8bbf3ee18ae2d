"""The SAM decoder on a tiny segment-anything model (random weights, the real code path)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("segment_anything")

import torch  # noqa: E402

from getok.decoding import get_decoder  # noqa: E402
from getok.decoding.sam import SamDecoder, build_tiny_sam, load_state_dict  # noqa: E402
from getok.decoding.sam_prompts import Prompt  # noqa: E402
from getok.errors import ConfigError, DataError, GeometryError  # noqa: E402
from getok.geometry import Geometry  # noqa: E402

from .conftest import SIZE  # noqa: E402

CELLS = [[1, 1], [5, 6], [3, 3], [7, 0]]


class EncoderCalls:
    """Counts forward calls of a module (the image encoder)."""

    def __init__(self, module) -> None:
        self.n = 0
        module.register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self.n += 1


@pytest.fixture
def tiny_sam():
    return build_tiny_sam()


def test_decode_cells_shapes_and_dtype(tiny_sam, image):
    dec = get_decoder("sam", model=tiny_sam)
    dec.set_image(image)
    out = dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8))
    assert out.shape == SIZE and out.dtype == bool


def test_embedding_computed_once_per_image_and_reused(tiny_sam, image):
    calls = EncoderCalls(tiny_sam.image_encoder)
    dec = SamDecoder(model=tiny_sam, cache_size=2)
    other = image[:, ::-1].copy()
    dec.set_image(image)
    for mode in ("union", "joint"):
        dec.mode = mode
        dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8))
        dec.decode(Geometry(size=SIZE, box=[4, 4, 40, 30]))
    assert calls.n == 1
    dec.set_image(other)
    dec.set_image(image)  # back to the first image: cached, no new embedding
    dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8))
    assert calls.n == 2 and dec.embeddings_computed == 2
    dec.set_image(image[::-1].copy())  # a third image evicts the least recently used (other)
    dec.set_image(other)
    assert calls.n == 4


def test_keys_name_images_in_the_cache(tiny_sam, image):
    calls = EncoderCalls(tiny_sam.image_encoder)
    dec = SamDecoder(model=tiny_sam)
    dec.set_image(image, key="img-1")
    dec.set_image(image, key="img-1")
    dec.set_image(image, key="img-2")
    assert calls.n == 2


def test_cached_embedding_gives_the_same_masks(tiny_sam, image):
    g = Geometry(size=SIZE, cells=CELLS, grid_n=8)
    dec = SamDecoder(model=tiny_sam)
    dec.set_image(image)
    first = dec.decode(g)
    dec.set_image(image[::-1].copy())
    dec.set_image(image)
    np.testing.assert_array_equal(dec.decode(g), first)
    fresh = SamDecoder(model=tiny_sam)
    fresh.set_image(image)
    np.testing.assert_array_equal(fresh.decode(g), first)


def test_union_mode_is_the_union_of_single_point_masks(tiny_sam, image):
    dec = SamDecoder(model=tiny_sam, mode="union", batch_size=3)
    dec.set_image(image)
    singles = [dec.decode(Geometry(size=SIZE, cells=[c], grid_n=8)) for c in CELLS]
    assert any(not np.array_equal(singles[0], s) for s in singles[1:])  # the points give different masks
    union = dec.decode(Geometry(size=SIZE, cells=CELLS, grid_n=8))
    np.testing.assert_array_equal(union, np.logical_or.reduce(singles))


def test_joint_and_union_agree_on_one_point_and_differ_on_many(tiny_sam, image):
    dec = SamDecoder(model=tiny_sam)
    dec.set_image(image)
    one = Geometry(size=SIZE, cells=[[2, 5]], grid_n=8)
    many = Geometry(size=SIZE, cells=CELLS, grid_n=8)
    np.testing.assert_array_equal(dec.decode_prompt(Prompt(points=one.cell_centers()), mode="joint"),
                                  dec.decode_prompt(Prompt(points=one.cell_centers()), mode="union"))
    dec.mode = "joint"
    joint = dec.decode(many)
    dec.mode = "union"
    assert not np.array_equal(joint, dec.decode(many))


def test_point_answer_prompts_sam_at_the_point(tiny_sam, image):
    dec = SamDecoder(model=tiny_sam)
    dec.set_image(image)
    g_cell = Geometry(size=SIZE, cells=[[2, 5]], grid_n=8)
    g_pt = Geometry(size=SIZE, points=g_cell.cell_centers())
    np.testing.assert_array_equal(dec.decode(g_pt), dec.decode(g_cell))


def test_refined_points_and_deletions(tiny_sam, image):
    dec = SamDecoder(model=tiny_sam)
    dec.set_image(image)
    g = Geometry(size=SIZE, cells=CELLS, grid_n=8, offsets=[[1, 0], [0, 0], [0, -1], [0, 0]],
                 deleted=[False, True, False, False], offset_step=0.5)
    expect = Geometry(size=SIZE, points=g.refined_points())
    assert len(expect.points) == 3
    np.testing.assert_array_equal(dec.decode(g), dec.decode(expect))
    all_deleted = g.replace(deleted=[True] * 4)
    assert not dec.decode(all_deleted).any()


def test_multimask_off_and_box_prompts(tiny_sam, image):
    dec = SamDecoder(model=tiny_sam, multimask=False)
    dec.set_image(image)
    out = dec.decode(Geometry(size=SIZE, box=[4, 4, 40, 30]))
    assert out.shape == SIZE and out.dtype == bool
    mask = np.zeros(SIZE, bool)
    mask[3:5, 3:5] = True
    np.testing.assert_array_equal(dec.decode(Geometry(size=SIZE, mask=mask)), mask)  # masks pass through


def test_errors(tiny_sam, image):
    with pytest.raises(ConfigError, match="needs weights"):
        get_decoder("sam")
    with pytest.raises(ConfigError, match="not found"):
        get_decoder("sam:checkpoint=/nonexistent/sam_vit_b.pth,model_type=vit_b")
    with pytest.raises(ConfigError, match="model_type"):
        get_decoder("sam:checkpoint=/nonexistent/x.pth,model_type=vit_xxl")
    with pytest.raises(ConfigError, match="mode"):
        SamDecoder(model=tiny_sam, mode="both")
    with pytest.raises(ConfigError, match="not a segment-anything Sam"):
        SamDecoder(model=torch.nn.Linear(2, 2))
    dec = SamDecoder(model=tiny_sam)
    with pytest.raises(DataError, match="set_image"):
        dec.decode(Geometry(size=SIZE, box=[0, 0, 4, 4]))
    with pytest.raises(DataError, match="needs the image"):
        dec.set_image(None, size=SIZE)
    with pytest.raises(GeometryError, match="uint8"):
        dec.set_image(image.astype(np.float32))
    dec.set_image(image)
    with pytest.raises(GeometryError, match="differs"):
        dec.decode(Geometry(size=(32, 32), box=[0, 0, 4, 4]))


def test_checkpoints_load_tensors_only(tiny_sam, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam.state_dict(), path)
    sd = load_state_dict(path)
    assert set(sd) == set(tiny_sam.state_dict())
    st = pytest.importorskip("safetensors.torch")
    st.save_file({k: v.contiguous() for k, v in tiny_sam.state_dict().items()}, str(tmp_path / "tiny.safetensors"))
    assert set(load_state_dict(tmp_path / "tiny.safetensors")) == set(sd)
    evil = tmp_path / "evil.pth"
    torch.save({"cfg": EncoderCalls.__new__(EncoderCalls)}, evil)  # an arbitrary object: must not be unpickled
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_state_dict(evil)
