"""Metrics against hand-computed cases, under each empty-target convention."""

from __future__ import annotations

import numpy as np
import pytest

from getok.errors import ConfigError, GeometryError
from getok.eval.metrics import (
    EMPTY_CONVENTIONS,
    batch_records,
    markdown_table,
    nt_confusion,
    sample_ious,
    sample_record,
    summarize,
    summarize_groups,
)
from getok.ops.masks import mask_iou

SIZE = (10, 10)


def _mask(n_pixels: int, start: int = 0) -> np.ndarray:
    """A mask of ``n_pixels`` pixels, row-major from flat index ``start``."""
    m = np.zeros(SIZE[0] * SIZE[1], bool)
    m[start : start + n_pixels] = True
    return m.reshape(SIZE)


EMPTY = np.zeros(SIZE, bool)


@pytest.fixture
def four():
    """s1 target hit (I 5, U 15); s2 target, empty prediction (FP); s3 no-target, empty (TP); s4 no-target, 6 px (FN)."""
    return [
        sample_record(_mask(10, 5), _mask(10, 0), boundary=False),
        sample_record(EMPTY, _mask(10, 0), boundary=False),
        sample_record(EMPTY, EMPTY, boundary=False),
        sample_record(_mask(6, 50), EMPTY, boundary=False),
    ]


def test_hand_computed_counts(four):
    assert [(r["inter"], r["union"]) for r in four] == [(5, 15), (0, 10), (0, 0), (0, 6)]
    assert [r["pred_none"] for r in four] == [False, True, True, False]
    assert [r["gt_none"] for r in four] == [False, False, True, True]


def test_lisa(four):
    s = summarize(four, empty="lisa", pr_thresholds=(0.3, 0.5))
    assert s["empty"] == "lisa" and s["empty_rule"] == EMPTY_CONVENTIONS["lisa"]
    assert s["gIoU"] == pytest.approx((1 / 3 + 0 + 1 + 0) / 4)
    assert s["cIoU"] == pytest.approx(5 / 31)
    assert s["Pr@0.3"] == 0.5 and s["Pr@0.5"] == 0.25  # all four samples; the empty/empty one has IoU 1
    assert s["N-acc"] == 0.5 and s["T-acc"] == 0.5
    assert s["nt"] == {"TP": 1, "FN": 1, "FP": 1, "TN": 1}
    np.testing.assert_allclose(sample_ious(four, "lisa"), [1 / 3, 0, 1, 0])


def test_rela(four):
    s = summarize(four, empty="rela", pr_thresholds=(0.3, 0.5))
    assert s["gIoU"] == pytest.approx((1 / 3 + 0 + 1 + 0) / 4)  # no-target samples: 1 (TP) and 0 (FN)
    assert s["cIoU"] == pytest.approx(5 / 31)  # the FN's 6 px stay in the union
    assert s["Pr@0.3"] == 0.5 and s["Pr@0.5"] == 0.0  # over the two target samples only
    assert s["N-acc"] == 0.5 and s["T-acc"] == 0.5


def test_exclude(four):
    s = summarize(four, empty="exclude", pr_thresholds=(0.3,))
    assert s["gIoU"] == pytest.approx(1 / 6)
    assert s["cIoU"] == pytest.approx(5 / 25)
    assert s["Pr@0.3"] == 0.5
    assert s["N-acc"] == 0.5 and s["T-acc"] == 0.5
    assert np.isnan(sample_ious(four, "exclude")[2:]).all()


def test_empty_prediction_on_empty_target_under_each_convention():
    r = [sample_record(EMPTY, EMPTY)]
    assert summarize(r, empty="lisa")["gIoU"] == 1.0
    assert summarize(r, empty="rela")["gIoU"] == 1.0
    assert summarize(r, empty="exclude")["gIoU"] is None  # nothing scored
    assert summarize(r, empty="lisa")["cIoU"] is None  # 0 / 0
    assert summarize(r)["N-acc"] == 1.0 and summarize(r)["T-acc"] is None


def test_explicit_no_target_flag_separates_rela_from_lisa():
    full = _mask(10)
    said_none_but_drew = sample_record(full, full, pred_none=True)  # e.g. a model with a no-target head
    lisa = summarize([said_none_but_drew], empty="lisa")
    rela = summarize([said_none_but_drew], empty="rela")
    assert lisa["gIoU"] == 1.0 and rela["gIoU"] == 0.0  # ReLA: a no-target claim on a target sample gets I = 0
    tp_with_mask = sample_record(_mask(4), EMPTY, pred_none=True)
    assert summarize([tp_with_mask], empty="rela")["gIoU"] == 1.0
    assert summarize([tp_with_mask], empty="lisa")["gIoU"] == 0.0


def test_invalid_outputs_are_counted_never_credited():
    recs = [
        sample_record(None, EMPTY, valid=False, invalid_reason="unknown_token"),
        sample_record(None, _mask(10), valid=False, invalid_reason="bad_count"),
        sample_record(_mask(10), _mask(10)),
        sample_record(_mask(3), _mask(10), valid=False),  # a mask given with an invalid flag is ignored
    ]
    assert recs[3]["inter"] == 0 and recs[3]["pred_area"] == 0
    for empty in EMPTY_CONVENTIONS:
        s = summarize(recs, empty=empty)
        assert s["invalid_rate"] == 0.75
        assert s["invalid_reasons"] == {"unknown_token": 1, "bad_count": 1, "invalid": 1}
        assert s["N-acc"] == 0.0  # an unparseable answer is not a correct "none"
        assert s["T-acc"] == pytest.approx(1 / 3)
    assert summarize(recs, empty="lisa")["gIoU"] == 0.25


