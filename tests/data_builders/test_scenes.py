"""Procedural scenes: determinism, masks vs label map, shapes, and unambiguous expressions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from getok.data_builders.scenes import (
    PALETTE,
    SHAPES,
    SceneConfig,
    generate_scene,
    generate_scenes,
    label_map_from_objects,
    plural,
    resolve_expression,
    write_scenes,
)
from getok.errors import ConfigError, DataError
from getok.records import AnnotatedImage, AnnotatedObject


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(120, seed=7)


def _same(a: AnnotatedImage, b: AnnotatedImage) -> bool:
    return (
        np.array_equal(a.get_image(), b.get_image())
        and np.array_equal(a.meta["label_map"], b.meta["label_map"])
        and [o.expressions for o in a.objects] == [o.expressions for o in b.objects]
        and a.no_target_expressions == b.no_target_expressions
        and a.meta["group_expressions"] == b.meta["group_expressions"]
    )


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = generate_scene(11), generate_scene(11), generate_scene(12)
    assert _same(a, b)
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.objects, b.objects))
    assert not np.array_equal(a.get_image(), c.get_image())


def test_series_prefix_does_not_depend_on_n():
    short, long = generate_scenes(3, seed=5), generate_scenes(6, seed=5)
    assert all(_same(x, y) for x, y in zip(short, long))
    assert [s.image_id for s in short] == ["scene-5-000000", "scene-5-000001", "scene-5-000002"]
    assert not np.array_equal(generate_scenes(1, seed=6)[0].get_image(), short[0].get_image())


@pytest.mark.parametrize("size", [(112, 112), (224, 224), (96, 160)])
def test_image_format_and_size(size):
    s = generate_scene(3, SceneConfig(size=size))
    img = s.get_image()
    assert img.shape == (*size, 3) and img.dtype == np.uint8
    assert s.size == size and s.meta["label_map"].shape == size and s.meta["label_map"].dtype == np.int32


def test_masks_are_the_label_map(scenes):
    for s in scenes:
        lm = s.meta["label_map"]
        assert lm.max() == len(s.objects)
        for k, o in enumerate(s.objects):
            assert np.array_equal(o.mask, lm == k + 1)
            assert o.mask.any() and o.attributes["area"] == int(o.mask.sum())
            assert o.id == k and o.attributes["z"] == k and o.category == o.attributes["shape"]
        assert np.array_equal(label_map_from_objects(AnnotatedImage(s.image_id, s.size, s.objects, image=s.image)), lm)


def test_attributes_and_visibility(scenes):
    cfg = SceneConfig()
    for s in scenes:
        for o in s.objects:
            a = o.attributes
            assert a["color"] in PALETTE and a["shape"] in SHAPES and a["size"] in ("small", "medium", "large")
            assert a["area"] >= cfg.min_visible * a["full_area"] - 1e-9 and a["area"] >= cfg.min_pixels
            ys, xs = np.nonzero(o.mask)
            assert a["center"] == pytest.approx([xs.mean() + 0.5, ys.mean() + 0.5], abs=1e-3)
            assert isinstance(a["position"], str) and a["position"]


def test_occlusion_happens_and_keeps_the_visible_region():
    cfg = SceneConfig(min_objects=5, max_objects=6, overlap_prob=1.0)
    occluded = 0
    for s in generate_scenes(20, seed=1, cfg=cfg):
        for o in s.objects:
            occluded += o.attributes["area"] < o.attributes["full_area"]
    assert occluded > 0


def test_same_colour_objects_never_touch(scenes):
    for s in scenes:
        for i, a in enumerate(s.objects):
            grown = ndimage.binary_dilation(a.mask, np.ones((3, 3), bool))
            for b in s.objects[i + 1 :]:
                if a.attributes["color"] == b.attributes["color"]:
                    assert not (grown & b.mask).any()


def test_ring_has_a_hole_and_thin_shapes_are_thin():
    ring = generate_scene(0, SceneConfig(shapes=("ring",), min_objects=1, max_objects=1)).objects[0].mask
    assert ndimage.binary_fill_holes(ring).sum() > ring.sum() + 10
    for shape in ("cross", "L-shape", "bar"):
        m = (
            generate_scene(0, SceneConfig(shapes=(shape,), sizes=("large",), min_objects=1, max_objects=1))
            .objects[0]
            .mask
        )
        eroded = ndimage.binary_erosion(m, np.ones((3, 3), bool), iterations=6)
        assert eroded.sum() < 0.15 * m.sum(), shape


def test_every_expression_resolves_to_its_object(scenes):
    n_types = {"attribute": 0, "superlative": 0, "relation": 0}
    for s in scenes:
        for o in s.objects:
            assert o.expressions, f"{s.image_id} object {o.id} has no expression"
            for text, kind in zip(o.expressions, o.attributes["expression_types"]):
                assert resolve_expression(s, text) == [o.id], (s.image_id, text)
                n_types[kind] += 1
        for g in s.meta["group_expressions"]:
            assert g["text"].startswith("all the ") and len(g["object_ids"]) >= 2
            assert resolve_expression(s, g["text"]) == g["object_ids"]
        for text in s.no_target_expressions:
            assert resolve_expression(s, text) == []
    assert all(v > 20 for v in n_types.values()), n_types


def _independent_matches(s, words):
    """Objects matching a noun phrase, read directly from the attributes (not the module's parser)."""
    size = {"small": "small", "medium-sized": "medium", "large": "large"}
    want = {}
    for w in words[:-1]:
        if w in size:
            want["size"] = size[w]
        else:
            want["color"] = w
    noun = words[-1].lower()
    nouns = {plural(x).lower(): x for x in (*SHAPES, "object")} | {x.lower(): x for x in (*SHAPES, "object")}
    if nouns[noun] != "object":
        want["shape"] = nouns[noun]
    return [o for o in s.objects if all(o.attributes[k] == v for k, v in want.items())]


def test_attribute_and_relation_expressions_checked_independently(scenes):
    checked = 0
    for s in scenes:
        for o in s.objects:
            for text, kind in zip(o.expressions, o.attributes["expression_types"]):
                words = text.split()[1:]
                if kind == "attribute":
                    assert _independent_matches(s, words) == [o]
                    checked += 1
                elif kind == "relation":
                    rel = next(r for r in ("left of", "right of", "above", "below") if f" {r} the " in text)
                    head, anchor = text[4:].split(f" {rel} the ")
                    anchors = _independent_matches(s, anchor.split())
                    assert len(anchors) == 1
                    a = anchors[0]
                    ax, ay = (np.nonzero(a.mask)[1].mean(), np.nonzero(a.mask)[0].mean())

                    def on_side(c, ax=ax, ay=ay, rel=rel):
                        ys, xs = np.nonzero(c.mask)
                        return {"left of": xs.mean() < ax, "right of": xs.mean() > ax, "above": ys.mean() < ay,
                                "below": ys.mean() > ay}[rel]  # fmt: skip

                    hits = [c for c in _independent_matches(s, head.split()) if c is not a and on_side(c)]
                    assert hits == [o], text
                    checked += 1
    assert checked > 100


def _toy(objs):
    size = (100, 100)
    objects = []
    for i, (color, shape, sz, cx, cy, area) in enumerate(objs):
        m = np.zeros(size, bool)
        m[i, i] = True
        attrs = {"color": color, "shape": shape, "size": sz, "center": [cx, cy], "area": area}
        objects.append(AnnotatedObject(id=i, category=shape, size=size, mask=m, attributes=attrs))
    return AnnotatedImage("toy", size, objects, image=np.zeros((100, 100, 3), np.uint8))


def test_resolver_reports_ambiguity():
    im = _toy(
        [
            ("red", "circle", "small", 10, 50, 100),
            ("red", "circle", "large", 80, 50, 400),
            ("blue", "star", "small", 48, 50, 380),
        ]
    )
    assert resolve_expression(im, "the red circle") == [0, 1]
    assert resolve_expression(im, "the large red circle") == [1]
    assert resolve_expression(im, "the circle left of the blue star") == [0]
    assert resolve_expression(im, "all the red circles") == [0, 1]
    assert resolve_expression(im, "the green square") == []
    # 400 vs 380 is within the size ratio: "the largest object" is a near tie
    assert resolve_expression(im, "the largest object") == [1, 2]
    assert resolve_expression(im, "the leftmost object") == [0]
    # an ambiguous anchor names nothing
    assert resolve_expression(im, "the star right of the red circle") == []
    with pytest.raises(DataError, match="not a scene expression"):
        resolve_expression(im, "the dog near the sofa")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"size": (16, 16)}, "size"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"shapes": ("hexagon",)}, "shapes"),
        ({"colors": ()}, "colors"),
        ({"background": "sky"}, "background"),
        ({"min_visible": 0}, "min_visible"),
        ({"size_ratio": 0.5}, "size_ratio"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"SceneConfig.{field}"):
        SceneConfig(**kwargs)


def test_write_scenes_round_trip_and_worker_independence(tmp_path):
    from getok.data_builders.sources import load_manifest

    a = write_scenes(tmp_path / "a", 12, seed=2, workers=1, chunk_size=5)
    b = write_scenes(tmp_path / "b", 12, seed=2, workers=2, chunk_size=5)
    assert (a / "manifest.json").read_text() == (b / "manifest.json").read_text()
    back = load_manifest(a)
    orig = generate_scenes(12, seed=2)
    assert len(back) == 12 and not back.skipped
    for x, y in zip(orig, back):
        assert x.image_id == y.image_id
        assert np.array_equal(x.get_image(), y.get_image())
        assert np.array_equal(label_map_from_objects(y), x.meta["label_map"])
        assert [o.expressions for o in x.objects] == [o.expressions for o in y.objects]
        assert y.meta["group_expressions"] == x.meta["group_expressions"]
        for o in y.objects:  # expressions still resolve on the reloaded attributes
            assert all(resolve_expression(y, e) == [o.id] for e in o.expressions)
    with pytest.raises(DataError, match="already exists"):
        write_scenes(a, 2)
