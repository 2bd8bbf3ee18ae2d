"""The base models' own grounding formats as ``text_coords`` styles: Qwen3-VL (relative 0–1000) and Qwen2.5-VL
(absolute pixels of the resized input) — goldens, the resize rule against transformers' processor, round
trips back to original pixels, the base model's own answer forms, malformed answers, spec stability."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from getok import DecodeError, Geometry, get_codec
from getok.codecs.text_coords import QWEN2_5_MAX_PIXELS, QWEN2_5_MIN_PIXELS, smart_resize
from getok.errors import ConfigError
from getok.ops import mask_iou
from getok.ops.raster import raster_mask
from tests.conftest import disk

Q3 = "text_coords:style=qwen3"
Q25 = "text_coords:style=qwen2_5"
Q25_7B = "text_coords:style=qwen2_5,max_pixels=1003520"  # configs/sft/qwen2_5_vl_7b.yaml's model.max_pixels


def golden_geometry():
    m = np.zeros((40, 40), bool)
    m[4:20, 8:24] = True  # a 16 x 16 square
    return Geometry(size=(40, 40), mask=m, box=[8, 4, 24, 20], points=[[16, 12]])


GOLDENS = {
    (Q3, "point"): '{"point_2d": [400, 300]}',
    (Q3, "box"): '{"bbox_2d": [200, 100, 600, 500]}',
    (Q3, "mask"): '{"polygon_2d": [[200, 100], [600, 100], [600, 500], [200, 500]]}',
    (Q3, "polyline"): '{"points_2d": [[400, 300]]}',
    # a 40 x 40 image is seen by Qwen2.5-VL as 56 x 56 (min_pixels 3136): x' = round(x * 56 / 40)
    (Q25, "point"): '{"point_2d": [22, 17]}',
    (Q25, "box"): '{"bbox_2d": [11, 6, 34, 28]}',
    (Q25, "mask"): '{"polygon_2d": [[11, 6], [34, 6], [34, 28], [11, 28]]}',
}


@pytest.mark.parametrize("spec,kind", list(GOLDENS))
def test_golden_strings(spec, kind):
    assert get_codec(spec).encode([golden_geometry()], kind=kind) == GOLDENS[(spec, kind)]


# ---------------------------------------------------------------------------------------------- specs
def test_specs_old_styles_unchanged_resize_bounds_only_with_qwen2_5():
    from getok.vocab import VocabLayout

    assert get_codec("text_coords").spec == "text_coords:style=norm3,eps=0.01,holes=false"
    assert get_codec("text_coords:style=int1000").spec == "text_coords:style=int1000,eps=0.01,holes=false"
    # the layout hash of text_coords datasets built before the Qwen styles existed
    assert VocabLayout.from_codecs(["text_coords"]).hash == VocabLayout(
        codecs=["text_coords:style=norm3,eps=0.01,holes=false"], tokens=[]).hash  # fmt: skip
    assert get_codec(Q3).spec == "text_coords:style=qwen3,eps=0.01,holes=false"
    assert get_codec(Q25).spec == (
        f"text_coords:style=qwen2_5,eps=0.01,holes=false,min_pixels={QWEN2_5_MIN_PIXELS},"
        f"max_pixels={QWEN2_5_MAX_PIXELS},factor=28"
    )
    for spec in (Q3, Q25, Q25_7B, "text_coords:style=qwen2_5,min_pixels=1024,max_pixels=65536,factor=32"):
        c = get_codec(spec)
        assert get_codec(c.spec) == c and c.new_tokens() == []
    assert get_codec(Q25) != get_codec(Q25_7B)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("text_coords:style=qwen3,max_pixels=1003520", "only style=qwen2_5 uses the resize bounds"),
        ("text_coords:style=norm3,factor=32", "only style=qwen2_5"),
        ("text_coords:style=qwen2_5,min_pixels=10000,max_pixels=100", "min_pixels .* must be <="),
        ("text_coords:style=qwen2_5,factor=0", "factor must be a positive int"),
        ("text_coords:style=qwen", "style must be one of"),
    ],
)
def test_bad_specs_name_the_field(spec, match):
    with pytest.raises(ConfigError, match=match):
        get_codec(spec)


# ---------------------------------------------------------------------------------------------- the resize rule
def test_smart_resize_is_transformers_rule():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

    rng = random.Random(0)
    bounds = [(QWEN2_5_MIN_PIXELS, QWEN2_5_MAX_PIXELS), (3136, 1003520), (56 * 56, 112 * 112), (256 * 28 * 28, 1280 * 28 * 28)]
    sizes = [(1, 1), (13, 200), (100, 200), (112, 112), (1080, 1920), (4000, 3000), (27, 29), (640, 427)]
    sizes += [(rng.randint(8, 5000), rng.randint(8, 5000)) for _ in range(300)]
    for h, w in sizes:
        if max(h, w) / min(h, w) > 200:
            continue
        for lo, hi in bounds:
            assert smart_resize(h, w, 28, lo, hi) == hf_smart_resize(h, w, 28, lo, hi), (h, w, lo, hi)


@pytest.mark.parametrize("max_pixels", [QWEN2_5_MAX_PIXELS, 1003520, 112 * 112])
def test_resized_size_is_what_qwen2_5_vls_processor_feeds_the_model(max_pixels):
    """The frame of ``style=qwen2_5`` is the image Qwen2.5-VL's processor makes: ``image_grid_thw`` x 14."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    ip = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=3136, max_pixels=max_pixels)
    codec = get_codec(f"text_coords:style=qwen2_5,max_pixels={max_pixels}")
    for h, w in [(100, 200), (480, 640), (1080, 1920), (37, 300), (112, 112)]:
        thw = ip(images=[Image.new("RGB", (w, h))], return_tensors="np")["image_grid_thw"][0]
        assert codec.resized_size((h, w)) == (int(thw[1]) * 14, int(thw[2]) * 14), (h, w)


