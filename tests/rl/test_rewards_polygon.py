import numpy as np
import pytest

from getok.codecs import get_codec
from getok.geometry import Geometry
from getok.rl.rewards import PolygonRewardConfig, score_polygon, score_response
from getok.rl.rewards_polygon import POLYGON_KEYS, centroid_score, thresholded_iou
from getok.rl.truth import Target, pack_truth, unpack_truth

from .conftest import disk, rect, wrap

SPEC = "polygon:vertex=text,eps=0.01"
SIZE = (100, 120)


def answer_for(masks):
    return get_codec(SPEC).encode([Geometry(size=SIZE, mask=m) for m in masks])


def test_good_polygons_score_high_and_order_does_not_matter():
    masks = [disk(SIZE, 30, 30, 20), rect(SIZE, 60, 50, 110, 90)]
    t = pack_truth(SIZE, masks, codec=SPEC, task="polygon")
    s = score_response(wrap(answer_for(masks)), t)
    assert s["invalid"] == 0.0 and set(POLYGON_KEYS) <= set(s)
    assert s["mask_iou"] > 0.9 and s["iou"] == pytest.approx(s["mask_iou"]) and s["centroid"] > 0.95
    swapped = score_response(wrap(answer_for(masks[::-1])), t)
    assert swapped == s


def test_iou_threshold_and_centroid():
    target = rect(SIZE, 20, 20, 60, 60)
    shifted = rect(SIZE, 40, 20, 80, 60)  # IoU 1/3
    t = pack_truth(SIZE, [target], codec=SPEC, task="polygon")
    s = score_response(wrap(answer_for([shifted])), t)
    assert s["mask_iou"] == pytest.approx(1 / 3, abs=0.03) and s["iou"] == 0.0
    assert 0.0 < s["centroid"] < 1.0
    low_tau = score_polygon(wrap(answer_for([shifted])), unpack_truth(t), config=PolygonRewardConfig(tau=0.2))
    assert low_tau["iou"] == pytest.approx(low_tau["mask_iou"])
    assert thresholded_iou(0.49, 0.5) == 0.0 and thresholded_iou(0.5, 0.5) == 0.5
    tgt = Target.from_mask(target)
    assert centroid_score(tgt.centroid, tgt, SIZE) == 1.0
    assert centroid_score(tgt.centroid + [0, 0.1 * np.hypot(*SIZE)], tgt, SIZE, dist_norm=0.1) == pytest.approx(0.0)
    assert centroid_score(tgt.centroid + [0, 0.1 * np.hypot(*SIZE)], tgt, SIZE, dist_norm=0.2) == pytest.approx(0.5)
    assert centroid_score(None, tgt, SIZE) == 0.0


def test_polygon_format_and_no_target():
    t = pack_truth(SIZE, [], codec=SPEC, task="polygon")
    assert score_response(wrap("none"), t)["overall"] == 1.0
    bad = score_response(wrap("[[0.1, 0.2], [0.3"), t)
    assert bad["invalid"] == 1.0 and bad["overall"] == 0.0
