"""Point-mask cache: round trip, keys, atomic writes, resumable builds, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from getok.data_builders.cache import FORMAT, PointMaskCache, cache_key, stack_from_record, stack_to_record
from getok.data_builders.proposers import ExactProposer, PointMaskStack, SuperpixelProposer
from getok.errors import DataError, GeometryError
from getok.provenance import image_hash


def image(seed: int, size=(40, 52)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((*size, 3), np.uint8)
    img[:, size[1] // 2 :] = rng.integers(0, 255, 3)
    img[size[0] // 2 :, :] = rng.integers(0, 255, 3)
    return img


class CountingProposer:
    """Wraps a proposer and counts ``propose`` calls."""

    name = "counting"

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def settings(self):
        return {"inner": self.inner.name, **self.inner.settings()}

    def propose(self, img, n):
        self.calls += 1
        return self.inner.propose(img, n)


def test_image_hash_depends_on_pixels_shape_and_dtype():
    a = image(0)
    assert image_hash(a) == image_hash(a.copy())
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert image_hash(a) != image_hash(b)
    assert image_hash(a) != image_hash(a.reshape(52, 40, 3))
    assert image_hash(np.zeros((2, 2), np.uint8)) != image_hash(np.zeros((2, 2), np.int8))


def test_key_depends_on_everything():
    k = cache_key("h", "sam", {"a": 1}, 32)
    assert k != cache_key("h2", "sam", {"a": 1}, 32)
    assert k != cache_key("h", "sam2", {"a": 1}, 32)
    assert k != cache_key("h", "sam", {"a": 2}, 32)
    assert k != cache_key("h", "sam", {"a": 1}, 16)
    assert k == cache_key("h", "sam", {"a": 1}, 32)


def test_record_round_trip_keeps_masks_map_and_scores():
    lab = np.zeros((30, 40), np.int32)
    lab[3:20, 5:25] = 1
    lab[22:29, 30:39] = 2
    st = PointMaskStack.from_label_map(lab, 5, ignore=2, scores=np.linspace(0, 1, 25))
    back = stack_from_record(json.loads(json.dumps(stack_to_record(st))))
    assert back.n == 5 and back.size == (30, 40)
    assert np.array_equal(back.masks, st.masks)
    assert np.array_equal(back.point_to_mask, st.point_to_mask)
    assert np.allclose(back.scores, st.scores)
    assert back.rles() is back.rles()  # attached, not re-encoded


def test_empty_stack_round_trip():
    st = PointMaskStack(n=2, size=(4, 4), masks=np.zeros((0, 4, 4), bool), point_to_mask=[-1] * 4)
    back = stack_from_record(stack_to_record(st))
    assert back.masks.shape == (0, 4, 4) and back.point_to_mask.tolist() == [-1] * 4


def test_get_or_compute_and_reload(tmp_path):
    cache = PointMaskCache(tmp_path)
    prop = CountingProposer(SuperpixelProposer(min_size=10))
    img = image(1)
    a = cache.get_or_compute(img, prop, 4)
    b = cache.get_or_compute(img, prop, 4)
    assert prop.calls == 1
    assert np.array_equal(a.point_masks(), b.point_masks())
    assert cache.contains(img, prop, 4) and not cache.contains(img, prop, 5)
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["format"] == FORMAT
    assert not list(tmp_path.rglob("*.tmp"))  # atomic: no temporary left behind


def test_build_is_resumable(tmp_path):
    cache = PointMaskCache(tmp_path)
    prop = CountingProposer(SuperpixelProposer(min_size=10))
    imgs = [(f"im{i}", image(i)) for i in range(4)]
    r1 = cache.build(imgs[:2], prop, 4, progress=False)  # an "interrupted" first run
    assert (r1.computed, r1.cached) == (2, 0)
    r2 = cache.build(imgs, prop, 4, progress=False)
    assert (r2.computed, r2.cached) == (2, 2) and prop.calls == 4
    r3 = cache.build([(k, (lambda v=v: v)) for k, v in imgs], prop, 4, progress=False)  # loaders work too
    assert (r3.computed, r3.cached) == (0, 4) and prop.calls == 4


def test_build_counts_failures_without_crashing(tmp_path):
    cache = PointMaskCache(tmp_path)
    lab = np.zeros((40, 52), np.int32)
    prop = ExactProposer(lab)  # raises GeometryError for an image of another size

    def broken():
        raise DataError("cannot decode image x.jpg")

    rep = cache.build([("ok", image(0)), ("bad-size", image(1, (10, 10))), ("broken", broken)], prop, 3, progress=False)
    assert rep.computed == 1
    assert [f[0] for f in rep.failed] == ["bad-size", "broken"]
    assert "cannot decode" in rep.failed[1][1]


def test_corrupt_or_foreign_file_is_a_clear_error(tmp_path):
    cache = PointMaskCache(tmp_path)
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        cache.load_path(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="not a getok-proposals"):
        cache.load_path(bad)
    bad.write_text(
        json.dumps({"format": FORMAT, "n": 2, "size": [4, 4], "point_to_mask": [0, 0, 0, 0], "counts": ["!!"]})
    )
    with pytest.raises(DataError, match="corrupt"):
        cache.load_path(bad, lazy=False)
    # a file whose RLE strings were altered after writing: caught by the digest, lazy or not
    st = PointMaskStack.from_label_map(np.eye(4, dtype=np.int32), 2)
    rec = {"format": FORMAT, **stack_to_record(st)}
    rec["counts"][0] = rec["counts"][0][:-1] + "1"
    bad.write_text(json.dumps(rec))
    with pytest.raises(DataError, match="digest"):
        cache.load_path(bad)
    rec = {"format": FORMAT, **stack_to_record(st)}
    rec["point_to_mask"] = [0, 5, 0, 0]
    bad.write_text(json.dumps(rec))
    with pytest.raises(GeometryError, match="outside"):
        cache.load_path(bad)


def test_lazy_stack_decodes_on_demand(tmp_path):
    from getok.data_builders.cache import RlePointMaskStack
    from getok.data_builders.greedy import greedy_cells

    cache = PointMaskCache(tmp_path)
    lab = np.zeros((40, 52), np.int32)
    lab[5:20, 5:30] = 1
    prop = ExactProposer(lab)
    dense = prop.propose(None, 4)
    lazy = cache.load_path(cache.save(image(0), prop, 4, dense))
    assert isinstance(lazy, RlePointMaskStack) and lazy._masks is None and lazy.num_masks == len(dense.masks)
    assert greedy_cells(lab == 1, lazy).cells.tolist() == greedy_cells(lab == 1, dense).cells.tolist()
    assert lazy._masks is None  # greedy needs only the RLEs
    assert np.array_equal(lazy.masks, dense.masks) and np.array_equal(lazy.point_masks(), dense.point_masks())


def test_save_checks_grid_and_size(tmp_path):
    cache = PointMaskCache(tmp_path)
    lab = np.zeros((40, 52), np.int32)
    prop = ExactProposer(lab)
    st = prop.propose(None, 3)
    with pytest.raises(DataError, match="grid"):
        cache.save(image(0), prop, 4, st)
    with pytest.raises(DataError, match="size"):
        cache.save(image(0, (10, 10)), prop, 3, st)
