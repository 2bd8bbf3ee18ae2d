"""Self-correction accounting on a scripted model whose turns are known."""

from __future__ import annotations

import numpy as np
import pytest

from getok.codecs.token_names import grid_token
from getok.data_builders.offsets import DEFAULT_REFINE
from getok.decoding.raster import raster_mask
from getok.errors import ConfigError
from getok.eval.runner import evaluate
from getok.eval.selfcorrect import POINT_KEYS, RefineState, SelfCorrectConfig, account_points, match_targets
from getok.geometry import Geometry
from getok.ops.masks import mask_iou

from .conftest import ScriptedModel, hand_sample

# 64 x 64 image, 8-grid (8 px cells), step 0.5 (4 px); target x in [16, 38), y in [16, 42)
CELLS = [(1, 1), (2, 2), (6, 2), (3, 3), (4, 4), (2, 5), (0, 7), (7, 7)]  # row-major, as the codec writes
PROPOSAL = "".join(grid_token(cx, cy, 8) for cx, cy in CELLS)
# turn 2: into, kept inside, moved outside, moved inside, out of, invalid delete, kept outside, valid delete
T2 = "<off_1_1><off_0_0><off_-1_0><off_0_1><off_1_0><DELETE><off_0_0><DELETE>"
# turn 3: moved inside, kept inside, kept outside, kept inside, into, (deleted: revive ignored), valid delete, (deleted)
T3 = "<off_1_1><off_0_0><off_0_0><off_0_0><off_-1_0><off_0_0><DELETE><DELETE>"
TURN2 = dict(points=8, into=1, out_of=1, moved_inside=1, moved_outside=1, kept_inside=1, kept_outside=1,
             valid_delete=1, invalid_delete=1, revive_ignored=0)  # fmt: skip
TURN3 = dict(points=6, into=1, out_of=0, moved_inside=1, moved_outside=0, kept_inside=2, kept_outside=1,
             valid_delete=1, invalid_delete=0, revive_ignored=1)  # fmt: skip


def _state_iou(mask, offsets, deleted) -> float:
    g = Geometry(size=(64, 64), cells=CELLS, grid_n=8, offsets=offsets, deleted=deleted, offset_step=0.5)
    return float(mask_iou(raster_mask(g), mask))


@pytest.fixture
def scripted_run(tmp_path):
    a, mask = hand_sample(tmp_path, "a")
    b, _ = hand_sample(tmp_path, "b")
    c, _ = hand_sample(tmp_path, "c")
    model = ScriptedModel({
        ("a", 1): PROPOSAL, ("a", 2): T2, ("a", 3): T3,
        ("b", 1): "I think it is the rectangle.",  # invalid proposal: no refinement asked
        ("c", 1): PROPOSAL, ("c", 2): "<off_0_0><off_0_0>", ("c", 3): "<off_0_0>" * 8,  # turn 2: wrong count
    })  # fmt: skip
    return [a, b, c], mask, model


def test_point_accounting_per_turn(scripted_run):
    samples, mask, model = scripted_run
    s = evaluate(None, None, samples, generate_fn=model, turns=3, progress=False, boundary=False, batch_size=3)
    rec = {r["id"]: r for r in _records(samples, model)}
    a = rec["a"]
    assert [p["turn"] for p in a["points"]] == [2, 3]
    assert {k: a["points"][0][k] for k in POINT_KEYS} == TURN2
    assert {k: a["points"][1][k] for k in POINT_KEYS} == TURN3
    # IoU of every turn equals the raster of the accumulated state (offsets summed, deletions sticky)
    zero = np.zeros((8, 2), int)
    t2_off = np.array([[1, 1], [0, 0], [-1, 0], [0, 1], [1, 0], [0, 0], [0, 0], [0, 0]])
    t2_del = np.array([0, 0, 0, 0, 0, 1, 0, 1], bool)
    t3_off = t2_off + np.array([[1, 1], [0, 0], [0, 0], [0, 0], [-1, 0], [0, 0], [0, 0], [0, 0]])
    t3_del = t2_del | np.array([0, 0, 0, 0, 0, 0, 1, 0], bool)
    expected = [_state_iou(mask, zero, np.zeros(8, bool)), _state_iou(mask, t2_off, t2_del), _state_iou(mask, t3_off, t3_del)]
    assert [t["iou"] for t in a["turns"]] == pytest.approx(expected)
    assert a["iou"] == pytest.approx(expected[-1])
    inst = a["turns"][2]["instances"][0]
    assert inst["offsets"] == t3_off.tolist() and inst["deleted"] == t3_del.tolist()
    # the summary's per-turn table
    sc = s["selfcorrect"]
    assert sc["turns"][2]["points"]["into"] == 1 and sc["turns"][3]["points"]["revive_ignored"] == 1
    assert sc["turns"][2]["refine_invalid"] == 1  # sample c; b was never asked
    assert sc["n_no_proposal"] == 1
    d2 = sc["turns"][2]
    assert d2["improved"] + d2["worse"] + d2["same"] == 3
    exp_improved = int(expected[1] > expected[0] + 1e-9)
    assert d2["improved"] == exp_improved and d2["same"] >= 2  # b (skipped) and c (kept) stay


