"""The studies' sample builders and per-turn / per-task metrics."""

from __future__ import annotations

import numpy as np
import pytest

from getok.codecs import get_codec
from getok.errors import ConfigError
from getok.ops.masks import rle_decode
from getok_lab.studies.common import SceneSeries
from getok_lab.studies.data import point_on_mask, refine_samples, task_samples


@pytest.fixture(scope="module")
def scenes():
    return SceneSeries(n_train=6, n_eval=1).generate("train")


@pytest.mark.parametrize("spec", ["text_coords:style=norm3", "bins:bins=112"])
def test_point_answers_decode_onto_the_target(scenes, spec):
    c = get_codec(spec)
    res = task_samples(scenes, spec, ["point>mask", "box>mask", "text>mask"], answer="point")
    assert len(res) > 10
    for s in res:
        assert s.kind == "point"
        (g,) = c.decode(s.answer, s.size, "point")
        m = rle_decode(s.truth["masks"][0])
        x, y = g.points[0]
        assert m[min(int(y), s.size[0] - 1), min(int(x), s.size[1] - 1)], s.sample_id
    # the point query is written in the same codec as the answer
    q = next(s for s in res if s.task == "point>mask")
    assert c.try_decode(q.answer, q.size, "point").valid
    assert ("<loc_" in q.turns[0].user) == spec.startswith("bins")


def test_native_answers_keep_the_codec(scenes):
    res = task_samples(scenes, "grid:n=8", ["box>mask"])
    assert res and all(s.kind == "mask" and s.answer.startswith("<g8_") for s in res)
    assert all("<g8_" in s.turns[0].user for s in res)  # the query box in grid tokens


def test_task_samples_rejects_non_mask_tasks_and_point_answers_without_points(scenes):
    with pytest.raises(ConfigError, match="mask tasks"):
        task_samples(scenes, "grid:n=8", ["text>box"])
    with pytest.raises(ConfigError, match="point answers"):
        task_samples(scenes, "polygon:vertex=text", ["text>mask"], answer="point")


def test_point_on_mask_respects_quantisation():
    m = np.zeros((112, 112), bool)
    m[50:53, 10:13] = True  # a 3-pixel square: the 8-grid's cell centres miss it
    assert point_on_mask(m, get_codec("grid:n=8")) is None
    p = point_on_mask(m, get_codec("bins:bins=112"))
    assert p is not None and m[int(p[1]), int(p[0])]


def test_refine_samples_vary_k_and_ask_the_point_question(scenes):
    spec = "grid_offset:n=8,r=1,step=0.5"
    ks = [1, 2, 6]
    res = refine_samples(scenes, spec, ks, ask="point")
    assert len(res) > 5
    sizes = set()
    c = get_codec(spec)
    for s in res:
        assert s.task == "refine" and len(s.turns) == 2
        assert s.turns[0].user.startswith("<image>") and "<g8_" in s.turns[0].user  # the point question
        prop = c.decode(s.turns[0].assistant, s.size, "mask")[0]
        k = len(prop.cells)
        assert k == s.meta["k"] and k in ks
        sizes.add(k)
        assert len(s.turns[1].assistant.replace("><", "> <").split()) == k  # one token per proposed cell
    assert sizes == set(ks)
    texts = refine_samples(scenes, spec, [3], ask="text")
    assert all("<g8_" not in s.turns[0].user for s in texts)
    with pytest.raises(ConfigError):
        refine_samples(scenes, "grid:n=8", [1])


def test_anchored_refine_samples_answer_the_named_cell_with_the_question_move(scenes):
    import re

    from getok.ops.grid import apply_offsets

    spec = "grid_offset:n=8,r=1,step=0.5"
    c = get_codec(spec)
    res = refine_samples(scenes, spec, [1, 3], ask="point", anchor=True)
    assert len(res) > 5
    moved = 0
    for s in res:
        a = s.meta["anchor"]
        cells = c.decode(s.turns[0].assistant, s.size, "mask")[0].cells.tolist()
        assert a["cell"] in cells  # the named cell is always proposed
        i = cells.index(a["cell"])
        # the question names the same cell + move ...
        assert c.encode_cells([a["cell"]]) + "<off_{}_{}>".format(*a["offset"]) in s.turns[0].user
        tok = re.findall(r"<[^>]+>", s.turns[1].assistant)[i]
        assert tok == "<off_{}_{}>".format(*a["offset"])  # ... and the refinement applies that move
        p = apply_offsets([a["cell"]], 8, s.size, [a["offset"]], 0.5)[0]
        m = rle_decode(s.truth["masks"][0])
        assert m[min(int(p[1]), s.size[0] - 1), min(int(p[0]), s.size[1] - 1)]  # which lands on the target
        moved += a["offset"] != [0, 0]
    assert moved > 0
    # without the anchor the named cell is not forced into the proposal
    plain = refine_samples(scenes, spec, [1, 3], ask="point")
    assert all("anchor" not in s.meta for s in plain)


def _rec(task, ious, oracle=None):
    def one(v):  # IoU v as pixel counts: 100 * v of a 100-pixel union
        return {"task": task, "valid": True, "iou": v, "inter": round(100 * v), "union": 100, "pred_area": 100,
                "gt_area": 100, "refine_valid": True, "n_tokens": 1, "n_objects": 1}  # fmt: skip

    turns = [one(v) for v in ious]
    orc = [one(v) for v in (oracle or [])]
    return {"task": task, "turns": turns, "oracle": orc, **turns[-1]}


def test_per_turn_counts_improved_and_worse():
    from getok_lab.studies.self_correction import per_turn

    recs = [_rec("point>mask", [0.2, 0.5, 0.5], [0.9, 0.9]), _rec("point>mask", [0.6, 0.4, 0.7], [0.6, 0.6]),
            _rec("box>mask", [0.0, 0.0, 0.0], [0.3, 0.4])]  # fmt: skip
    out = per_turn(recs, 3, ["point>mask", "box>mask"])
    m = out["all"]["model"]
    assert [r["turn"] for r in m] == [1, 2, 3]
    assert m[1]["improved"] == 1 and m[1]["worse"] == 1 and m[1]["same"] == 1
    assert m[2]["improved"] == 1 and m[2]["worse"] == 0
    assert out["point>mask"]["oracle"][1]["gIoU"] == pytest.approx(0.75)
    assert out["box>mask"]["oracle"][2]["improved"] == 1
    assert out["all"]["oracle"][0]["gIoU"] == pytest.approx(m[0]["gIoU"])  # turn 1 is the shared proposal


def test_summarize_records_pools_core_tasks_and_reads_a_turn():
    from getok_lab.studies.representations import summarize_records

    recs = [_rec("point>mask", [0.2, 0.8]), _rec("box>mask", [0.4, 0.4]), _rec("text>mask", [0.0, 0.0])]
    last = summarize_records(recs, ["point>mask", "box>mask", "text>mask"], ["point>mask", "box>mask"])
    first = summarize_records(recs, ["point>mask", "box>mask", "text>mask"], ["point>mask", "box>mask"], turn=1)
    assert last["core"]["n"] == 2 and last["core"]["gIoU"] == pytest.approx(0.6)
    assert first["core"]["gIoU"] == pytest.approx(0.3)
    assert last["per_task"]["text>mask"]["gIoU"] == 0.0
