import numpy as np
import pytest

from getok.errors import ConfigError
from getok.geometry import Geometry
from getok.ops.grid import mask_to_cells
from getok.rl.rewards import RewardScorer, Stage1Config, score_response, score_stage1
from getok.rl.rewards_common import non_repeat, ramp
from getok.rl.rewards_decoding import DecoderSession
from getok.rl.rewards_stage1 import STAGE1_KEYS, point_score, point_spacing
from getok.rl.truth import pack_truth, unpack_truth

from .conftest import cells_line, disk, generic_raster, mask_line, random_rect_masks, rect, wrap

N = 8


def truth_of(size, masks, **kw):
    return pack_truth(size, masks, codec=f"grid:n={N}", **kw)


def test_perfect_answer_scores_full_geometry(scene3):
    size, masks = scene3
    s = score_response(wrap("\n".join(mask_line(m, N) for m in masks)), truth_of(size, masks))
    assert s["invalid"] == 0.0 and s["reason"] == ""
    assert s["format"] == 1.0 and s["non_repeat"] == 1.0
    assert s["mask"] == 1.0 and s["mask_iou"] == 1.0 and s["box"] == pytest.approx(1.0)
    assert 0 < s["points"] <= 1 and 0 < s["overall"] <= 1
    assert set(STAGE1_KEYS) <= set(s)


def test_order_of_predicted_instances_does_not_matter():
    rng = np.random.default_rng(0)
    size = (48, 64)
    for _ in range(25):
        masks = [disk(size, *rng.uniform(8, 40, 2), rng.uniform(4, 12)) for _ in range(3)]
        lines = []
        for m in masks:  # noisy answers, sometimes overlapping one another
            cells = mask_to_cells(m, N)
            keep = cells[rng.random(len(cells)) < 0.8] if len(cells) > 1 else cells
            extra = rng.integers(0, N, (int(rng.integers(0, 3)), 2))
            lines.append(cells_line(np.concatenate([keep, extra]) if len(keep) else extra, N))
        lines.append(cells_line(rng.integers(0, N, (3, 2)), N))  # a spurious instance
        truth = truth_of(size, masks)
        ref = score_response(wrap("\n".join(lines)), truth)
        for _ in range(4):
            perm = rng.permutation(len(lines))
            s = score_response(wrap("\n".join(lines[i] for i in perm)), truth)
            assert s == ref


def test_more_correct_cells_never_lower_the_mask_reward():
    rng = np.random.default_rng(1)
    size, n, c = (64, 64), 16, 4  # 16-grid: 4 x 4 pixel cells
    for _ in range(30):
        target = disk(size, *rng.uniform(16, 48, 2), rng.uniform(8, 16))
        # cells whose pixels all lie on the target
        inside = [q for q in mask_to_cells(target, n) if target[q[1] * c : q[1] * c + c, q[0] * c : q[0] * c + c].all()]
        assert len(inside) >= 2
        outside = rng.integers(0, n, (int(rng.integers(0, 4)), 2))
        truth = pack_truth(size, [target], codec=f"grid:n={n}")
        order = rng.permutation(len(inside))
        prev_mask, prev_iou, first_iou = -1.0, -1.0, None
        for k in range(1, len(inside) + 1):
            cells = np.concatenate([np.asarray(inside)[order[:k]], outside])
            s = score_response(wrap(cells_line(cells, n)), truth)
            assert s["mask"] >= prev_mask and s["mask_iou"] >= prev_iou
            prev_mask, prev_iou = s["mask"], s["mask_iou"]
            first_iou = s["mask_iou"] if first_iou is None else first_iou
        assert prev_iou > first_iou


def test_piled_points_score_below_spread_points():
    size = (64, 64)
    target = rect(size, 8, 8, 56, 56)
    area = target.sum()
    spread = np.array([[x, y] for x in (14, 26, 38, 50) for y in (14, 26, 38, 50)], dtype=float)
    piled = np.repeat([[32.0, 32.0]], 16, axis=0)
    assert point_spacing(piled, area) == 0.0
    assert point_spacing(spread, area) == 1.0
    assert point_score(piled, target, area) < point_score(spread, target, area)
    # through a response: the same cell repeated vs distinct cells over the object
    truth = truth_of(size, [target])
    piled_s = score_response(wrap(cells_line([[3, 3]] * 6, N)), truth)
    spread_s = score_response(wrap(cells_line([[1, 1], [3, 1], [5, 1], [1, 5], [3, 5], [5, 5]], N)), truth)
    assert piled_s["points"] < spread_s["points"]


