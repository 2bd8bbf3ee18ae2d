"""Truths never make the scorer raise: copies of a scored truth, malformed packed fields, non-finite or
reversed boxes, malformed proposals and codecs all become an invalid score with a reason."""

import json
import math

import numpy as np
import pytest

from getok.errors import DataError
from getok.rl.rewards import KEYS, RewardScorer, score_response
from getok.rl.truth import Target, Truth, pack_truth, unpack_truth

from .conftest import rect, wrap

SIZE = (64, 64)
STAGE1 = wrap("<g4_r0_c0><g4_r1_c0>")
STAGE2 = wrap("<off_0_0><off_0_0>")


def _mask():
    return rect(SIZE, 0, 0, 16, 32)  # cells (0, 0) and (0, 1) of the 4 x 4 grid


def _stage2_text(proposal="<g4_r0_c0><g4_r1_c0>"):
    return pack_truth(SIZE, [_mask()], codec="grid_offset:n=4", task="stage2", proposal=proposal)


# ------------------------------------------------------------------------------- copies of a truth
def test_a_scored_truth_can_be_copied_with_overrides():
    """Scoring caches label bits on the truth; copying it must not pass them to the constructor."""
    t = unpack_truth(pack_truth(SIZE, [_mask()], codec="grid:n=4"))
    s = score_response(STAGE1, t)
    assert s["invalid"] == 0.0 and s["mask_iou"] == 1.0
    assert "label_bits" in t.__dict__  # the cache the copy used to choke on
    u = unpack_truth(t, codec="grid:n=8", task="polygon")
    assert (u.codec, u.task, u.size, u.n_targets) == ("grid:n=8", "polygon", SIZE, 1)
    assert t.codec == "grid:n=4" and t.task == "stage1"  # the original is unchanged
    assert np.array_equal(u.label_bits, t.label_bits)
    p = t.with_proposal("<g4_r0_c0>")
    assert p.proposal == "<g4_r0_c0>" and t.proposal is None
    assert np.array_equal(p.centre_bits(4), t.centre_bits(4))


def test_a_copy_with_other_targets_recomputes_the_caches():
    t = Truth(size=(8, 8), targets=(Target.from_mask(rect((8, 8), 0, 0, 4, 4)),))
    assert t.label_bits.any() and t.centre_bits(2).tolist() == [1, 0, 0, 0]
    empty = t.replace(targets=())
    assert not empty.label_bits.any() and empty.centre_bits(2).tolist() == [0, 0, 0, 0]
    other = t.replace(targets=(Target.from_mask(rect((8, 8), 4, 4, 8, 8)),))
    assert other.centre_bits(2).tolist() == [0, 0, 0, 1]
    with pytest.raises(TypeError):
        t.replace(label_bits=None)  # a cache is not a field