def test_rec_accuracy_from_boxes_and_from_masks():
    gt = np.zeros((20, 20), bool)
    gt[0:10, 0:10] = True
    half = np.zeros((20, 20), bool)
    half[0:5, 0:10] = True
    recs = [
        sample_record(half, gt),  # box IoU 0.5 from the masks
        sample_record(gt, gt, pred_box=[0, 0, 10, 9]),  # box IoU 0.9 from the given box
        sample_record(EMPTY.repeat(2, 0).repeat(2, 1), gt),  # no prediction: a miss
    ]
    assert recs[0]["box_iou"] == 0.5 and recs[1]["box_iou"] == pytest.approx(0.9) and recs[2]["box_iou"] is None
    s = summarize(recs, acc_thresholds=(0.5, 0.8))
    assert s["Acc@0.5"] == pytest.approx(2 / 3) and s["Acc@0.8"] == pytest.approx(1 / 3)
    nt = recs + [sample_record(np.zeros((20, 20), bool), np.zeros((20, 20), bool))]
    assert summarize(nt, empty="lisa")["Acc@0.5"] == pytest.approx(3 / 4)  # the empty/empty sample is a hit
    assert summarize(nt, empty="rela")["Acc@0.5"] == pytest.approx(2 / 3)  # target samples only


def test_tokens_per_object_and_groups():
    gt = _mask(10)
    recs = [
        sample_record(gt, gt, n_tokens=10, n_objects=2, turn=1),
        sample_record(gt, gt, n_tokens=6, n_objects=1, turn=1),
        sample_record(EMPTY, gt, turn=2),
    ]
    s = summarize(recs)
    assert s["tokens_per_object"] == pytest.approx(16 / 3) and s["tokens_per_sample"] == 8.0
    g = summarize_groups(recs, "turn")
    assert list(g) == [1, 2] and g[1]["gIoU"] == 1.0 and g[2]["gIoU"] == 0.0


def test_boundary_and_chamfer_in_records():
    gt = np.zeros((20, 20), bool)
    gt[5:15, 5:15] = True
    sq = np.array([[5, 5], [15, 5], [15, 15], [5, 15]], float)
    r = sample_record(np.roll(gt, 3, axis=1), gt, boundary_tol=1, pred_polygons=[sq + [3, 0]], gt_polygons=[sq])
    assert r["boundary_f"] == 0.5
    assert r["chamfer"] == 3.0 and r["chamfer_norm"] == pytest.approx(3.0 / np.hypot(20, 20))
    s = summarize([r, sample_record(EMPTY, EMPTY)])
    assert s["boundary_F"] == 0.5 and s["chamfer_px"] == 3.0 and s["chamfer_n"] == 1


def test_batch_records_match_sample_records():
    rng = np.random.default_rng(0)
    pred = rng.random((30, 12, 14)) < 0.3
    gt = rng.random((30, 12, 14)) < 0.3
    pred[3] = False
    gt[3:5] = False
    valid = np.ones(30, bool)
    valid[7] = False
    batch = batch_records(pred, gt, valid=valid, boundary=True, boundary_tol=2)
    single = [sample_record(p, g, valid=v, boundary_tol=2) for p, g, v in zip(pred, gt, valid)]
    assert batch == single
    assert summarize(batch, empty="rela") == summarize(single, empty="rela")


def test_empty_target_iou_and_invalid_confusion():
    assert mask_iou(EMPTY, EMPTY) == 1.0 and mask_iou(EMPTY, EMPTY, empty=0.0) == 0.0
    assert nt_confusion([True], [True], valid=[False]) == {"TP": 0, "FN": 1, "FP": 0, "TN": 0}


def test_markdown_table_states_the_convention(four):
    runs = {"grid": summarize(four, empty="rela"), "poly": summarize(four[:2], empty="rela")}
    md = markdown_table(runs, columns=("n", "gIoU", "cIoU", "Pr@0.5", "N-acc", "tokens_per_object"))
    lines = md.splitlines()
    assert lines[0] == "| run | n | gIoU (%) | cIoU (%) | Pr@0.5 (%) | N-acc (%) | tokens_per_object |"
    assert lines[2] == "| grid | 4 | 33.33 | 16.13 | 0.00 | 50.00 | – |"
    assert lines[3].startswith("| poly | 2 | 16.67 |")
    assert lines[-1] == "Empty targets: " + EMPTY_CONVENTIONS["rela"]


def test_no_records():
    s = summarize([])
    assert s["n"] == 0 and s["gIoU"] is None and s["invalid_rate"] is None


def test_malformed_inputs():
    with pytest.raises(GeometryError, match="binary"):
        mask_iou(np.full((3, 3), 2), np.zeros((3, 3)))
    with pytest.raises(GeometryError, match="differ in shape"):
        batch_records(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool))
    with pytest.raises(ConfigError, match="empty must be one of"):
        summarize([sample_record(EMPTY, EMPTY)], empty="coco")
    with pytest.raises(ConfigError, match="records need 'inter'"):
        summarize([{"iou": 1.0}])
    with pytest.raises(GeometryError, match="pred_mask shape"):
        sample_record(np.zeros((3, 3), bool), EMPTY)
