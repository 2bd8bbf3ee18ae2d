import itertools

import numpy as np
import pytest

from getok.errors import ConfigError
from getok.ops.boxes import box_iou_matrix
from getok.ops.points import points_in_mask
from getok.rl.matching import (
    MatchConfig,
    hit_matrix,
    hit_matrix_bits,
    instance_mean,
    match,
    similarity_matrix,
)

from .conftest import rect


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


def test_similarity_parts_box_terms_are_geom_boxes():
    from getok.ops.boxes import box_l1_matrix
    from getok.rl.matching import similarity_parts

    rng = np.random.default_rng(3)
    p = np.sort(rng.uniform(0, 40, (4, 2, 2)), axis=1).reshape(4, 4)
    p = np.stack([p[:, 0], p[:, 2], p[:, 1], p[:, 3]], axis=1)
    p[1] = np.nan
    g = np.array([[5, 5, 20, 30.0], [10, 10, 10, 10.0], [0, 0, 40, 40.0]])
    parts = similarity_parts(p, [np.zeros((0, 2))] * 4, g, [np.zeros((40, 50), bool)] * 3, (40, 50))
    assert parts.box_iou.shape == (4, 3) and (parts.box_iou[1] == 0).all()  # no box: IoU term 0
    np.testing.assert_array_equal(parts.box_iou, box_iou_matrix(p, g, missing=0.0))
    np.testing.assert_array_equal(parts.l1, box_l1_matrix(p, g, (40, 50)))