def test_qwen2_5_decodes_back_to_original_pixels():
    """A box in a 1080 x 1920 photo: written in the 728 x 1316 pixels the 7B recipe's processor makes of it,
    decoded back to the photo's pixels (error at most half a resized pixel, in original pixels)."""
    c = get_codec(Q25_7B)
    size = (1080, 1920)
    assert c.resized_size(size) == (728, 1316)
    box = np.array([100.3, 200.7, 1500.2, 1000.9])
    text = c.encode([Geometry(size=size, box=box)], kind="box")
    x1, y1, x2, y2 = json.loads(text)["bbox_2d"]
    assert (x1, y1, x2, y2) == (round(100.3 * 1316 / 1920), round(200.7 * 728 / 1080),
                                round(1500.2 * 1316 / 1920), round(1000.9 * 728 / 1080))  # fmt: skip
    back = c.decode(text, size, kind="box")[0].box
    tol = 0.5 * np.array([1920 / 1316, 1080 / 728] * 2)
    assert np.all(np.abs(back - box) <= tol + 1e-9)
    # the model's own coordinates are not the original ones: reading them as original pixels would be wrong
    assert abs(x2 - 1500.2) > 400
    # Qwen3-VL: relative, the same whatever the processor does
    q3 = get_codec(Q3).encode([Geometry(size=size, box=box)], kind="box")
    assert q3 == '{"bbox_2d": [52, 186, 781, 927]}'


SIZES = [(64, 80), (480, 640), (33, 500)]


@pytest.mark.parametrize("spec", [Q3, Q25, Q25_7B])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_point_and_box_round_trips_within_half_a_unit(spec, data):
    c = get_codec(spec)
    size = data.draw(st.sampled_from(SIZES))
    h, w = size
    rh, rw = (1000, 1000) if "qwen3" in spec else c.resized_size(size)
    tol = 0.5 * np.array([w / rw, h / rh])  # half a unit of the answer's frame, in original pixels
    xs = sorted(data.draw(st.lists(st.floats(0, w), min_size=2, max_size=2)))
    ys = sorted(data.draw(st.lists(st.floats(0, h), min_size=2, max_size=2)))
    g = Geometry(size=size, box=[xs[0], ys[0], xs[1], ys[1]], points=[[xs[0], ys[1]]])
    for kind in ("point", "box"):
        s = c.encode([g], kind=kind)
        out = c.decode(s, size, kind=kind)[0]
        got = out.points[0] if kind == "point" else out.box.reshape(2, 2)
        want = g.points[0] if kind == "point" else g.box.reshape(2, 2)
        assert np.all(np.abs(got - want) <= tol + 1e-9)
        assert c.encode([out], kind=kind) == s  # idempotent


