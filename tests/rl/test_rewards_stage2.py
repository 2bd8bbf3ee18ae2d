import numpy as np
import pytest

from getok.codecs import get_codec
from getok.decoding.raster import raster_mask
from getok.geom.grid import cells_to_mask
from getok.geometry import Geometry
from getok.rl.rewards import Stage2Config, score_response, score_stage2
from getok.rl.rewards_common import normalized_gain
from getok.rl.rewards_decoding import crop_to_content, raster_crop
from getok.rl.rewards_stage2 import STAGE2_KEYS, reachable_positions, refine_point_scores
from getok.rl.truth import pack_truth, unpack_truth

from .conftest import rect, wrap

SPEC = "grid_offset:n=4,r=1,step=0.5"  # 32 x 32 images: 8-pixel cells, 4-pixel steps
SIZE = (32, 32)
TARGET = rect(SIZE, 0, 0, 12, 8)  # columns 0..11, rows 0..7
PROPOSAL = "<g4_r0_c0><g4_r0_c1>"  # cells (0, 0) and (1, 0): columns 0..15, rows 0..7 (IoU 0.75)


def truth(masks=(TARGET,), proposal=PROPOSAL):
    return pack_truth(SIZE, list(masks), codec=SPEC, task="stage2", proposal=proposal)


def refined(cells, tokens):
    c = get_codec(SPEC)
    prop = [Geometry(size=SIZE, cells=cells, grid_n=4)]
    return c.decode_refinement("".join(tokens), prop)[0]


@pytest.mark.parametrize(
    "cell,token,expected",
    [
        ((0, 0), "<off_0_0>", 1.0),  # stays inside
        ((0, 0), "<off_1_0>", 1.0),  # moves, still inside
        ((1, 0), "<off_-1_0>", 1.0),  # enters
        ((0, 0), "<off_0_1>", -1.0),  # leaves
        ((1, 0), "<off_0_0>", 0.0),  # outside, stays outside
        ((1, 0), "<off_1_1>", 0.0),  # outside, moves elsewhere outside
        ((3, 3), "<DELETE>", 1.0),  # valid delete: nothing reachable lies inside
        ((1, 0), "<DELETE>", 0.0),  # a move could have entered: not a valid delete
        ((0, 0), "<DELETE>", 0.0),  # deleting a point that was inside
    ],
)
def test_point_refinement_cases(cell, token, expected):
    g = refined([cell], [token])
    assert refine_point_scores(g, TARGET, r=1).tolist() == [expected]
    # the same with the target given as a crop
    assert refine_point_scores(g, TARGET[0:8, 0:12], r=1, origin=(0, 0)).tolist() == [expected]


def test_bad_delete_setting_and_empty_target():
    g = refined([(1, 0), (3, 3), (0, 0)], ["<DELETE>", "<DELETE>", "<off_0_0>"])
    assert refine_point_scores(g, TARGET, r=1, bad_delete=-1.0).tolist() == [-1.0, 1.0, 1.0]
    assert refine_point_scores(g, None, r=1).tolist() == [1.0, 1.0, 0.0]


def test_reachable_positions_are_the_offset_moves_clipped():
    pos = reachable_positions([[0, 0]], 4, SIZE, r=1, step=0.5)
    assert pos.shape == (1, 9, 2)
    assert sorted(set(pos[0, :, 0].tolist())) == [0.0, 4.0, 8.0]


@pytest.mark.parametrize(
    "answer,point,gain,box",
    [
        ("<off_0_0><off_-1_0>", 1.0, 1.0, 1.0),  # moves the outer point in: IoU 0.75 -> 1
        ("<off_0_0><DELETE>", 0.5, (64 / 96 - 0.75) / 0.25, (64 / 96 - 0.75) / 0.25),
        ("<off_0_0><off_0_0>", 0.5, 0.0, 0.0),
        ("<off_0_1><off_0_0>", -0.5, None, None),
    ],
)
def test_stage2_end_to_end(answer, point, gain, box):
    s = score_response(wrap(answer), truth())
    assert s["invalid"] == 0.0 and set(STAGE2_KEYS) <= set(s)
    assert s["iou_init"] == pytest.approx(0.75)
    assert s["point_refine"] == pytest.approx(point)
    if gain is not None:
        assert s["mask_gain"] == pytest.approx(gain) and s["box_refine"] == pytest.approx(box)
    else:
        assert s["mask_gain"] < 0
    assert 0.0 < s["overall"] <= 1.0


def test_better_refinement_scores_higher_overall():
    good = score_response(wrap("<off_0_0><off_-1_0>"), truth())["overall"]
    keep = score_response(wrap("<off_0_0><off_0_0>"), truth())["overall"]
    bad = score_response(wrap("<off_0_1><off_0_1>"), truth())["overall"]
    assert good > keep > bad > 0.0  # any valid refinement beats a malformed one (0)


def test_gain_when_the_proposal_is_already_perfect():
    perfect = rect(SIZE, 0, 0, 16, 8)
    t = truth(masks=(perfect,))
    assert score_response(wrap("<off_0_0><off_0_0>"), t)["mask_gain"] == 1.0
    assert score_response(wrap("<off_0_0><off_1_0>"), t)["mask_gain"] == -1.0
    assert normalized_gain(1.0, 1.0) == 1.0 and normalized_gain(0.5, 1.0) == -1.0
    assert normalized_gain(0.0, 0.5) == -1.0 and normalized_gain(0.75, 0.5) == 0.5