def test_point_score_shape():
    m = rect((40, 40), 0, 0, 40, 40)
    one = point_score([[20, 20]], m, 1600, n0=3, lam=0)
    assert one == pytest.approx(1 - np.exp(-1 / 3))
    outside = point_score([[5, 5]], rect((40, 40), 20, 20, 40, 40), 400)
    assert outside == 0.0
    many = np.stack(np.meshgrid(np.arange(2, 40, 4.0), np.arange(2, 40, 4.0)), -1).reshape(-1, 2)
    assert point_score(many, m, 1600, lam=0.0) > point_score(many, m, 1600, lam=0.005)


def test_no_target_cases():
    size = (32, 32)
    empty = truth_of(size, [])
    s = score_response(wrap("none"), empty)
    assert s["overall"] == 1.0 and s["mask"] == s["box"] == s["points"] == 1.0
    fp = score_response(wrap(cells_line([[1, 1]], N)), empty)
    assert fp["mask"] == fp["box"] == fp["points"] == 0.0 and fp["invalid"] == 0.0
    miss = score_response(wrap("none"), truth_of(size, [rect(size, 0, 0, 8, 8)]))
    assert miss["mask"] == miss["box"] == miss["points"] == 0.0 and miss["overall"] < 0.5


def test_missing_and_extra_instances_are_averaged_over_max_count(scene3):
    size, masks = scene3
    truth = truth_of(size, masks)
    two = score_response(wrap("\n".join(mask_line(m, N) for m in masks[:2])), truth)
    assert two["mask"] == pytest.approx(2 / 3)
    extra = score_response(wrap("\n".join([mask_line(m, N) for m in masks] + [cells_line([[7, 7]], N)])), truth)
    assert extra["mask"] == pytest.approx(3 / 4)


@pytest.mark.parametrize(
    "response,reason",
    [
        ("<answer><g8_r0_c0></answer>", "format"),
        ("<think>x</think><answer></answer>", "empty"),
        ("<think>x</think><answer><g8_r0_c9></answer>", "unknown_token"),
        ("<think>x</think><answer><g8_r0_c0> hello</answer>", "stray_text"),
        ("<think>x</think><answer><g8_r0_c0>\nnone</answer>", "bad_structure"),
        ("<think>x</think><answer><g16_r00_c00></answer>", "unknown_token"),
    ],
)
def test_malformed_output_scores_zero_with_a_flag(response, reason):
    s = score_response(response, truth_of((32, 32), [rect((32, 32), 0, 0, 8, 8)]))
    assert s["overall"] == 0.0 and s["invalid"] == 1.0 and s["reason"] == reason
    assert all(s[k] == 0.0 for k in ("format", "non_repeat", "mask", "box", "points"))


def test_bad_truth_and_non_text_never_raise():
    assert score_response(wrap("none"), "{broken")["reason"] == "bad_truth"
    assert score_response(None, truth_of((8, 8), []))["reason"] == "not_text"
    assert score_response(wrap("none"), pack_truth((8, 8), []))["reason"] == "no_codec"


def test_non_repeat():
    assert non_repeat("One. Two. Three.", ["a", "b"]) == 1.0
    assert non_repeat("Same. same.  Same!", ["a"]) == pytest.approx(1 / 3)
    # the same cells written in another order are a duplicated instance
    assert non_repeat("", ["<g8_r0_c0><g8_r0_c1>", "<g8_r0_c1><g8_r0_c0>"]) == 0.5
    size = (32, 32)
    truth = truth_of(size, [rect(size, 0, 0, 8, 8)])
    s = score_response(wrap("<g8_r0_c0>\n<g8_r0_c0>", think="Look. Look. Look."), truth)
    assert s["non_repeat"] == pytest.approx((1 / 3) * 0.5)


def test_ramp_and_mask_floor_ceiling():
    assert [ramp(x, 0.3, 0.9) for x in (0.0, 0.29, 0.6, 0.9, 1.0)] == pytest.approx([0, 0, 0.5, 1, 1])
    size = (32, 32)
    target = rect(size, 0, 0, 16, 16)  # 16 cells of the 8-grid (4 x 4 pixels each)
    truth = truth_of(size, [target])
    half = wrap(cells_line([[0, 0], [1, 0], [2, 0], [3, 0], [0, 1], [1, 1], [2, 1], [3, 1]], N))
    s = score_stage1(half, unpack_truth(truth))
    assert s["mask_iou"] == pytest.approx(0.5) and s["mask"] == pytest.approx((0.5 - 0.3) / 0.6)
    assert score_stage1(half, unpack_truth(truth), config=Stage1Config(mask_floor=0.6, mask_ceil=0.9))["mask"] == 0.0
    assert score_stage1(half, unpack_truth(truth), config=Stage1Config(mask_floor=0.1, mask_ceil=0.5))["mask"] == 1.0


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="mask_floor"):
        Stage1Config(mask_floor=0.9, mask_ceil=0.5)
    with pytest.raises(ConfigError, match="w_box"):
        Stage1Config(w_box=-1)
    with pytest.raises(ConfigError, match="envelope"):
        Stage1Config(envelope="xml")