@pytest.mark.parametrize("spec", [Q3, Q25])
def test_masks_round_trip_with_several_polygons_and_holes(spec):
    size = (120, 160)
    two = disk(size, (50, 60), 30) | disk(size, (130, 30), 15)
    c = get_codec(spec)
    s = c.encode([Geometry(size=size, mask=two)])
    assert s.startswith('{"polygon_2d": [[[')  # two rings
    out = c.decode(s, size)[0]
    assert len(out.polygons) == 2 and mask_iou(raster_mask(out), two) > 0.85
    assert c.encode([out]) == s
    ring = disk(size, (80, 60), 40) & ~disk(size, (80, 60), 15)
    ch = get_codec(spec + ",holes=true")
    out = ch.decode(ch.encode([Geometry(size=size, mask=ring)]), size)[0]
    assert len(out.holes) == 1 and not raster_mask(out)[60, 80]


# ---------------------------------------------------------------------------------------------- the base model's answers
def test_reads_the_base_models_own_answers():
    """What Qwen2.5-VL / Qwen3-VL write when asked to ground: a JSON list (often fenced, with labels)."""
    c = get_codec(Q3)
    size = (100, 200)
    native = '```json\n[\n\t{"bbox_2d": [100, 100, 500, 500], "label": "dog"},\n\t{"bbox_2d": [0, 0, 1000, 1000], "label": "sofa"}\n]\n```'
    a, b = c.decode(native, size, kind="box")
    assert a.box.tolist() == [20.0, 10.0, 100.0, 50.0] and b.box.tolist() == [0.0, 0.0, 200.0, 100.0]
    assert c.decode("[]", size, kind="box") == [] and c.decode("```json\n[]\n```", size, kind="box") == []
    assert c.decode('{\n  "point_2d": [500, 500],\n  "label": "cat"\n}', size, kind="point")[0].points.tolist() == [[100.0, 50.0]]
    # getok's own grammar: one object per line
    two = '{"point_2d": [500, 500]}\n{"point_2d": [0, 1000]}'
    assert [g.points.tolist() for g in c.decode(two, size, kind="point")] == [[[100.0, 50.0]], [[0.0, 100.0]]]
    assert c.decode("none", size) == []
    # a one-object list on its own line (what a reward decodes line by line)
    assert len(c.decode('[{"point_2d": [1, 2]}]', size, kind="point")) == 1
    # a mask question answered with the base model's box: the box is the region
    g = c.decode('{"bbox_2d": [100, 100, 500, 500], "label": "dog"}', size, kind="mask")[0]
    assert g.box.tolist() == [20.0, 10.0, 100.0, 50.0] and raster_mask(g).sum() == 80 * 40


MALFORMED = [
    ('{"bbox_2d": [100, 100, 500]}', "box", "bad_count"),
    ('{"bbox_2d": [100, 100, 500, 500, 7]}', "box", "bad_count"),
    ('{"bbox_2d": [300, 100, 100, 400]}', "box", "bad_box"),
    ('{"bbox_2d": [100, 100, 500, 1001]}', "box", "out_of_range"),
    ('{"bbox_2d": [-1, 100, 500, 500]}', "box", "out_of_range"),
    ('{"bbox_2d": [100.5, 100, 500, 500]}', "box", "out_of_range"),
    ('{"bbox_2d": [NaN, 100, 500, 500]}', "box", "out_of_range"),
    ('{"bbox_2d": [1e400, 100, 500, 500]}', "box", "out_of_range"),
    ('{"bbox_2d": [' + "9" * 400 + ', 1, 2, 3]}', "box", "out_of_range"),
    ('{"bbox_2d": [true, 100, 500, 500]}', "box", "bad_structure"),
    ('{"bbox_2d": ["100", 100, 500, 500]}', "box", "bad_structure"),
    ('{"bbox_2d": [[100, 100], [500, 500]]}', "box", "bad_structure"),
    ('{"point_2d": [100, 100]}', "box", "bad_structure"),  # the wrong key for the question
    ('{"bbox_2d": [100, 100, 500, 500]', "box", "bad_structure"),  # unclosed
    ('[{"bbox_2d": [100, 100, 500, 500]}, 3]', "box", "bad_structure"),
    ('[{"bbox_2d": [100, 100, 500, 500]}', "box", "bad_structure"),
    ("[100, 100, 500, 500]", "box", "bad_structure"),  # text_coords' number list is not this style
    ('{"point_2d": [100]}', "point", "bad_count"),
    ('{"points_2d": []}', "polyline", "bad_structure"),
    ('{"polygon_2d": [[1, 2], [3]]}', "mask", "bad_structure"),
    ('{"polygon_2d": "a circle"}', "mask", "bad_structure"),
    ('{"polygon_2d": [[[1, 2], [3, 4], [5, 6]], [1, 2]]}', "mask", "bad_structure"),
    ("[" * 5000 + "]" * 5000, "box", "bad_structure"),
    ('{"a": ' * 3000 + "1" + "}" * 3000, "box", "bad_structure"),
    ("The dog is on the left.", "box", "bad_structure"),
    ('none\n{"bbox_2d": [1, 2, 3, 4]}', "box", "bad_structure"),
]


