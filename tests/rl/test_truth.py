import json

import numpy as np
import pytest

from getok.errors import DataError
from getok.ops.masks import rle_encode
from getok.rl.truth import Target, Truth, pack_truth, truth_from_json, unpack_truth

from .conftest import disk, rect


def test_pack_unpack_round_trip():
    size = (40, 60)
    masks = [rect(size, 5, 10, 25, 20), disk(size, 40, 25, 8)]
    text = pack_truth(size, masks, codec="grid:n=8", task="stage2", proposal="<g8_r1_c1>", image="a.jpg", image_id="7")
    t = unpack_truth(text)
    assert t.size == size and t.n_targets == 2 and t.task == "stage2"
    assert t.codec == "grid:n=8" and t.proposal == "<g8_r1_c1>" and t.image == "a.jpg" and t.key == "7"
    for tgt, m in zip(t.targets, masks):
        assert np.array_equal(tgt.mask, m)
        assert tgt.area == m.sum()
    assert t.targets[0].box.tolist() == [5.0, 10.0, 25.0, 20.0]
    # the packed dict round-trips too
    assert unpack_truth(json.loads(text)).targets[1].area == masks[1].sum()
    assert json.loads(json.dumps(t.to_dict())) == t.to_dict()


def test_sample_truth_dict_with_overrides():
    """A Sample.truth dict (no task / codec) reads with overrides."""
    size = (20, 20)
    m = rect(size, 2, 2, 10, 10)
    d = {"size": [20, 20], "masks": [rle_encode(m)], "boxes": [[2, 2, 10, 10]]}
    t = unpack_truth(d, codec="grid:n=4", task="polygon")
    assert t.codec == "grid:n=4" and t.task == "polygon" and t.kind == "mask" and t.n_targets == 1


def test_no_target_and_box_only_truths():
    t = unpack_truth(pack_truth((10, 10), [], codec="grid:n=2"))
    assert t.n_targets == 0 and t.label_bits.shape == (10, 10) and not t.label_bits.any()
    b = unpack_truth({"size": [10, 20], "boxes": [[0, 0, 10, 5]], "codec": "grid:n=2"})
    assert b.n_targets == 1 and b.targets[0].area == 50


def test_json_cache_returns_the_same_object():
    text = pack_truth((8, 8), [rect((8, 8), 0, 0, 4, 4)], codec="grid:n=2")
    assert truth_from_json(text) is truth_from_json(text)


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1, 2]",
        '{"masks": []}',
        '{"size": [4, 4], "masks": [{"size": [5, 5], "counts": [25]}]}',
        '{"size": [4, 4], "masks": [{"counts": "x"}]}',
        '{"size": [4, 4], "task": "stage9"}',
        '{"size": [4, 4], "v": 2}',
    ],
)
def test_malformed_truth_is_a_data_error(bad):
    with pytest.raises(DataError):
        unpack_truth(bad)


def test_label_bits_mark_overlapping_targets():
    size = (10, 10)
    a, b = rect(size, 0, 0, 6, 6), rect(size, 4, 4, 10, 10)
    t = Truth(size=size, targets=(Target.from_mask(a), Target.from_mask(b)))
    bits = t.label_bits
    assert bits[5, 5] == 3 and bits[0, 0] == 1 and bits[9, 9] == 2
    assert np.array_equal((bits & 1) > 0, a) and np.array_equal((bits & 2) > 0, b)


def test_target_crop_and_centroid():
    m = rect((30, 40), 10, 5, 20, 15)
    t = Target.from_mask(np.asfortranarray(m))
    assert t.crop_mask.flags.c_contiguous and t.origin == (5, 10)
    assert t.centroid.tolist() == [15.0, 10.0]
    empty = Target.from_mask(np.zeros((4, 4), bool))
    assert empty.area == 0 and empty.crop_mask.shape == (0, 0)


def test_cropped_and_full_mask_forms_read_the_same():
    size = (50, 70)
    masks = [disk(size, 20, 20, 9), rect(size, 40, 30, 70, 50)]
    crop_text = pack_truth(size, masks, codec="grid:n=8")
    full_text = pack_truth(size, masks, codec="grid:n=8", cropped=False)
    assert "crop" in json.loads(crop_text)["masks"][0] and "counts" in json.loads(full_text)["masks"][0]
    a, b = unpack_truth(crop_text), unpack_truth(full_text)
    for ta, tb, m in zip(a.targets, b.targets, masks):
        assert ta.origin == tb.origin and np.array_equal(ta.crop_mask, tb.crop_mask) and np.array_equal(ta.mask, m)
        assert ta.box.tolist() == tb.box.tolist() and ta.area == tb.area
        assert np.array_equal(ta.cell_counts(8), tb.cell_counts(8))
    bad = json.loads(crop_text)
    bad["masks"][0]["crop"] = [0, 0, 3, 3]
    with pytest.raises(DataError, match="crop"):
        unpack_truth(bad)
    outside = json.loads(crop_text)
    outside["masks"][1]["crop"] = [60, 40, 90, 60]
    with pytest.raises(DataError, match="exceeds"):
        unpack_truth(outside)


def test_cell_counts_match_the_cell_rasters():
    from getok.ops.raster import cells_to_mask

    rng = np.random.default_rng(0)
    m = rng.random((37, 53)) < 0.5
    t = Target.from_mask(m)
    for n in (1, 4, 7, 16, 64):
        counts = t.cell_counts(n)
        for cy, cx in [(0, 0), (n - 1, n - 1), (n // 2, n // 3)]:
            assert counts[cy, cx] == (cells_to_mask([[cx, cy]], n, m.shape) & m).sum()
        assert counts.sum() == m.sum()


def test_cell_counts_derived_from_a_finer_grid_are_exact():
    rng = np.random.default_rng(5)
    for h, w in [(37, 53), (480, 640), (101, 7)]:
        m = rng.random((h, w)) < 0.3
        fine_first = Target.from_mask(m)
        fine_first.cell_counts(64)
        direct = Target.from_mask(m)
        for n in (32, 16, 8):
            assert np.array_equal(fine_first.cell_counts(n), direct.cell_counts(n))