def test_no_target_cases():
    s = score_response(wrap("none"), truth(masks=(), proposal="none"))
    assert s["overall"] == 1.0 and s["point_refine"] == s["mask_gain"] == 1.0
    # a false-positive proposal: deleting everything is the right refinement
    fp = truth(masks=(), proposal="<g4_r3_c3>")
    delete = score_response(wrap("<DELETE>"), fp)
    keep = score_response(wrap("<off_0_0>"), fp)
    assert delete["point_refine"] == 1.0 and delete["mask_gain"] == 1.0 and keep["point_refine"] == 0.0
    assert delete["overall"] > keep["overall"]
    literal = score_stage2(wrap("<DELETE>"), unpack_truth(fp), config=Stage2Config(unmatched_as_empty=False))
    assert literal["point_refine"] == 0.0


@pytest.mark.parametrize(
    "answer,reason",
    [
        ("<off_0_0>", "count_mismatch"),  # one token for two proposed cells
        ("<off_0_0><off_0_0>\n<off_0_0>", "count_mismatch"),  # two lines for one instance
        ("<off_0_0><off_2_0>", "unknown_token"),  # outside the radius
        ("<off_0_0><g4_r0_c0>", "unknown_token"),
        ("none", "stray_text"),  # the codec reads it as one line of non-tokens
    ],
)
def test_malformed_refinements(answer, reason):
    s = score_response(wrap(answer), truth())
    assert s["invalid"] == 1.0 and s["overall"] == 0.0 and s["reason"] == reason


def test_truth_problems_are_flagged():
    assert score_response(wrap("<off_0_0>"), truth(proposal=None))["reason"] == "no_proposal"
    bad_codec = pack_truth(SIZE, [TARGET], codec="grid:n=4", task="stage2", proposal=PROPOSAL)
    assert score_response(wrap("<off_0_0><off_0_0>"), bad_codec)["reason"] == "codec_not_grid_offset"
    assert score_response(wrap("<off_0_0>"), truth(proposal="<g9_r0_c0>"))["reason"] == "bad_proposal"


def test_proposal_override_scores_against_the_given_proposal():
    t = truth(proposal="<g4_r0_c0>")
    s = score_response(wrap("<off_0_0><off_-1_0>"), t, proposal=PROPOSAL)
    assert s["invalid"] == 0.0 and s["mask_gain"] == 1.0


def _full(crop, r0, c0, size):
    m = np.zeros(size, bool)
    m[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] = crop
    return m


def test_raster_crop_draws_what_the_raster_decoder_draws():
    rng = np.random.default_rng(0)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(3, 90, 2))
        n = int(rng.integers(1, 12))
        k = int(rng.integers(1, 10))
        cells = rng.integers(0, n, (k, 2))
        step = float(rng.choice([0.5, 0.25, 1 / 3, 0.4, 1.0]))
        offs = rng.integers(-2, 3, (k, 2))
        dele = rng.random(k) < 0.3
        for g in (
            Geometry(size=(h, w), cells=cells, grid_n=n),
            Geometry(size=(h, w), cells=cells, grid_n=n, deleted=dele),
            Geometry(size=(h, w), cells=cells, grid_n=n, offsets=offs, deleted=dele, offset_step=step),
            Geometry(size=(h, w), box=[w * 0.1, h * 0.2, w * 0.7, h * 0.9]),
        ):
            crop, r0, c0 = raster_crop(g)
            full = raster_mask(g)
            assert np.array_equal(_full(crop, r0, c0, (h, w)), full)
            assert (crop, r0, c0)[0].shape == crop_to_content(full)[0].shape  # tight


def test_half_cell_offsets_are_2x2_blocks_of_the_2n_grid():
    """Independent reference: a cell moved by (dx, dy) half cells covers sub-cells 2c + d .. 2c + d + 1."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(3, 90, 2))
        n = int(rng.integers(1, 12))
        k = int(rng.integers(1, 10))
        cells, offs, dele = rng.integers(0, n, (k, 2)), rng.integers(-1, 2, (k, 2)), rng.random(k) < 0.3
        g = Geometry(size=(h, w), cells=cells, grid_n=n, offsets=offs, deleted=dele, offset_step=0.5)
        sub = [
            (2 * c + o + np.array([a, b]))
            for c, o, d in zip(cells, offs, dele)
            if not d
            for a in (0, 1)
            for b in (0, 1)
        ]
        sub = np.array(sub, dtype=np.int64).reshape(-1, 2)
        sub = sub[((sub >= 0) & (sub < 2 * n)).all(axis=1)]  # the part of each square inside the image
        assert np.array_equal(_full(*raster_crop(g), (h, w)), cells_to_mask(sub, 2 * n, (h, w)))


def test_cell_space_instances_equal_pixel_instances():
    """Areas, boxes, IoUs counted per (sub-)cell equal those counted on the raster decoder's pixels."""
    from getok.rl.rewards_decoding import DecoderSession, Instance, target_iou
    from getok.rl.truth import Target

    rng = np.random.default_rng(2)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(3, 90, 2))
        n = int(rng.integers(1, 12))
        k = int(rng.integers(1, 10))
        cells = rng.integers(0, n, (k, 2))
        step = float(rng.choice([0.5, 0.25, 1.0]))
        offs, dele = rng.integers(-2, 3, (k, 2)), rng.random(k) < 0.3
        target = Target.from_mask(rng.random((h, w)) < 0.4)
        sess = DecoderSession()
        for g in (
            Geometry(size=(h, w), cells=cells, grid_n=n),
            Geometry(size=(h, w), cells=cells, grid_n=n, offsets=offs, deleted=dele, offset_step=step),
        ):
            fast = sess.instance("k", g)
            assert fast.cells is not None  # the cell-space path was taken
            slow = Instance.build("k", g, raster_mask(g))
            assert fast.area == slow.area
            assert (fast.box is None and slow.box is None) or np.array_equal(fast.box, slow.box)
            assert target_iou(fast, target) == pytest.approx(target_iou(slow, target))
            assert np.array_equal(fast.mask, slow.mask)