@pytest.mark.parametrize("text, kind, reason", MALFORMED)
def test_malformed_answers_are_invalid_with_a_reason(text, kind, reason):
    for spec in (Q3, Q25):
        r = get_codec(spec).try_decode(text, (480, 640), kind=kind)
        assert not r.valid and r.geometries == [] and r.error.reason == reason, (spec, r.error)


def test_qwen2_5_range_is_the_resized_image():
    c = get_codec(Q25)
    size = (480, 640)  # seen as 476 x 644
    assert c.resized_size(size) == (476, 644)
    assert c.decode('{"point_2d": [644, 476]}', size, kind="point")[0].points.tolist() == [[640.0, 480.0]]
    with pytest.raises(DecodeError, match=r"outside \[0, 644\] x \[0, 476\]") as exc:
        c.decode('{"point_2d": [645, 10]}', size, kind="point")
    assert exc.value.reason == "out_of_range"


PIECES = ['{"bbox_2d": [', '{"point_2d": [', '{"polygon_2d": [[', '{"points_2d": [[', '"label": "x"', "[", "]", "{",
          "}", ",", ", ", " ", "0", "1", "7", "500", "999", "1000", "1001", "-3", "2.5", "1e9", "NaN", "true", '"',
          ":", "\n", "none", "```json\n", "\n```", "[[1, 2], [3, 4], [5, 6]]", "[10, 20]", "[10, 20, 30, 40]"]  # fmt: skip


@pytest.mark.parametrize("spec", [Q3, Q25])
def test_fuzzed_json_like_answers_raise_only_decode_error(spec):
    c = get_codec(spec)
    rng = random.Random(spec)
    valid = 0
    for _ in range(6000):
        kind = rng.choice(c.kinds)
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 16)))
        try:
            out = c.decode(text, (64, 80), kind=kind)
        except DecodeError as exc:
            assert exc.reason
            continue
        valid += 1
        for g in out:
            assert isinstance(g, Geometry) and g.size == (64, 80)
            assert raster_mask(g).shape == (64, 80)
    assert valid > 0


# ---------------------------------------------------------------------------------------------- one switch
@pytest.mark.parametrize("spec", [Q3, "text_coords:style=qwen2_5,max_pixels=12544"])
def test_the_styles_go_through_task_building_and_rewards_unchanged(spec):
    """Switching a run from grid tokens to the base model's format is the codec spec: tasks are built (point
    and box queries written in the same style), their answers decode, and the rewards score them (polygon
    reward for masks, like every ``text_coords`` mask answer)."""
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import TaskConfig, build_tasks
    from getok.rl.rewards import score_response
    from getok.rl.truth import pack_truth

    tasks = ("text>mask", "text>box", "point>mask", "box>mask", "multi>mask", "none>mask")
    samples = build_tasks(generate_scenes(2, seed=0), spec, TaskConfig(tasks=tasks))
    assert {s.task for s in samples} == set(tasks) and not samples.skipped
    c = get_codec(spec)
    assert all('{"point_2d": [' in s.turns[0].user for s in samples if s.task == "point>mask")
    for s in samples:
        answer = s.turns[-1].assistant
        out = c.decode(answer, tuple(s.size), kind=s.kind)
        assert len(out) == len(s.truth["masks"]) or (s.task == "none>mask" and out == [])
    m = np.zeros((100, 120), bool)
    m[20:60, 30:90] = True
    for task, kind in (("polygon", "mask"), ("stage1", "box")):
        truth = pack_truth((100, 120), [m], codec=spec, kind=kind)
        ans = c.encode([Geometry(size=(100, 120), mask=m)], kind=kind)
        score = score_response(f"<think>a box</think><answer>{ans}</answer>", truth, task=task)
        assert score["invalid"] == 0.0 and score["mask_iou"] == 1.0, score
        bad = score_response("<think>a box</think><answer>{\"bbox_2d\": [1, 2]}</answer>", truth, task=task)
        assert bad["invalid"] == 1.0
