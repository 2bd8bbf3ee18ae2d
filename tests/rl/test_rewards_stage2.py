import numpy as np
import pytest

from getok.codecs import get_codec
from getok.decoding.raster import raster_mask
from getok.geometry import Geometry
from getok.ops.raster import cells_to_mask, crop_to_content, raster_crop
from getok.rl.rewards import Stage2Config, score_response, score_stage2
from getok.rl.rewards_common import normalized_gain
from getok.rl.rewards_stage2 import STAGE2_KEYS, reachable_positions, refine_point_scores
from getok.rl.truth import pack_truth, unpack_truth

from .conftest import generic_raster, random_rect_masks, rect, wrap

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


def _reference_stage2(answer: str, t, cfg: Stage2Config, session) -> dict:
    """The stage-2 components computed the direct way (codec decode of the whole answer, a decoded
    instance per refined line, :func:`refine_point_scores`), for comparison with the table lookups."""
    from getok.rl.matching import instance_mean
    from getok.rl.rewards_common import answer_lines
    from getok.rl.rewards_decoding import target_iou
    from getok.rl.rewards_stage1 import match_to_targets
    from getok.rl.rewards_stage2 import box_gain

    c = get_codec(t.codec)
    geoms = c.decode(t.proposal, t.size, "mask")
    session.prepare(t)
    insts = [session.instance(ln, g) for ln, g in zip(answer_lines(t.proposal), geoms)]
    m, _ = match_to_targets(insts, t, cfg.match)
    refined = c.decode_refinement(answer, geoms)
    tgt_of = m.target_of()
    vals, unmatched = [], []
    n_points = n_del = 0
    for i, (g, init) in enumerate(zip(refined, insts)):
        n_points += len(g.cells)
        n_del += int(g.deleted.sum())
        j = tgt_of.get(i)
        if j is None and not cfg.unmatched_as_empty:
            continue
        tgt = t.targets[j] if j is not None else None
        ref = session.instance("ref", g)
        pts = refine_point_scores(g, None if tgt is None else tgt.crop_mask, c.config.r, cfg.bad_delete,
                                  None if tgt is None else tgt.origin)  # fmt: skip
        iou_i, iou_r = target_iou(init, tgt), target_iou(ref, tgt)
        (vals if j is not None else unmatched).append(
            (pts.mean(), box_gain(init, ref, tgt), normalized_gain(iou_r, iou_i), iou_i, iou_r)
        )
    out = {
        k: instance_mean([v[q] for v in vals], m, [v[q] for v in unmatched])
        for q, k in enumerate(("point_refine", "box_refine", "mask_gain", "iou_init", "iou_ref"))
    }
    out["deleted"] = n_del / n_points if n_points else 0.0
    return out


@pytest.mark.parametrize("decoder", ["raster", "raster-subclass"])
def test_table_lookups_equal_the_direct_computation(decoder):
    """score_stage2 scores a refinement line by lookups into per-proposal tables (and reuses a repeated
    line's result); every component equals the direct computation, on random scenes, proposals (cells at
    the image border included) and refinements, for the raster decoder's sub-cell path and the generic one."""
    from getok.decoding.raster import RasterDecoder
    from getok.rl.rewards_decoding import DecoderSession
    from getok.rl.truth import truth_from_json

    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(20, 70, 2))
        n = int(rng.choice([4, 8]))
        r = int(rng.choice([1, 2]))
        step = float(rng.choice([0.5, 0.25]))
        spec = f"grid_offset:n={n},r={r},step={step}"
        c = get_codec(spec)
        masks = random_rect_masks(rng, (h, w), 2)
        k_inst = int(rng.integers(1, 4))
        lines = [c.encode_cells(np.unique(rng.integers(0, n, (int(rng.integers(1, 6)), 2)), axis=0)) for _ in range(k_inst)]
        t = truth_from_json(pack_truth((h, w), masks, codec=spec, task="stage2", proposal="\n".join(lines)))
        cfg = Stage2Config(envelope="any", bad_delete=float(rng.choice([0.0, -1.0])),
                           unmatched_as_empty=bool(rng.random() < 0.7))  # fmt: skip
        dec = RasterDecoder() if decoder == "raster" else generic_raster()
        session = DecoderSession(dec)
        names = [f"<off_{dx}_{dy}>" for dx in range(-r, r + 1) for dy in range(-r, r + 1)] + ["<DELETE>"]
        geoms = c.decode(t.proposal, t.size, "mask")
        answers = []
        for _ in range(6):
            answers.append("\n".join("".join(rng.choice(names, len(g.cells))) for g in geoms))
        answers.append(answers[0])  # a repeated answer: the cached line results
        for a in answers:
            got = score_stage2(a, t, session, cfg)
            assert got["invalid"] == 0.0, got["reason"]
            want = _reference_stage2(a, t, cfg, DecoderSession(dec))
            for key, v in want.items():
                assert got[key] == pytest.approx(v, abs=1e-12), (trial, key, a)
            checked += 1
        # malformed lines get the codec's own reason
        bad = answers[0].replace("<", " <", 1) + "<off_9_9>"
        want = c.try_decode_refinement(bad, geoms).error.reason
        assert score_stage2(bad, t, session, cfg)["reason"] == want
    assert checked == 60 * 7
