"""The one implementation of each geometry idea (getok.ops.boxes / masks / points / matching / refine):
batch twins agree with the one-pair functions, edge cases are the documented ones."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from getok.errors import GeometryError
from getok.ops.boxes import (
    box_iou,
    box_iou_matrix,
    box_iou_pairs,
    box_l1,
    box_l1_matrix,
    mask_to_box,
    masks_to_boxes,
)
from getok.ops.masks import intersection_union, mask_counts, mask_iou, mask_iou_matrix
from getok.ops.matching import match
from getok.ops.points import pixel_of, points_in_mask
from getok.ops.refine import (
    landing_pixels,
    move_index,
    moved_positions,
    offset_moves,
    point_scores,
)


def _boxes(rng, n, hi=50.0):
    xs, ys = np.sort(rng.uniform(0, hi, (n, 2)), axis=1), np.sort(rng.uniform(0, hi, (n, 2)), axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


def _reference_box(m):
    ys, xs = np.nonzero(m)
    return None if len(xs) == 0 else [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), order=st.sampled_from(["C", "F", "strided"]))
def test_mask_to_box_is_the_pixel_extent_in_any_memory_order(seed, order):
    rng = np.random.default_rng(seed)
    m = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.uniform(0, 0.1)
    view = {"C": m, "F": np.asfortranarray(m), "strided": np.ascontiguousarray(np.pad(m, 1)[1:-1:1, 1:-1])}[order]
    ref = _reference_box(m)
    got = mask_to_box(view)
    assert (got is None and ref is None) or got.tolist() == [float(v) for v in ref]


def test_mask_to_box_validates_and_batches():
    with pytest.raises(GeometryError, match="binary"):
        mask_to_box(np.full((3, 3), 2))
    with pytest.raises(GeometryError, match="2-D"):
        mask_to_box(np.zeros(5, bool))
    assert mask_to_box(np.array([[0, 1], [0, 0]])).tolist() == [1.0, 0.0, 2.0, 1.0]  # 0/1 integers accepted
    rng = np.random.default_rng(1)
    masks = rng.random((30, 9, 11)) < 0.05
    masks[0] = False
    boxes = masks_to_boxes(masks)
    assert np.isnan(boxes[0]).all()
    for m, b in zip(masks[1:], boxes[1:]):
        np.testing.assert_array_equal(b, mask_to_box(m))
    with pytest.raises(GeometryError, match=r"\(N, H, W\)"):
        masks_to_boxes(np.zeros(5, bool))


def test_box_iou_three_shapes_agree_with_each_other():
    rng = np.random.default_rng(0)
    a, b = _boxes(rng, 7), _boxes(rng, 5)
    a[3] = np.nan
    m = box_iou_matrix(a, b)  # 35 pairs: the plain-float path
    big = box_iou_matrix(np.tile(a, (3, 1)), b)  # 105 pairs: the numpy path
    np.testing.assert_allclose(big[:7], m, rtol=1e-12)
    for i, j in itertools.product(range(7), range(5)):
        expect = box_iou(a[i], b[j])
        assert (np.isnan(expect) and np.isnan(m[i, j])) or m[i, j] == pytest.approx(expect)
    np.testing.assert_allclose(box_iou_pairs(a[:5], b), [box_iou(x, y) for x, y in zip(a[:5], b)])
    assert np.isnan(box_iou_pairs(a[3:4], b[:1])[0]) and np.isnan(box_iou(a[3], b[0]))
    assert (box_iou_matrix(a, b, missing=0.0)[3] == 0).all()
    assert (box_iou_matrix(np.tile(a, (3, 1)), b, missing=0.0)[3] == 0).all()


def test_box_iou_edge_cases_are_one_rule():
    # a degenerate pair: 1 when identical, else 0 — in all three shapes
    same, other = [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]
    assert box_iou(same, same) == 1.0 and box_iou(same, other) == 0.0
    assert box_iou_pairs([same, same], [same, other]).tolist() == [1.0, 0.0]
    assert box_iou_matrix([same], [same, other]).tolist() == [[1.0, 0.0]]
    assert box_iou_matrix([same] * 10, [same, other] * 5)[0].tolist() == [1.0, 0.0] * 5
    assert np.isnan(box_iou(None, same)) and box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    with pytest.raises(GeometryError, match="differ in shape"):
        box_iou_pairs(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(GeometryError, match="XYXY"):
        box_iou_matrix(np.zeros(3), np.zeros(4))


def test_box_l1_small_and_large_paths_agree():
    rng = np.random.default_rng(3)
    a, b = _boxes(rng, 4, 40), _boxes(rng, 3, 40)
    a[1] = np.nan
    small = box_l1_matrix(a, b, (40, 50))
    large = box_l1_matrix(np.tile(a, (10, 1)), b, (40, 50))[:4]
    np.testing.assert_allclose(small, large, rtol=1e-12)
    assert (small[1] == 1.0).all()
    assert box_l1([0, 0, 10, 10], [10, 0, 20, 10], (10, 100)) == pytest.approx((10 / 100 + 10 / 100) / 4)
    assert box_l1(None, [0, 0, 1, 1], (5, 5)) == 1.0


@pytest.mark.parametrize("shape", [(7, 16, 16), (7, 5, 3), (1, 480, 640)])
def test_mask_counts_on_both_paths(shape):
    """Word-popcount path (H*W divisible by 8, contiguous) and count_nonzero path give the same counts."""
    rng = np.random.default_rng(2)
    p = rng.random(shape) < 0.4
    g = rng.random(shape) < 0.4
    expect = ([int((a & b).sum()) for a, b in zip(p, g)], [int(a.sum()) for a in p], [int(b.sum()) for b in g])
    assert [x.tolist() for x in mask_counts(p, g)] == list(expect)
    got_strided = mask_counts(p[:, ::-1], g[:, ::-1])  # not C-contiguous: the fallback path
    assert [x.tolist() for x in got_strided] == list(expect)


def test_mask_iou_one_pair_batch_and_matrix_agree():
    rng = np.random.default_rng(5)
    p = rng.random((6, 9, 11)) < 0.3
    g = rng.random((4, 9, 11)) < 0.3
    p[0] = False
    g[0] = False
    mat = mask_iou_matrix(p, g)
    for i, j in itertools.product(range(6), range(4)):
        assert mat[i, j] == mask_iou(p[i], g[j])
    assert mat[0, 0] == 1.0 and mask_iou_matrix(p[:1], g[:1], empty=0.0)[0, 0] == 0.0
    np.testing.assert_array_equal(mask_iou(p[:4], g), [mask_iou(x, y) for x, y in zip(p[:4], g)])
    inter, union = intersection_union(p[1:4], g[1:])
    assert inter.tolist() == [int((x & y).sum()) for x, y in zip(p[1:4], g[1:])]
    assert union.tolist() == [int((x | y).sum()) for x, y in zip(p[1:4], g[1:])]
    with pytest.raises(GeometryError, match="differ in shape"):
        intersection_union(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool))
    with pytest.raises(GeometryError, match="differ in size"):
        mask_iou_matrix(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool))


def test_match_is_the_maximum_total_assignment():
    rng = np.random.default_rng(6)
    for p, g in [(3, 3), (2, 4), (4, 2)]:
        sim = rng.random((p, g))
        best = max(
            itertools.permutations(range(g), p) if p <= g else itertools.permutations(range(p), g),
            key=lambda perm: sum(sim[i, j] for i, j in (zip(range(p), perm) if p <= g else zip(perm, range(g)))),
        )
        pairs = match(sim).pairs.tolist()
        assert len(pairs) == min(p, g) and pairs == sorted(pairs)
        total = sum(sim[i, j] for i, j in pairs)
        expect = sum(sim[i, j] for i, j in (zip(range(p), best) if p <= g else zip(best, range(g))))
        assert total == pytest.approx(expect)
    assert match(np.zeros((0, 3))).pairs.shape == (0, 2)


def test_points_read_the_pixel_that_holds_them():
    m = np.zeros((4, 6), bool)
    m[3, 5] = True
    assert points_in_mask([[5.5, 3.5], [6.0, 4.0], [5.0, 3.0], [4.99, 3.5]], m).tolist() == [True, True, True, False]
    rows, cols = pixel_of(np.array([[[6.0, 4.0], [-1.0, 0.2]]]), (4, 6))
    assert rows.tolist() == [[3, 0]] and cols.tolist() == [[5, 0]]
    # a crop placed at its origin reads the same as the full mask (for points inside the image)
    crop = m[2:, 3:]
    pts = np.random.default_rng(0).uniform(0, 1, (50, 2)) * [6, 4]
    assert points_in_mask(pts, crop, (2, 3)).tolist() == points_in_mask(pts, m).tolist()


def test_moves_positions_and_scores():
    mv = offset_moves(1)
    assert len(mv) == 9 and mv[4].tolist() == [0, 0] and not mv.flags.writeable
    assert move_index(mv, 1).tolist() == list(range(9))
    pos = moved_positions([[7.0, 7.0], [1.0, 1.0]], 1, 8, (112, 112), 0.5)  # one step = 7 px
    assert pos.shape == (2, 9, 2) and pos[0, 0].tolist() == [0.0, 0.0] and pos[1, 8].tolist() == [8.0, 8.0]
    explicit = moved_positions([[7.0, 7.0]], [[1, 0]], 8, (112, 112), 0.5)
    assert explicit.tolist() == [[[14.0, 7.0]]]
    rows, cols = landing_pixels([[111.0, 111.0]], 1, 8, 0.5, (112, 112))
    assert rows.max() == 111 and cols.max() == 111  # clipped to the image, then the last pixel
    scores = point_scores(
        start_in=[True, True, False, False, False],
        end_in=[True, False, False, True, False],
        deleted=[False, False, False, False, True],
        salvageable=[False, False, False, False, True],
        bad_delete=-0.5,
    )
    assert scores.tolist() == [1.0, -1.0, 0.0, 1.0, -0.5]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_rle_from_the_boxs_columns_equals_pycocotools(seed):
    from pycocotools import mask as mask_utils

    from getok.ops.masks import coco_rle, rle_decode, rle_encode

    rng = np.random.default_rng(seed)
    m = rng.random((int(rng.integers(1, 20)), int(rng.integers(1, 25)))) < rng.uniform(0, 0.4)
    if seed % 3 == 0:
        m[:, 0] = True  # touches the first column (and the first pixel)
    if seed % 5 == 0:
        m[:, -1] = True  # and the last
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert coco_rle(m)["counts"] == ref["counts"]
    box = mask_to_box(m)
    if box is not None:
        assert coco_rle(m, box)["counts"] == ref["counts"]  # with the caller's box
    assert rle_decode(rle_encode(m)).tolist() == m.tolist()
    for full in (np.ones((5, 6), bool), np.zeros((5, 6), bool)):
        assert coco_rle(full)["counts"] == mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))["counts"]
