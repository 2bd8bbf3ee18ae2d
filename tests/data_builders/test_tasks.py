"""Unified query tasks: every task in every codec, queries in the codec, ground truth, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from getok.answers import parse_response
from getok.codecs import get_codec
from getok.data_builders.scenes import generate_scenes
from getok.data_builders.tasks import TASKS, TaskConfig, build_tasks
from getok.errors import ConfigError, GeometryError
from getok.geometry import Geometry
from getok.ops.boxes import mask_to_box
from getok.ops.masks import rle_decode
from getok.records import AnnotatedImage, AnnotatedObject


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(12, seed=3)


@pytest.fixture(scope="module")
def grid_samples(scenes):
    return build_tasks(scenes, "grid:n=32", TaskConfig(tasks=TASKS))


def _objects(scenes):
    return {(s.image_id, o.id): o for s in scenes for o in s.objects}


def test_every_task_is_built_and_decodes(scenes, grid_samples):
    codec = get_codec("grid:n=32")
    assert set(grid_samples.counts()) == set(TASKS)
    objs = _objects(scenes)
    for s in grid_samples:
        assert s.turns[0].user.startswith("<image>\n") and s.turns[0].user.count("<image>") == 1
        assert s.image == f"images/{s.image_id}.png" and s.codec == codec.spec
        geoms = codec.decode(s.answer, s.size, s.kind)
        n = len(s.truth["masks"])
        assert len(geoms) == n == len(s.truth["boxes"]) == len(s.truth["object_ids"])
        if s.task.startswith("none"):
            assert s.answer == "none" and n == 0
        elif s.task.startswith("multi"):
            assert n >= 2
        else:
            assert n == 1
        for rle, box, oid in zip(s.truth["masks"], s.truth["boxes"], s.truth["object_ids"]):
            m = rle_decode(rle)
            assert np.array_equal(m, objs[(s.image_id, oid)].mask)
            assert box == mask_to_box(m).tolist()
    assert set(grid_samples.images) == {s.image_id for s in scenes}


def test_point_answers_lie_on_the_object(grid_samples):
    codec = get_codec("grid:n=32")
    for s in grid_samples:
        if s.kind != "point" or not s.truth["masks"]:
            continue
        for g, rle in zip(codec.decode(s.answer, s.size, "point"), s.truth["masks"]):
            x, y = g.points[0]
            assert rle_decode(rle)[int(y), int(x)], s.sample_id


@pytest.mark.parametrize("spec", ["grid:n=32", "text_coords", "bins:bins=100"])
def test_point_and_box_queries_are_written_in_the_codec(scenes, spec):
    codec = get_codec(spec)
    res = build_tasks(scenes, spec, TaskConfig(tasks=("point>mask", "box>mask")))
    assert res.counts()["point>mask"] > 20
    for s in res:
        q = s.truth["query"]
        assert q["text"] in s.turns[0].user
        if s.task == "point>mask":
            (g,) = codec.decode(q["text"], s.size, "point")
            x, y = g.points[0]
            target = rle_decode(s.truth["masks"][0])
            assert target[int(y), int(x)]
            others = [o for o in scenes if o.image_id == s.image_id][0].objects
            assert sum(o.mask[int(y), int(x)] for o in others) == 1  # the point names one object
            prefix = {"grid": "<g32_", "text_coords": "[", "bins": "<loc_"}[codec.name]
            assert q["text"].startswith(prefix)
        else:
            (g,) = codec.decode(q["text"], s.size, "box")
            assert g.box is not None


def test_codec_without_point_kind_writes_queries_as_text(scenes):
    res = build_tasks(scenes[:3], "polygon", TaskConfig(tasks=("point>mask", "text>box", "text>mask")))
    assert set(res.counts()) == {"point>mask", "text>mask"}
    assert any(sk["item"] == "task text>box" for sk in res.skipped)
    q = next(s for s in res if s.task == "point>mask").truth["query"]["text"]
    assert q.startswith("[0.")


def test_think_envelope(scenes):
    res = build_tasks(scenes[:3], "grid:n=16", TaskConfig(think=True))
    plain = build_tasks(scenes[:3], "grid:n=16", TaskConfig(think=False))
    assert [s.sample_id for s in res] == [s.sample_id for s in plain]
    for a, b in zip(res, plain):
        think, answer = parse_response(a.answer)
        assert answer == b.answer and len(think) > 10


def test_deterministic_and_order_independent(scenes):
    a = build_tasks(scenes, "text_coords", TaskConfig(seed=1))
    b = build_tasks(list(reversed(scenes)), "text_coords", TaskConfig(seed=1))
    key = {s.sample_id: s.to_dict() for s in b}
    assert len(key) == len(a) and all(key[s.sample_id] == s.to_dict() for s in a)
    c = build_tasks(scenes, "text_coords", TaskConfig(seed=2))
    assert [s.turns[0].user for s in a] != [s.turns[0].user for s in c]


def test_prompt_templates_vary(grid_samples):
    texts = {s.turns[0].user.split("\n", 1)[1].split(" ")[0] for s in grid_samples if s.task == "text>mask"}
    assert len(texts) >= 3


def test_geometry_fn_hook_sets_the_mask_answer(scenes):
    def one_cell(image, obj):
        return Geometry(size=image.size, cells=[[3, 4]], grid_n=32)

    res = build_tasks(scenes[:2], "grid:n=32", TaskConfig(tasks=("text>mask", "text>box")), geometry_fn=one_cell)
    for s in res:
        if s.task == "text>mask":
            assert s.answer == "<g32_r04_c03>"
        else:  # boxes still come from the true object
            assert s.answer != "<g32_r04_c03>"


def test_greedy_grid_cells_through_the_hook(scenes):
    from getok.data_builders.greedy import GreedyGeometryFn, greedy_cells
    from getok.data_builders.proposers.exact import ExactProposer

    fn = GreedyGeometryFn("exact", n=16)
    res = build_tasks(scenes[:2], "grid:n=16", TaskConfig(tasks=("text>mask",)), geometry_fn=fn)
    codec = get_codec("grid:n=16")
    for s in res:
        im = next(x for x in scenes if x.image_id == s.image_id)
        obj = im.objects[s.truth["object_ids"][0]]
        cells = greedy_cells(obj.mask, ExactProposer.from_image(im).propose(None, 16)).cells
        assert np.array_equal(codec.decode(s.answer, s.size, "mask")[0].cells, cells)


def test_point_questions_are_answered_with_the_named_cell_when_it_is_equivalent(scenes):
    """With the exact proposer every cell of an object decodes to the object: a point question's answer is
    the cell the question names (not the cell nearest the box centre), and it decodes to the same mask."""
    from getok.data_builders.greedy import GreedyGeometryFn
    from getok.data_builders.proposers.exact import ExactProposer
    from getok.decoding.point_masks import PointMaskDecoder
    from getok.ops.grid import points_to_cells

    codec = get_codec("grid:n=8")
    res = build_tasks(scenes[:8], "grid:n=8", TaskConfig(tasks=("point>mask", "box>mask")),
                      geometry_fn=GreedyGeometryFn("exact", n=8))  # fmt: skip
    points = [s for s in res if s.task == "point>mask"]
    assert len(points) > 10
    differs = 0
    for s in points:
        im = next(x for x in scenes if x.image_id == s.image_id)
        obj = im.objects[s.truth["object_ids"][0]]
        named = points_to_cells(np.array([s.truth["query"]["point"]]), 8, s.size)
        answer = codec.decode(s.answer, s.size, "mask")[0]
        assert answer.cells.tolist() == named.tolist()
        box = next(b for b in res if b.task == "box>mask" and b.truth["object_ids"] == s.truth["object_ids"]
                   and b.image_id == s.image_id)  # fmt: skip
        differs += box.answer != s.answer  # the box question keeps the centre representative
        dec = PointMaskDecoder(ExactProposer.from_image(im), n=8)
        dec.set_image(im.get_image())
        assert np.array_equal(dec.decode(answer), obj.mask)
    assert differs > 0


def test_multi_and_none_use_groups_and_absent_expressions(scenes, grid_samples):
    by_id = {s.image_id: s for s in scenes}
    for s in grid_samples:
        if s.task == "multi>mask":
            im = by_id[s.image_id]
            text = s.truth["query"]["text"]
            groups = {g["text"]: g["object_ids"] for g in im.meta["group_expressions"]}
            assert sorted(s.truth["object_ids"]) == sorted(groups[text])
        if s.task == "none>mask":
            assert s.truth["query"]["text"] in by_id[s.image_id].no_target_expressions


def _img_with(objects, size=(32, 32), **kw):
    return AnnotatedImage("x", size, objects, image=np.zeros((*size, 3), np.uint8), **kw)


def test_category_fallback_and_unreferable_objects():
    a = np.zeros((32, 32), bool)
    a[2:10, 2:10] = True
    b = np.zeros((32, 32), bool)
    b[20:30, 20:30] = True
    c = np.zeros((32, 32), bool)
    c[2:10, 20:30] = True
    im = _img_with(
        [
            AnnotatedObject(0, "dog", (32, 32), mask=a),
            AnnotatedObject(1, "cat", (32, 32), mask=b),
            AnnotatedObject(2, "cat", (32, 32), mask=c),
        ]
    )
    res = build_tasks([im], "text_coords", TaskConfig(tasks=("text>box", "multi>box")))
    texts = {s.truth["query"]["text"]: s for s in res}
    assert "the dog" in texts and "all the cats" in texts
    assert len(texts["all the cats"].answer.split("\n")) == 2
    assert [sk["reason"] for sk in res.skipped] == ["no unambiguous expression"] * 2


def test_bad_objects_and_images_are_skipped_not_fatal(tmp_path):
    good = np.zeros((32, 32), bool)
    good[4:20, 4:20] = True
    tiny = np.zeros((32, 32), bool)
    tiny[0, 0] = True
    objs = [
        AnnotatedObject(0, "box", (32, 32), mask=good, expressions=["the box"]),
        AnnotatedObject(1, "empty", (32, 32), rle={"size": [32, 32], "counts": [32 * 32]}),
        AnnotatedObject(2, "wrong", (32, 32), rle={"size": [16, 16], "counts": [256]}),
        AnnotatedObject(3, "speck", (32, 32), mask=tiny, expressions=["the speck"]),
    ]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8), "L").save(gray)
    images = [
        _img_with(objs),
        AnnotatedImage("broken", (32, 32), [AnnotatedObject(0, "box", (32, 32), mask=good)], image_path=str(broken)),
        AnnotatedImage("missing", (32, 32), [], image_path=str(tmp_path / "nope.png")),
        AnnotatedImage("small", (16, 16), [], image_path=str(gray)),  # pixels are 32 x 32
        AnnotatedImage("gray", (32, 32), [AnnotatedObject(0, "box", (32, 32), mask=good)], image_path=str(gray)),
    ]
    res = build_tasks(images, "grid:n=8", TaskConfig(tasks=("text>mask", "point>mask")))
    reasons = {sk["item"]: sk["reason"] for sk in res.skipped}
    assert reasons["x object 1"] == "empty mask"
    assert reasons["x object 2"].startswith("mask:")
    # a one-pixel object still gets its nearest cell as a mask answer, but no cell centre lies on it
    assert next(s for s in res if s.sample_id == "x-text2mask-o3-e0").answer == "<g8_r0_c0>"
    assert reasons["x object 3 point>mask"].startswith("no query point on the object")
    for name in ("broken", "missing", "small"):
        assert reasons[f"image {name}"].startswith("unusable image")
    assert {s.image_id for s in res} == {"x", "gray"}
    gray_sample = next(s for s in res if s.image_id == "gray")
    assert gray_sample.image == str(gray.resolve()) and "gray" not in res.images
    assert images[-1].image is None  # verified, then not kept in memory


def test_unwritable_answers_are_skipped(scenes):
    def broken(image, obj):
        if obj.id == 0:
            return Geometry(size=image.size, points=[[1.0, 1.0]])  # describes no region
        return obj.geometry()

    res = build_tasks(scenes[:2], "grid:n=32", TaskConfig(tasks=("text>mask",)), geometry_fn=broken)
    bad = [sk for sk in res.skipped if sk["reason"].startswith("codec cannot write the answer")]
    assert len(bad) == 2 and all(" o0-" in sk["item"] for sk in bad)
    assert len(res) == sum(len(s.objects) for s in scenes[:2]) - 2


def test_bad_masks_are_clear_errors_at_the_record():
    with pytest.raises(GeometryError, match="binary"):
        AnnotatedObject(0, "x", (8, 8), mask=np.full((8, 8), 3))
    with pytest.raises(GeometryError, match="differs from image size"):
        AnnotatedObject(0, "x", (8, 8), mask=np.ones((9, 8), bool))


def test_task_config_errors():
    with pytest.raises(ConfigError, match="TaskConfig.tasks"):
        TaskConfig(tasks=("text>voxels",))
    with pytest.raises(ConfigError, match="TaskConfig.expressions_per_object"):
        TaskConfig(expressions_per_object=0)
