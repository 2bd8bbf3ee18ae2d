"""Proposers: one mask per grid point, the point → mask mapping, the registry, SAM / SAM 2 on tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from getok.data_builders.proposers import (
    ExactProposer,
    MaskProposer,
    PointMaskStack,
    StackBuilder,
    SuperpixelProposer,
    get_proposer,
    grid_pixels,
    list_proposers,
)
from getok.errors import ConfigError, DataError, GeometryError


def label_map(size=(60, 80)) -> np.ndarray:
    """Background 0, a rectangle 1, a disk 2, a thin bar 3."""
    h, w = size
    lab = np.zeros(size, np.int32)
    lab[5:30, 5:35] = 1
    yy, xx = np.mgrid[:h, :w]
    lab[(xx - 58) ** 2 + (yy - 38) ** 2 <= 15**2] = 2
    lab[45:48, 2:40] = 3
    return lab


def two_tone_image(size=(48, 64)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:, size[1] // 2 :] = (200, 30, 30)
    img[: size[0] // 2, : size[1] // 2] = (20, 180, 20)
    return img


# ---------------------------------------------------------------------------------------------------- stacks
def test_from_label_map_maps_every_point_to_its_region():
    lab = label_map()
    st = PointMaskStack.from_label_map(lab, 8)
    rows, cols = grid_pixels(8, lab.shape)
    assert st.point_to_mask.shape == (64,)
    for i in range(64):
        k = st.point_to_mask[i]
        assert np.array_equal(st.masks[k], lab == lab[rows[i], cols[i]])
    assert len(st.masks) == len(np.unique(lab[rows, cols]))  # each region stored once


def test_from_label_map_ignore_gives_minus_one():
    lab = label_map()
    st = PointMaskStack.from_label_map(lab, 8, ignore=0)
    rows, cols = grid_pixels(8, lab.shape)
    assert np.array_equal(st.point_to_mask == -1, lab[rows, cols] == 0)


def test_from_point_masks_dedups_and_drops_empty():
    m1 = np.zeros((4, 4), bool)
    m1[0, 0] = True
    m2 = np.zeros((4, 4), bool)
    m2[3, 3] = True
    pm = np.stack([m1, m2, m1.copy(), np.zeros((4, 4), bool)])
    st = PointMaskStack.from_point_masks(pm, 2, scores=np.arange(4.0))
    assert st.point_to_mask.tolist() == [0, 1, 0, -1]
    assert len(st.masks) == 2
    assert np.array_equal(st.point_masks(), pm)


def test_stack_builder_rejects_wrong_size():
    b = StackBuilder(2, (4, 4))
    with pytest.raises(GeometryError, match="shape"):
        b.add(0, np.zeros((3, 4), bool))


def test_stack_rles_round_trip():
    from getok.ops.masks import rle_decode

    st = PointMaskStack.from_label_map(label_map(), 6)
    rles = st.rles()
    assert len(rles) == len(st.masks)
    for r, m in zip(rles, st.masks):
        assert np.array_equal(rle_decode({"size": r["size"], "counts": r["counts"].decode()}), m)


# ---------------------------------------------------------------------------------------------------- exact
def test_exact_proposer_region_of_label():
    lab = label_map()
    p = ExactProposer(lab)
    assert isinstance(p, MaskProposer)
    st = p.propose(np.zeros((*lab.shape, 3), np.uint8), 10)
    rows, cols = grid_pixels(10, lab.shape)
    for i in np.flatnonzero(lab[rows, cols] == 2):
        assert np.array_equal(st.masks[st.point_to_mask[i]], lab == 2)


def test_exact_proposer_settings_depend_on_label_map():
    lab = label_map()
    lab2 = lab.copy()
    lab2[0, 0] = 3
    assert ExactProposer(lab).settings() != ExactProposer(lab2).settings()
    assert ExactProposer(lab).settings() == ExactProposer(lab.copy()).settings()


def test_exact_proposer_propose_at():
    lab = label_map()
    masks = ExactProposer(lab, background=False).propose_at(None, [[10.5, 10.5], [79.0, 0.0]])
    assert np.array_equal(masks[0], lab == 1)
    assert not masks[1].any()  # background point, background disabled


def test_exact_proposer_bad_input():
    with pytest.raises(GeometryError, match="integer"):
        ExactProposer(np.zeros((4, 4), float))
    with pytest.raises(GeometryError, match="non-negative"):
        ExactProposer(-np.ones((4, 4), int))
    with pytest.raises(GeometryError, match="differs"):
        ExactProposer(label_map()).propose(np.zeros((10, 10, 3), np.uint8), 4)


def test_exact_from_image_uses_meta_label_map():
    from getok.records import AnnotatedImage, AnnotatedObject

    lab = label_map()
    objs = [AnnotatedObject(id=k, category="x", size=lab.shape, mask=lab == k + 1) for k in range(3)]
    im = AnnotatedImage(image_id="a", size=lab.shape, objects=objs, image=np.zeros((*lab.shape, 3), np.uint8))
    im.meta["label_map"] = lab
    assert ExactProposer.from_image(im).settings() == ExactProposer(lab).settings()
    del im.meta["label_map"]  # rebuilt from the disjoint object masks
    assert np.array_equal(ExactProposer.from_image(im).label_map, lab)


# ---------------------------------------------------------------------------------------------------- superpixel
def test_superpixel_one_mask_per_point_and_partition():
    img = two_tone_image()
    for method in ("felzenszwalb", "slic"):
        st = SuperpixelProposer(method=method, min_size=20, n_segments=6).propose(img, 6)
        assert st.point_to_mask.shape == (36,) and (st.point_to_mask >= 0).all()
        assert not (st.masks.sum(axis=0) > 1).any()  # segments are disjoint
        rows, cols = grid_pixels(6, img.shape[:2])
        assert all(st.masks[st.point_to_mask[i], rows[i], cols[i]] for i in range(36))


def test_superpixel_follows_colour_edges():
    img = two_tone_image()
    st = SuperpixelProposer(method="felzenszwalb", min_size=20).propose(img, 4)
    right = st.masks[st.point_to_mask[3]]  # grid point (3, 0), on the red half
    assert right[:, 40:].mean() > 0.9 and not right[:, :24].any()


def test_superpixel_config_validation():
    with pytest.raises(ConfigError, match="method"):
        SuperpixelProposer(method="watershed")
    with pytest.raises(ConfigError, match="unknown setting"):
        SuperpixelProposer(colour=3)
    with pytest.raises(GeometryError, match="uint8"):
        SuperpixelProposer().propose(np.zeros((8, 8), np.uint8), 2)


# ---------------------------------------------------------------------------------------------------- registry
def test_registry():
    assert {"exact", "sam", "sam2", "superpixel"} <= set(list_proposers())
    p = get_proposer("superpixel:method=slic,n_segments=40,compactness=5.5")
    assert p.config.method == "slic" and p.config.n_segments == 40 and p.config.compactness == 5.5
    lab = label_map()
    assert get_proposer("exact", label_map=lab).settings() == ExactProposer(lab).settings()
    assert get_proposer(p) is p
    with pytest.raises(ConfigError, match="unknown proposer"):
        get_proposer("nope")
    with pytest.raises(ConfigError):
        get_proposer(42)


# ---------------------------------------------------------------------------------------------------- SAM
@pytest.fixture(scope="module")
def tiny_sam():
    pytest.importorskip("torch")
    pytest.importorskip("segment_anything")
    from getok.data_builders.proposers.sam import build_tiny_sam

    return build_tiny_sam()


def _count_encoder_calls(model):
    calls = []
    model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_sam_one_mask_per_point_and_embedding_once(tiny_sam):
    from getok.data_builders.proposers import SamProposer

    calls = _count_encoder_calls(tiny_sam)
    p = SamProposer(model=tiny_sam, points_per_batch=7)  # batches that do not divide n*n
    img = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    st = p.propose(img, 5)
    assert st.n == 5 and st.size == (40, 56)
    assert st.point_to_mask.shape == (25,) and st.scores.shape == (25,)
    # exactly the masks SAM gives for each grid point, one per point
    from getok.ops.grid import grid_points

    masks, scores = p.predict_points(grid_points(5, (40, 56)))
    assert np.array_equal(st.point_masks(), masks)
    assert np.allclose(st.scores, scores)
    p.propose(img, 3)  # same pixels, another grid: the embedding is reused
    p.propose_at(img, [[3.0, 4.0]])
    assert len(calls) == 1 and p.embedding_calls == 1
    p.propose(img[::-1].copy(), 3)  # new image → one more
    assert len(calls) == 2


def test_sam_best_of_multimask(tiny_sam):
    import torch
    from segment_anything import SamPredictor  # SAM's own predictor: the reference

    from getok.data_builders.proposers import SamProposer

    p = SamProposer(model=tiny_sam)
    img = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    p.set_image(img)
    pts = np.array([[5.0, 6.0], [20.0, 25.0]])
    masks, scores = p.predict_points(pts)
    pr = SamPredictor(tiny_sam)
    with torch.no_grad():
        pr.set_image(img)
    coords = pr.transform.apply_coords_torch(torch.as_tensor(pts, dtype=torch.float32)[:, None], pr.original_size)
    with torch.no_grad():
        all_m, all_s, _ = pr.predict_torch(coords, torch.ones((2, 1), dtype=torch.int), multimask_output=True)
    best = all_s.argmax(1)
    assert np.allclose(scores, all_s.max(1).values.numpy())
    assert np.array_equal(masks, all_m[torch.arange(2), best].numpy())


def test_sam_embedding_cache_on_disk(tiny_sam, tmp_path):
    from getok.data_builders.proposers import SamProposer

    img = (np.random.default_rng(2).random((36, 44, 3)) * 255).astype(np.uint8)
    a = SamProposer(model=tiny_sam, embedding_cache=tmp_path)
    st_a = a.propose(img, 4)
    assert a.embedding_calls == 1 and len(list(tmp_path.glob("*.safetensors"))) == 1
    b = SamProposer(model=tiny_sam, embedding_cache=tmp_path)
    st_b = b.propose(img, 4)
    assert b.embedding_calls == 0  # loaded, not recomputed
    assert np.array_equal(st_a.point_masks(), st_b.point_masks())


def test_sam_settings_and_errors(tiny_sam, tmp_path):
    from getok.data_builders.proposers import SamProposer

    s = SamProposer(model=tiny_sam).settings()
    assert s["model_type"] == "prebuilt" and len(s["weights_sha256"]) == 64
    with pytest.raises(ConfigError, match="checkpoint"):
        SamProposer()
    with pytest.raises(ConfigError, match="not found"):
        SamProposer(checkpoint=tmp_path / "missing.pth")
    with pytest.raises(GeometryError, match="uint8"):
        SamProposer(model=tiny_sam).propose(np.zeros((8, 8, 3), np.float32), 2)


def test_sam_checkpoint_loaded_without_pickle(tiny_sam, tmp_path):
    """A checkpoint is a state dict read with weights_only=True; an object pickle is refused."""
    import torch

    from getok.data_builders.proposers.sam import load_sam

    bad = tmp_path / "evil.pth"
    torch.save({"obj": object()}, bad)
    with pytest.raises(DataError):
        load_sam(bad, "vit_b")


# ---------------------------------------------------------------------------------------------------- SAM 2
def test_sam2_tiny_one_mask_per_point():
    pytest.importorskip("torch")
    tr = pytest.importorskip("transformers")
    if not hasattr(tr, "Sam2Model"):
        pytest.skip("transformers has no Sam2Model")
    from getok.data_builders.proposers import Sam2Proposer
    from getok.data_builders.proposers.sam2 import build_tiny_sam2

    model = build_tiny_sam2()
    calls = []
    model.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    p = Sam2Proposer(model=model, points_per_batch=5)
    img = (np.random.default_rng(0).random((30, 50, 3)) * 255).astype(np.uint8)
    st = p.propose(img, 4)
    assert st.point_to_mask.shape == (16,) and st.size == (30, 50) and st.scores.shape == (16,)
    from getok.ops.grid import grid_points

    masks, _ = p.predict_points(grid_points(4, (30, 50)))
    assert np.array_equal(st.point_masks(), masks)
    p.propose(img, 2)
    assert len(calls) == 1 and p.embedding_calls == 1
    assert get_proposer("sam2", model=model).settings() == p.settings()
