import itertools

import numpy as np
import pytest

from getok.errors import ConfigError
from getok.geom.masks import box_iou
from getok.rl.matching import (
    MatchConfig,
    box_iou_matrix,
    box_l1_matrix,
    hit_matrix,
    hit_matrix_bits,
    instance_mean,
    match,
    points_in_mask,
    similarity_matrix,
)

from .conftest import rect


def test_box_iou_matrix_agrees_with_pairwise_iou_and_handles_missing_boxes():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 50, (5, 2, 2)), axis=1).transpose(0, 2, 1).reshape(5, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 50, (4, 2, 2)), axis=1).transpose(0, 2, 1).reshape(4, 4)[:, [0, 2, 1, 3]]
    m = box_iou_matrix(a, b)
    for i, j in itertools.product(range(5), range(4)):
        assert m[i, j] == pytest.approx(box_iou(a[i], b[j]))
    nan = box_iou_matrix(np.full((1, 4), np.nan), b)
    assert (nan == 0).all()
    assert box_l1_matrix(np.full((1, 4), np.nan), b, (50, 50)).tolist() == [[1.0] * 4]


def test_box_l1_is_normalised_mean_abs():
    l1 = box_l1_matrix([[0, 0, 10, 10]], [[10, 0, 20, 10]], (10, 100))
    assert l1[0, 0] == pytest.approx((10 / 100 + 0 + 10 / 100 + 0) / 4)


def test_points_in_mask_full_and_cropped():
    m = rect((10, 10), 2, 3, 6, 8)
    pts = np.array([[2.5, 3.5], [1.9, 3.5], [5.99, 7.99], [6.0, 7.0], [10.0, 10.0]])
    full = points_in_mask(pts, m)
    assert full.tolist() == [True, False, True, False, False]
    crop = points_in_mask(pts, m[3:8, 2:6], origin=(3, 2))
    assert crop.tolist() == full.tolist()


def test_hit_matrix_bits_equals_per_mask_lookup():
    rng = np.random.default_rng(1)
    size = (30, 40)
    masks = [rng.random(size) < 0.3 for _ in range(5)]
    bits = np.zeros(size, np.uint8)
    for j, m in enumerate(masks):
        bits |= m.astype(np.uint8) << j
    pts = [rng.uniform(0, 40, (k, 2)) * [1, 0.75] for k in (1, 7, 20)]
    assert np.allclose(hit_matrix(pts, masks), hit_matrix_bits(pts, bits, 5))


def test_similarity_of_identical_prediction_is_maximal():
    m = rect((20, 20), 0, 0, 10, 10)
    sim = similarity_matrix(
        [[0, 0, 10, 10]], [np.array([[5.0, 5.0]])], [[0, 0, 10, 10]], [m], (20, 20), MatchConfig(1, 2, 3)
    )
    assert sim[0, 0] == pytest.approx(6.0)


def test_hungarian_maximises_total_similarity():
    rng = np.random.default_rng(2)
    for _ in range(30):
        p, g = (int(v) for v in rng.integers(1, 5, 2))
        sim = rng.random((p, g))
        m = match(sim)
        assert len(m.pairs) == min(p, g)
        best = max(
            sum(sim[i, j] for i, j in zip(perm, cols))
            for cols in itertools.permutations(range(g), min(p, g))
            for perm in itertools.permutations(range(p), min(p, g))
        )
        assert sim[m.pairs[:, 0], m.pairs[:, 1]].sum() == pytest.approx(best)


def test_instance_mean_rules():
    assert instance_mean([], match(np.zeros((0, 0)))) == 1.0  # no target, no prediction
    assert instance_mean([], match(np.zeros((2, 0)))) == 0.0  # predictions for no target
    assert instance_mean([], match(np.zeros((0, 3)))) == 0.0  # no prediction for targets
    m = match(np.eye(2, 3))
    assert instance_mean([1.0, 0.5], m) == pytest.approx(1.5 / 3)  # unmatched target scores 0
    m2 = match(np.eye(3, 2))
    assert instance_mean([1.0, 1.0], m2, [0.5]) == pytest.approx(2.5 / 3)
    assert m2.unmatched_pred.tolist() == [2] and m.unmatched_gt.tolist() == [2]


def test_match_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="MatchConfig.b"):
        MatchConfig(b=-1)
    with pytest.raises(ConfigError, match="norm"):
        MatchConfig(norm=0)


def test_small_and_vectorised_box_terms_agree():
    from getok.rl.matching import _box_terms_small, similarity_parts

    rng = np.random.default_rng(3)
    for _ in range(50):
        p = np.sort(rng.uniform(0, 40, (4, 2, 2)), axis=1).reshape(4, 4)[:, [0, 1, 2, 3]]
        p = np.stack([p[:, 0], p[:, 2], p[:, 1], p[:, 3]], axis=1)
        p[rng.random(4) < 0.2] = np.nan
        g = np.stack(
            [
                np.array([5, 5, 20, 30.0]),
                np.array([10, 10, 10, 10.0]),
                rng.uniform(0, 20, 4).cumsum().reshape(2, 2).ravel(),
            ]
        )
        g[2] = [min(g[2][0], g[2][2]), min(g[2][1], g[2][3]), max(g[2][0], g[2][2]), max(g[2][1], g[2][3])]
        iou, l1 = _box_terms_small(p, g, (40, 50))
        assert np.allclose(iou, box_iou_matrix(p, g)) and np.allclose(l1, box_l1_matrix(p, g, (40, 50)))
    parts = similarity_parts(p, [np.zeros((0, 2))] * 4, g, [np.zeros((40, 50), bool)] * 3, (40, 50))
    assert parts.box_iou.shape == (4, 3)


def test_box_iou_scalar_matches_the_matrix():
    from getok.rl.matching import box_iou_scalar

    rng = np.random.default_rng(4)
    for _ in range(100):
        a = np.sort(rng.uniform(0, 10, (2, 2)), axis=0).T.reshape(4)[[0, 2, 1, 3]]
        b = np.sort(rng.uniform(0, 10, (2, 2)), axis=0).T.reshape(4)[[0, 2, 1, 3]]
        assert box_iou_scalar(a, b) == pytest.approx(box_iou_matrix([a], [b])[0, 0]) == pytest.approx(box_iou(a, b))
    assert box_iou_scalar([1, 1, 1, 1], [1, 1, 1, 1]) == 1.0 and box_iou_scalar([1, 1, 1, 1], [2, 2, 2, 2]) == 0.0