def test_bare_answers_with_envelope_any():
    size = (32, 32)
    truth = unpack_truth(truth_of(size, [rect(size, 0, 0, 8, 8)]))
    strict = score_stage1("<g8_r0_c0><g8_r0_c1><g8_r1_c0><g8_r1_c1>", truth)
    lenient = score_stage1("<g8_r0_c0><g8_r0_c1><g8_r1_c0><g8_r1_c1>", truth, config=Stage1Config(envelope="any"))
    assert strict["invalid"] == 1.0 and lenient["mask_iou"] == 1.0


class BoxDecoder:
    """A decoder that answers the box around the cells (a stand-in for any MaskDecoder)."""

    name = "box"
    needs_image = True

    def __init__(self):
        self.calls = []

    def set_image(self, image, size=None, key=None):
        self.calls.append(key)

    def decode(self, g: Geometry) -> np.ndarray:
        m = np.zeros(g.size, bool)
        pts = g.cell_centers()
        x1, y1 = np.floor(pts.min(0)).astype(int)
        x2, y2 = np.ceil(pts.max(0)).astype(int)
        m[y1 : y2 + 1, x1 : x2 + 1] = True
        return m


def test_any_mask_decoder_and_one_set_image_per_image():
    size = (32, 32)
    dec = BoxDecoder()
    scorer = RewardScorer(decoder=dec)
    t1 = truth_of(size, [rect(size, 0, 0, 16, 16)], image_id="a")
    t2 = truth_of(size, [rect(size, 8, 8, 24, 24)], image_id="b")
    items = [{"response": wrap(cells_line([[0, 0], [3, 3]], N)), "truth": t} for t in (t1, t2, t1, t2, t1)]
    scores = scorer.score_batch(items)
    assert dec.calls == ["a", "b"]  # grouped by image: one set_image each
    assert scores[0] == scores[2] == scores[4] and scores[1] == scores[3]
    # the box decoder's mask of cells (0,0)..(3,3) is rows/cols 2..14, IoU with the 16x16 target < 1
    assert 0.5 < scores[0]["mask_iou"] < 1.0


def test_session_caches_lines_within_an_image():
    size = (32, 32)
    truth = unpack_truth(truth_of(size, [rect(size, 0, 0, 8, 8)]))
    sess = DecoderSession()
    for _ in range(3):
        score_stage1(wrap("<g8_r0_c0>"), truth, sess)
    assert sess.misses == 1 and sess.hits == 2 and sess.set_image_calls == 1


def test_decoders_that_need_pixels_load_the_truth_image_once():
    size = (32, 32)
    loaded = []

    def loader(path):
        loaded.append(path)
        return np.zeros((*size, 3), np.uint8)

    dec = BoxDecoder()
    scorer = RewardScorer(decoder=DecoderSession(dec, image_loader=loader))
    t = truth_of(size, [rect(size, 0, 0, 16, 16)], image="imgs/a.jpg")
    scorer.score_batch([{"response": wrap("<g8_r0_c0>"), "truth": t}] * 4)
    assert loaded == ["imgs/a.jpg"] and dec.calls == ["imgs/a.jpg"]
    # the weight-free default never reads pixels
    assert RewardScorer().score(wrap("<g8_r0_c0>"), t)["invalid"] == 0.0


def test_cell_lookups_equal_the_generic_path():
    """Plain grid answers under the raster decoder are scored in cell space (hits read from a table of the
    label bits at cell centres, repeats counted per cell, centres from a table); every component equals the
    generic path (decoded crops, float points), on odd image sizes and answers with repeated cells."""
    from getok.decoding.raster import RasterDecoder

    rng = np.random.default_rng(3)
    checked = 0
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(9, 70, 2))
        n = int(rng.choice([4, 8, 16]))
        masks = random_rect_masks(rng, (h, w), 3)
        t = unpack_truth(pack_truth((h, w), masks, codec=f"grid:n={n}"))
        cfg = Stage1Config(envelope="any", n0=float(rng.choice([1.0, 3.0])), spacing_kappa=float(rng.choice([0.5, 3.0])))
        fast, slow = DecoderSession(RasterDecoder()), DecoderSession(generic_raster())
        for _ in range(5):
            lines = []
            for _ in range(int(rng.integers(1, 4))):
                cells = rng.integers(0, n, (int(rng.integers(1, 9)), 2))
                if rng.random() < 0.5:
                    cells = np.concatenate([cells, cells[:2]])  # repeated cells
                lines.append(cells_line(cells, n))
            a = "\n".join(lines)
            got, want = score_stage1(a, t, fast, cfg), score_stage1(a, t, slow, cfg)
            assert got["invalid"] == want["invalid"] == 0.0
            for key, v in want.items():
                assert got[key] == pytest.approx(v, abs=1e-12), (trial, key, a)
            checked += 1
    assert checked == 200