def test_stage2_scores_a_shared_truth_again_with_a_proposal():
    """The packed truth is decoded once (cached) and shared: after a stage-1 score cached its label bits,
    stage-2 scores with the policy's proposal keep working, call after call."""
    text = _stage2_text()
    assert score_response(STAGE1, text, task="stage1", codec="grid:n=4")["invalid"] == 0.0
    assert "label_bits" in unpack_truth(text).__dict__
    scorer = RewardScorer(task="stage2")
    fresh = RewardScorer(task="stage2").score(STAGE2, _stage2_text("<g4_r0_c0><g4_r1_c0>"))
    for _ in range(2):
        s = scorer.score(STAGE2, text, proposal="<g4_r0_c0><g4_r1_c0>")
        assert s["invalid"] == 0.0 and s["reason"] == ""
        assert {k: s[k] for k in KEYS["stage2"]} == {k: fresh[k] for k in KEYS["stage2"]}
    other = scorer.score(wrap("<off_0_0>"), text, proposal="<g4_r0_c0>")
    assert other["invalid"] == 0.0 and other["iou_init"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------- malformed fields
def _packed():
    return json.loads(pack_truth(SIZE, [_mask()], codec="grid:n=4"))


NAN4 = [math.nan] * 4
MALFORMED = [
    ("v", None, "'v'"),
    ("v", "abc", "'v'"),
    ("v", [1], "'v'"),
    ("v", True, "'v'"),
    ("v", 2, "'v'"),
    ("codec", 5, "codec"),
    ("codec", ["grid:n=4"], "codec"),
    ("codec", {"n": 4}, "codec"),
    ("proposal", 5, "proposal"),
    ("proposal", ["<g4_r0_c0>"], "proposal"),
    ("image", 3, "image"),
    ("image_id", [1], "image_id"),
    ("image_id", {"a": 1}, "image_id"),
    ("task", 5, "task"),
    ("task", ["stage1"], "task"),
    ("kind", [1], "kind"),
    ("size", "ab", "size"),
    ("size", [None, 3], "size"),
    ("size", [0, 4], "size"),
    ("size", [200000, 200000], "above getok's cap"),  # a full-size mask would need 40 GB
    ("masks", 5, "masks"),
    ("masks", "abc", "masks"),
    ("masks", [5], r"masks\[0\]"),
    ("masks", {"a": 1}, "masks"),
    ("boxes", 5, "boxes"),
    ("boxes", [[1, 2, 3]], r"boxes\[0\]"),
    ("boxes", [NAN4], r"boxes\[0\].*finite"),
    ("boxes", [[0, 0, math.inf, 4]], r"boxes\[0\].*finite"),
    ("boxes", [[10, 10, 0, 0]], r"boxes\[0\].*reversed"),
    ("boxes", [[0, 10, 16, 0]], r"boxes\[0\].*reversed"),
    ("points", "ab", "points"),
    ("points", [[[math.nan, 1.0]]], r"points\[0\].*finite"),
    ("points", [[1, 2, 3]], "points"),
]


@pytest.mark.parametrize("key,value,match", MALFORMED, ids=[f"{k}={v!r}" for k, v, _ in MALFORMED])
def test_malformed_field_is_a_data_error_naming_it(key, value, match):
    d = _packed()
    d[key] = value
    with pytest.raises(DataError, match=match):
        unpack_truth(d)
    with pytest.raises(DataError, match=match):
        unpack_truth(json.dumps(d))


@pytest.mark.parametrize("key,value,match", MALFORMED, ids=[f"{k}={v!r}" for k, v, _ in MALFORMED])
@pytest.mark.parametrize("task", ["stage1", "stage2", "polygon"])
def test_malformed_field_scores_invalid_never_raises(key, value, match, task):
    d = _packed()
    d[key] = value
    for truth in (d, json.dumps(d)):
        s = RewardScorer().score(STAGE1, truth, task=task)
        assert s["invalid"] == 1.0 and s["overall"] == 0.0 and s["reason"] == "bad_truth"
        assert set(KEYS[task]) <= set(s)


def test_empty_masks_with_non_finite_boxes_are_invalid():
    """A box-only truth rasterises its boxes: a NaN box used to raise from the rasteriser."""
    for boxes in ([NAN4], [[0, 0, math.inf, 8]], [[8, 8, 0, 0]]):
        d = {"size": list(SIZE), "masks": [], "boxes": boxes, "codec": "grid:n=4"}
        with pytest.raises(DataError, match=r"boxes\[0\]"):
            unpack_truth(d)
        for truth in (d, json.dumps(d)):
            s = score_response(STAGE1, truth)
            assert s["invalid"] == 1.0 and s["reason"] == "bad_truth"


def test_malformed_crop_entries_are_invalid():
    d = _packed()
    for crop in ([math.nan, 0, 16, 32], [0, 0, 16], "abcd", None):
        d["masks"][0]["crop"] = crop
        with pytest.raises(DataError):
            unpack_truth(d)
        assert score_response(STAGE1, json.dumps(d))["reason"] == "bad_truth"
    d = _packed()
    del d["masks"][0]["rle"]
    assert score_response(STAGE1, d)["reason"] == "bad_truth"


def test_batch_scoring_of_malformed_truths():
    good = pack_truth(SIZE, [_mask()], codec="grid:n=4")
    bad = [dict(_packed(), **{k: v}) for k, v, _ in MALFORMED]
    items = [{"response": STAGE1, "truth": t} for t in [good, *bad, json.dumps({"size": [4, 4], "v": None})]]
    scores = RewardScorer().score_batch(items)
    assert scores[0]["invalid"] == 0.0
    assert all(s["invalid"] == 1.0 and s["reason"] == "bad_truth" for s in scores[1:])


def test_valid_edge_values_still_read():
    empty = pack_truth(SIZE, [np.zeros(SIZE, bool)], codec="grid:n=4")  # its box is [0, 0, 0, 0]
    t = unpack_truth(empty)
    assert t.n_targets == 1 and t.targets[0].area == 0 and t.targets[0].box.tolist() == [0.0] * 4
    d = _packed()
    d.update(image_id=7, boxes=[[0, 0, 16, 32]], points=[[[1.5, 2.5]]], extra_key={"kept": True})
    t = unpack_truth(d)
    assert t.image_id == "7" and t.key == "7" and t.points[0].tolist() == [[1.5, 2.5]]
    assert t.to_dict()["extra_key"] == {"kept": True}
    assert score_response(STAGE1, d)["invalid"] == 0.0


# ----------------------------------------------------------------------------- rejected at packing
@pytest.mark.parametrize(
    "box,match",
    [(NAN4, "finite"), ([0, 0, math.inf, 4], "finite"), ([0, -math.inf, 4, 4], "finite"), ([10, 10, 0, 0], "reversed")],
)
def test_pack_truth_rejects_non_finite_and_reversed_boxes(box, match):
    with pytest.raises(DataError, match=r"boxes\[0\].*" + match):
        pack_truth(SIZE, [_mask()], boxes=[box], codec="grid:n=4")
    with pytest.raises(ValueError):  # DataError is a ValueError
        pack_truth(SIZE, [_mask()], boxes=[box], codec="grid:n=4")


def test_pack_truth_rejects_non_finite_points_and_non_string_fields():
    with pytest.raises(DataError, match=r"points\[1\]"):
        pack_truth(SIZE, [_mask(), _mask()], points=[[[1, 1]], [[math.nan, 1]]], codec="grid:n=4")
    with pytest.raises(DataError, match="codec"):
        pack_truth(SIZE, [_mask()], codec=4)
    with pytest.raises(DataError, match="proposal"):
        pack_truth(SIZE, [_mask()], codec="grid_offset:n=4", task="stage2", proposal=["<g4_r0_c0>"])
    with pytest.raises(DataError, match=r"box.*finite"):
        Target.from_mask(_mask(), box=NAN4)


# ------------------------------------------------------------------------ proposals and codecs
@pytest.mark.parametrize("proposal", [5, ["<g4_r0_c0>"], {"p": 1}, b"<g4_r0_c0>"])
def test_non_string_proposal_override_is_invalid(proposal):
    s = RewardScorer(task="stage2").score(STAGE2, _stage2_text(), proposal=proposal)
    assert s["invalid"] == 1.0 and s["reason"] == "bad_proposal"


@pytest.mark.parametrize("proposal", ["<g4_r0_c0", "<g4_r0_c0><off_0_0>", "<g9_r9_c9>", "junk"])
def test_malformed_proposal_is_invalid(proposal):
    scorer = RewardScorer(task="stage2")
    assert scorer.score(STAGE2, _stage2_text(), proposal=proposal)["reason"] == "bad_proposal"
    assert scorer.score(STAGE2, _stage2_text(proposal))["reason"] == "bad_proposal"


@pytest.mark.parametrize("task", ["stage1", "stage2", "polygon"])
@pytest.mark.parametrize("codec", [5, ["grid:n=4"], {"n": 4}])
def test_non_string_codec_override_is_invalid(task, codec):
    s = RewardScorer().score(STAGE1, _stage2_text(), task=task, codec=codec)
    assert s["invalid"] == 1.0 and s["reason"] == "ConfigError"