def _records(samples, model):
    from getok.decoding import get_decoder
    from getok.eval.generate import load_sample_image
    from getok.eval.selfcorrect import run_selfcorrect

    model.calls.clear()
    return run_selfcorrect(samples, model, codec=samples[0].codec, decoder=get_decoder("raster"),
                           images=[load_sample_image(s) for s in samples], cfg=SelfCorrectConfig(turns=3), boundary=False)  # fmt: skip


def test_conversation_and_skips(scripted_run):
    samples, _, model = scripted_run
    recs = {r["id"]: r for r in _records(samples, model)}
    asked = {(c["id"], c["turn"]) for c in model.calls}
    assert ("b", 2) not in asked and ("a", 3) in asked and ("c", 3) in asked
    ctx = next(c["context"] for c in model.calls if c["id"] == "a" and c["turn"] == 3)
    assert [t.assistant for t in ctx[:2]] == [PROPOSAL, T2]
    assert ctx[1].user == DEFAULT_REFINE and ctx[2].user == DEFAULT_REFINE and ctx[0].user.startswith("<image>")
    b = recs["b"]
    assert not b["turns"][0]["valid"] and b["turns"][0]["invalid_reason"] == "stray_text"
    assert [t.get("skipped") for t in b["turns"][1:]] == ["no_proposal", "no_proposal"]
    c = recs["c"]
    assert c["turns"][1]["refine_valid"] is False and c["turns"][1]["refine_reason"] == "count_mismatch"
    assert c["turns"][1]["iou"] == pytest.approx(c["turns"][0]["iou"])  # "keep": the proposal stands
    assert c["turns"][2]["refine_valid"] is True  # turn 3 refines the kept proposal


def test_on_invalid_zero(scripted_run):
    samples, _, model = scripted_run
    s = evaluate(None, None, samples, generate_fn=model, turns=2, on_invalid="zero", progress=False, boundary=False)
    assert s["selfcorrect"]["turns"][2]["invalid_rate"] == pytest.approx(2 / 3)  # b (turn 1 invalid) and c


def test_oracle_baseline_never_breaks_points(scripted_run):
    samples, mask, model = scripted_run
    recs = {r["id"]: r for r in _records(samples, model)}
    for rid in ("a", "c"):
        for p in recs[rid]["oracle_points"]:
            assert p["out_of"] == 0 and p["invalid_delete"] == 0 and p["moved_outside"] == 0
        assert len(recs[rid]["oracle"]) == 2
        assert recs[rid]["oracle"][0]["iou"] >= recs[rid]["turns"][0]["iou"] - 1e-9
    assert recs["b"]["oracle"] == []


def test_account_points_sticky_and_valid_delete():
    size = (64, 64)
    g = Geometry(size=size, cells=[[7, 7], [2, 5]], grid_n=8)
    st = RefineState.initial([g], 0.5)
    m = np.zeros(size, bool)
    m[16:42, 16:38] = True
    turn = [g.replace(offsets=[[0, 0], [0, 0]], deleted=[True, True], offset_step=0.5)]
    c = account_points(st, turn, [m], r=1)
    assert (c["valid_delete"], c["invalid_delete"]) == (1, 1)
    st2 = st.apply(turn)
    again = [g.replace(offsets=[[1, 0], [0, 0]], deleted=[False, False], offset_step=0.5)]
    st3 = st2.apply(again)
    assert st3.deleted[0].tolist() == [True, True] and st3.offsets[0].tolist() == [[0, 0], [0, 0]]
    assert account_points(st2, again, [m], r=1)["revive_ignored"] == 2
    # unmatched instance: empty target, every delete is valid
    assert account_points(st, turn, [None], r=1)["valid_delete"] == 2


def test_match_targets_uses_iou_then_distance():
    p = np.zeros((2, 10, 10), bool)
    p[0, :3, :3] = True
    p[1, 7:, 7:] = True
    t = np.zeros((1, 10, 10), bool)
    t[0, 8:, 8:] = True
    assert match_targets(p, t) == [-1, 0]
    far = np.zeros((1, 10, 10), bool)
    far[0, 5, 5] = True
    cent = np.array([[1.5, 1.5], [9.0, 9.0]])
    assert match_targets(np.zeros((2, 10, 10), bool), far, cent) == [-1, 0]


def test_config_validation():
    with pytest.raises(ConfigError, match="turns"):
        SelfCorrectConfig(turns=1)
    with pytest.raises(ConfigError, match="on_invalid"):
        SelfCorrectConfig(on_invalid="drop")
