"""A malformed-input corpus for the source loaders and image reading.

Every case is one bad field in an otherwise valid file. Without ``strict`` the loader skips the object or
record and lists the reason (naming the field); with ``strict=True`` it raises :class:`DataError` naming the
file, the record and the field; through the CLI (``getok build tasks ... --strict``) that is one line on
stderr and exit status 2. A property test then fuzzes each loader with mutated records: only a
``DataError`` or a skip with a reason may come out, and whatever is loaded has usable masks.
"""

from __future__ import annotations

import copy
import json
import math
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from getok.cli.main import main as cli_main
from getok.data_builders.sources import ImageCollection, load_coco, load_manifest, load_reasonseg, load_refer
from getok.errors import DataError
from getok.ops.masks import rle_encode
from getok.records import (
    MAX_IMAGE_PIXELS,
    AnnotatedImage,
    check_image_size,
    load_image_rgb,
    read_image_size,
)

H, W = 40, 60
SQUARE = [[10, 10, 20, 10, 20, 30, 10, 30]]
POINTS = [[10, 10], [40, 10], [40, 30], [10, 30]]


def _img(path: Path, size=(H, W)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(path)
    return path


def _png_header(path: Path, w: int, h: int) -> Path:
    """A PNG whose header claims ``w x h`` 8-bit RGB (with a tiny, truncated IDAT)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


# ------------------------------------------------------------------------------------------ valid fixtures
def _disk_rle() -> dict:
    yy, xx = np.mgrid[:H, :W]
    return rle_encode((xx - 45) ** 2 + (yy - 20) ** 2 <= 36)  # compressed counts


def _manifest_records() -> list:
    return [
        {
            "image": "images/a.png",
            "width": W,
            "height": H,
            "captions": ["a cup on a table"],
            "objects": [
                {"id": 0, "category": "cup", "segmentation": SQUARE, "bbox": [10, 10, 10, 20], "iscrowd": False,
                 "expressions": [{"text": "the left cup"}, "the cup"]},
                {"id": 1, "category": "plate", "segmentation": _disk_rle(), "category_id": 3},
            ],
            "no_target_expressions": [{"text": "the dog"}],
            "group_expressions": [{"text": "both things", "object_ids": [0, 1]}],
            "unverified_expressions": [{"text": "x"}],
        },
        {"image": "images/b.png", "width": W, "height": H, "objects": [{"id": 0, "segmentation": SQUARE}]},
    ]  # fmt: skip


def _coco_data() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "1.png", "height": H, "width": W},
            {"id": 2, "file_name": "2.png", "height": H, "width": W},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": SQUARE, "bbox": [10, 10, 10, 20]},
            {"id": 11, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": _disk_rle()},
            {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 1, "segmentation": SQUARE},
        ],
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "kite"}],
    }  # fmt: skip


def _refs() -> list:
    return [
        {"ref_id": 0, "image_id": 1, "ann_id": 10, "split": "train", "sentences": [{"sent": "the dog"}]},
        {"ref_id": 1, "image_id": 1, "ann_id": [10, 11], "split": "train", "sentences": [{"raw": "both"}]},
        {"ref_id": 2, "image_id": 2, "ann_id": [-1], "no_target": True, "sentences": ["the cat"]},
    ]


def _reasonseg_anno() -> dict:
    return {
        "text": ["what holds water?"],
        "is_sentence": True,
        "imageHeight": H,
        "imageWidth": W,
        "shapes": [
            {"label": "target", "points": POINTS, "shape_type": "polygon"},
            {"label": "ignore", "points": [[20, 15], [30, 15], [30, 25]]},
        ],
    }


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def manifest_dir(tmp_path):
    _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "images" / "b.png")
    return tmp_path


@pytest.fixture
def coco_dir(tmp_path):
    _img(tmp_path / "imgs" / "1.png")
    _img(tmp_path / "imgs" / "2.png")
    return tmp_path


def test_the_valid_fixtures_load_whole(manifest_dir, coco_dir):
    col = load_manifest(_write_manifest(manifest_dir, _manifest_records()), strict=True)
    assert [len(im.objects) for im in col] == [2, 1] and col.skipped == []
    assert col[0].meta["group_expressions"] == [{"text": "both things", "object_ids": [0, 1]}]
    col = load_coco(_write(coco_dir / "i.json", _coco_data()), coco_dir / "imgs", strict=True)
    assert [len(im.objects) for im in col] == [2, 0] and col.stats == {"crowd_excluded": 1}
    _write(coco_dir / "r.json", _refs())
    col = load_refer(coco_dir / "r.json", coco_dir / "i.json", coco_dir / "imgs", strict=True)
    assert col[0].objects[0].expressions == ["the dog"] and col[1].no_target_expressions == ["the cat"]
    d = coco_dir / "rs"
    _img(d / "x.jpg")
    _write(d / "x.json", _reasonseg_anno())
    col = load_reasonseg(d, strict=True)
    assert len(col) == 1 and col[0].objects[0].get_mask().any()


def _write_manifest(root: Path, records) -> Path:
    _write(root / "manifest.json", records)
    return root


# ------------------------------------------------------------------------------------------ manifest cases
def _set(d: dict, key: str, value) -> None:
    if value is _DEL:
        d.pop(key, None)
    else:
        d[key] = value


_DEL = object()

# (case id, field named in the message, record-level change, object-level change (object 0 of record 0),
#  what a non-strict load keeps of record 0: "object" = the record without object 0, "record" = nothing)
MANIFEST_CASES = [
    ("expressions-int", "'expressions'", {}, {"expressions": 5}, "object"),
    ("expressions-int-entry", "'expressions'", {}, {"expressions": [5]}, "object"),
    ("expressions-text-list", "'expressions'", {}, {"expressions": [{"text": ["a"]}]}, "object"),
    ("bbox-int", "'bbox'", {}, {"bbox": 7}, "object"),
    ("bbox-three-numbers", "'bbox'", {}, {"bbox": [1, 2, 3]}, "object"),
    ("bbox-nan", "'bbox'", {}, {"bbox": [1, 2, float("nan"), 4]}, "object"),
    ("category-list", "'category'", {}, {"category": ["cup"]}, "object"),
    ("iscrowd-list", "'iscrowd'", {}, {"iscrowd": [1]}, "object"),
    ("object-id-list", "'id'", {}, {"id": [0]}, "object"),
    ("object-id-inf", "'id'", {}, {"id": float("inf")}, "object"),
    ("object-id-fraction", "'id'", {}, {"id": 1.5}, "object"),
    ("rle-size-inf", "'size'", {}, {"segmentation": {"size": [float("inf"), W], "counts": [1]}}, "object"),
    ("rle-counts-huge", "counts", {}, {"segmentation": {"size": [H, W], "counts": [10**30]}}, "object"),
    ("rle-counts-corrupt-string", "compressed RLE", {}, {"segmentation": {"size": [H, W], "counts": "abc"}}, "object"),
    ("polygon-int-beyond-float", "polygon", {}, {"segmentation": [[10**400, 1, 2, 3, 4, 5]]}, "object"),
    ("captions-int", "'captions'", {"captions": 7}, {}, "record"),
    ("captions-int-entry", "'captions'", {"captions": ["ok", 7]}, {}, "record"),
    ("no-target-int", "'no_target_expressions'", {"no_target_expressions": 5}, {}, "record"),
    ("unverified-int", "'unverified_expressions'", {"unverified_expressions": 5}, {}, "record"),
    ("group-expressions-int", "'group_expressions'", {"group_expressions": 5}, {}, "record"),
    ("objects-dict", "'objects'", {"objects": {"a": 1}}, {}, "record"),
    ("height-inf", "'height'", {"height": float("inf")}, {}, "record"),
    ("height-fraction", "'height'", {"height": 40.5}, {}, "record"),
    ("height-bool", "'height'", {"height": True}, {}, "record"),
    ("height-huge", "above getok's cap", {"height": 10**12}, {}, "record"),
    ("width-missing", "'width'", {"width": _DEL}, {}, "record"),
    ("image-missing", "'image'", {"image": _DEL}, {}, "record"),
    ("image-int", "'image'", {"image": 5}, {}, "record"),
    ("image-list", "'image'", {"image": ["images/a.png"]}, {}, "record"),
]


def _manifest_case(root: Path, rec_change: dict, obj_change: dict) -> Path:
    records = _manifest_records()
    for k, v in rec_change.items():
        _set(records[0], k, v)
    for k, v in obj_change.items():
        _set(records[0]["objects"][0], k, v)
    return _write_manifest(root, records)


@pytest.mark.parametrize(
    "field, rec_change, obj_change, level", [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES]
)
def test_manifest_wrong_field_is_skipped_or_strict_error(manifest_dir, field, rec_change, obj_change, level):
    root = _manifest_case(manifest_dir, rec_change, obj_change)
    col = load_manifest(root)
    assert len(col.skipped) == 1 and field in col.skipped[0]["reason"]
    assert col.skipped[0]["item"].startswith(f"{root / 'manifest.json'}[0]")
    if level == "object":  # the record stays, without the bad object
        assert [im.image_id for im in col] == ["a", "b"] and [o.id for o in col[0].objects] == [1]
    else:
        assert [im.image_id for im in col] == ["b"]
    with pytest.raises(DataError) as err:
        load_manifest(root, strict=True)
    msg = str(err.value)
    assert f"{root / 'manifest.json'}[0]" in msg and field in msg  # the file, the record, the field


@pytest.mark.parametrize("bad_ids", [["abc"], [[0]], [float("inf")], "0,1"])
def test_manifest_bad_group_expression_is_skipped_alone(manifest_dir, bad_ids):
    records = _manifest_records()
    records[0]["group_expressions"].append({"text": "broken", "object_ids": bad_ids})
    root = _write_manifest(manifest_dir, records)
    col = load_manifest(root)
    assert [len(im.objects) for im in col] == [2, 1]
    assert col[0].meta["group_expressions"] == [{"text": "both things", "object_ids": [0, 1]}]
    assert [s["item"] for s in col.skipped] == [f"{root / 'manifest.json'}[0] (images/a.png) group_expressions[1]"]
    assert "object_ids" in col.skipped[0]["reason"]
    with pytest.raises(DataError, match=r"group_expressions\[1\]: 'object_ids'"):
        load_manifest(root, strict=True)


def test_manifest_escaping_image_path_still_raises_without_strict(manifest_dir):
    root = _manifest_case(manifest_dir, {"image": "../outside.png"}, {})
    with pytest.raises(DataError, match="escapes the data root"):
        load_manifest(root)


# ------------------------------------------------------------------------------------------ COCO cases
def _ann(**change):
    def f(d):
        for k, v in change.items():
            _set(d["annotations"][0], k, v)

    return f


def _image(**change):
    def f(d):
        for k, v in change.items():
            _set(d["images"][0], k, v)

    return f


# (case id, field named, change, annotations of image 1 that stay (by COCO id), image 1 stays)
COCO_CASES = [
    ("annotation-without-image_id", "'image_id'", _ann(image_id=_DEL), [11], True),
    ("annotation-image_id-list", "'image_id'", _ann(image_id=[1]), [11], True),
    ("annotation-id-list", "'id'", _ann(id=[10]), [11], True),
    ("annotation-category_id-list", "'category_id'", _ann(category_id=[1]), [11], True),
    ("annotation-without-category_id", "'category_id'", _ann(category_id=_DEL), [11], True),
    ("annotation-bbox-int", "'bbox'", _ann(bbox=3), [11], True),
    ("annotation-iscrowd-string", "'iscrowd'", _ann(iscrowd="yes"), [11], True),
    ("image-id-list", "'id'", _image(id=[1]), [], False),
    ("image-id-nan", "'id'", _image(id=float("nan")), [], False),
    ("image-file_name-int", "'file_name'", _image(file_name=5), [], False),
    ("image-height-inf", "'height'", _image(height=float("inf")), [], False),
    ("image-width-huge", "above getok's cap", _image(width=200000), [], False),
]


@pytest.mark.parametrize(
    "field, change, kept_anns, image_kept", [c[1:] for c in COCO_CASES], ids=[c[0] for c in COCO_CASES]
)
def test_coco_wrong_field_is_skipped_or_strict_error(coco_dir, field, change, kept_anns, image_kept):
    data = _coco_data()
    change(data)
    inst = _write(coco_dir / "instances.json", data)
    col = load_coco(inst, coco_dir / "imgs")
    assert len(col.skipped) == 1 and field in col.skipped[0]["reason"]
    assert col.skipped[0]["item"].startswith(str(inst))
    one = [im for im in col if im.meta["coco_image_id"] == 1]
    assert bool(one) == image_kept
    if image_kept:
        assert [o.attributes["coco_ann_id"] for o in one[0].objects] == kept_anns
    assert [im.meta["coco_image_id"] for im in col if im.meta["coco_image_id"] != 1] == [2]
    with pytest.raises(DataError) as err:
        load_coco(inst, coco_dir / "imgs", strict=True)
    assert str(inst) in str(err.value) and field in str(err.value)


@pytest.mark.parametrize("key, value", [("categories", "x"), ("annotations", "x"), ("annotations", {"a": 1})])
def test_coco_top_level_lists_of_the_wrong_type_are_errors(coco_dir, key, value):
    data = _coco_data()
    data[key] = value
    inst = _write(coco_dir / "instances.json", data)
    with pytest.raises(DataError, match=re.escape(f"{inst}: '{key}' must be a list")):
        load_coco(inst, coco_dir / "imgs")


def test_coco_bad_category_entries_are_skipped(coco_dir):
    data = _coco_data()
    data["categories"] += ["x", {"id": [7], "name": "cat"}, {"id": 9, "name": ["cat"]}]
    inst = _write(coco_dir / "instances.json", data)
    col = load_coco(inst, coco_dir / "imgs")
    assert [o.category for o in col[0].objects] == ["dog", "kite"]
    assert [s["item"] for s in col.skipped] == [f"{inst} categories[2]", f"{inst} categories[3]", f"{inst} category 9"]


def test_coco_max_images_with_string_and_int_ids(coco_dir):
    data = _coco_data()
    data["images"].append({"id": "z", "file_name": "1.png", "height": H, "width": W})
    inst = _write(coco_dir / "instances.json", data)
    assert [im.meta["coco_image_id"] for im in load_coco(inst, coco_dir / "imgs")] == [1, 2, "z"]
    assert [im.meta["coco_image_id"] for im in load_coco(inst, coco_dir / "imgs", max_images=2)] == [1, 2]


# ------------------------------------------------------------------------------------------ refer cases
REFER_CASES = [
    ("image_id-list", "'image_id'", {"image_id": [1]}),
    ("image_id-dict", "'image_id'", {"image_id": {"id": 1}}),
    ("ann_id-nested-list", "'ann_id'", {"ann_id": [[10]]}),
    ("sentences-int", "'sentences'", {"sentences": 5}),
    ("sentence-int", "'sentences'", {"sentences": [{"sent": 5}]}),
    ("split-list", "'split'", {"split": ["train"]}),
    ("no_target-string", "'no_target'", {"no_target": "yes"}),
]


@pytest.mark.parametrize("field, change", [c[1:] for c in REFER_CASES], ids=[c[0] for c in REFER_CASES])
def test_refer_wrong_field_is_skipped_or_strict_error(coco_dir, field, change):
    inst = _write(coco_dir / "instances.json", _coco_data())
    refs = _refs()
    refs[0].update(change)
    rp = _write(coco_dir / "refs.json", refs)
    col = load_refer(rp, inst, coco_dir / "imgs")
    assert [s["item"] for s in col.skipped] == [f"{rp} ref[0]"] and field in col.skipped[0]["reason"]
    assert col.stats["expressions"] == 2  # the other refs still count
    with pytest.raises(DataError) as err:
        load_refer(rp, inst, coco_dir / "imgs", strict=True)
    assert f"{rp} ref[0]" in str(err.value) and field in str(err.value)


# ------------------------------------------------------------------------------------------ ReasonSeg cases
REASONSEG_CASES = [
    ("text-int", "'text'", {"text": 5}),
    ("text-int-entry", "'text'", {"text": ["ok", 5]}),
    ("points-ragged", "'points'", {"shapes": [{"label": "target", "points": [[1, 2], [3], [4, 5, 6]]}]}),
    ("points-string", "'points'", {"shapes": [{"label": "target", "points": "10,10 40,10 40,30"}]}),
    ("points-string-pairs", "'points'", {"shapes": [{"label": "target", "points": [["a", "b"]] * 3}]}),
    ("points-huge", "far outside", {"shapes": [{"label": "target", "points": [[1e308, 1], [-1e308, 5], [3, 1e308]]}]}),
    ("label-list", "'label'", {"shapes": [{"label": ["target"], "points": POINTS}]}),
    ("size-200000", "above getok's cap", {"imageHeight": 200000, "imageWidth": 200000}),
    ("size-above-pixel-cap", "above getok's cap", {"imageHeight": 8193, "imageWidth": 8192}),
    ("size-bool", "'imageHeight'", {"imageHeight": True}),
    ("is_sentence-list", "'is_sentence'", {"is_sentence": [1]}),
]


@pytest.mark.parametrize("field, change", [c[1:] for c in REASONSEG_CASES], ids=[c[0] for c in REASONSEG_CASES])
def test_reasonseg_wrong_field_is_skipped_or_strict_error(tmp_path, field, change):
    d = tmp_path / "rs"
    _img(d / "good.jpg")
    _write(d / "good.json", _reasonseg_anno())
    _img(d / "x.jpg")
    _write(d / "x.json", {**_reasonseg_anno(), **change})
    col = load_reasonseg(d)
    assert [im.image_id for im in col] == ["good"]
    assert [s["item"] for s in col.skipped] == [str(d / "x.json")] and field in col.skipped[0]["reason"]
    with pytest.raises(DataError) as err:
        load_reasonseg(d, strict=True)
    assert str(d / "x.json") in str(err.value) and field in str(err.value)


@pytest.mark.parametrize("which", ["image", "json"])
def test_reasonseg_symlink_out_of_the_directory_is_an_error(tmp_path, which):
    d = tmp_path / "rs"
    d.mkdir()
    if which == "image":
        (d / "x.jpg").symlink_to(_img(tmp_path / "outside.jpg"))
        _write(d / "x.json", _reasonseg_anno())
    else:
        _img(d / "x.jpg")
        (d / "x.json").symlink_to(_write(tmp_path / "outside.json", _reasonseg_anno()))
    with pytest.raises(DataError, match=f"'x.{'jpg' if which == 'image' else 'json'}' escapes the data root"):
        load_reasonseg(d)  # never skipped, as in the manifest and COCO loaders


def test_reasonseg_undeclared_size_reads_the_capped_header(tmp_path):
    d = tmp_path / "rs"
    _png_header(d / "x.png", 20000, 20000)
    anno = {k: v for k, v in _reasonseg_anno().items() if k not in ("imageHeight", "imageWidth")}
    _write(d / "x.json", anno)
    col = load_reasonseg(d)
    assert len(col) == 0 and "above getok's cap" in col.skipped[0]["reason"]
    assert str(d / "x.png") in col.skipped[0]["reason"]


# ------------------------------------------------------------------------------------------ JSON files
@pytest.mark.parametrize(
    "text, why",
    [("[" * 100000 + "]" * 100000, "RecursionError"), ("[" + "9" * 5000 + "]", "ValueError"), ("{broken", "")],
    ids=["nested-too-deep", "int-too-long", "syntax"],
)
def test_unparseable_json_is_a_data_error_naming_the_file(manifest_dir, coco_dir, text, why):
    (manifest_dir / "manifest.json").write_text(text)
    with pytest.raises(DataError, match=rf"manifest\.json is not valid JSON: .*{why}"):
        load_manifest(manifest_dir)
    (coco_dir / "i.json").write_text(text)
    with pytest.raises(DataError, match=rf"i\.json is not valid JSON: .*{why}"):
        load_coco(coco_dir / "i.json", coco_dir / "imgs")


# ------------------------------------------------------------------------------------------ images
def test_decompression_bomb_header_is_a_data_error_naming_the_file(tmp_path):
    bomb = _png_header(tmp_path / "bomb.png", 20000, 20000)  # PIL's own DecompressionBombError
    for read in (load_image_rgb, read_image_size):
        with pytest.raises(DataError, match=re.escape(f"image {bomb} is above getok's cap")):
            read(bomb)
    big = _png_header(tmp_path / "big.png", 8193, 8192)  # below PIL's limits, above getok's
    with pytest.raises(DataError, match=re.escape(f"image {big}: size 8192 x 8193 is above getok's cap")):
        load_image_rgb(big)
    im = AnnotatedImage(image_id="bomb", size=(H, W), objects=[], image_path=str(bomb))
    with pytest.raises(DataError, match="bomb.png"):
        im.get_image()


def test_image_size_cap_is_documented_and_enforced():
    side = math.isqrt(MAX_IMAGE_PIXELS)
    assert check_image_size(side, side) == (side, side)
    with pytest.raises(DataError, match="cap"):
        check_image_size(side + 1, side)
    with pytest.raises(DataError, match="cap"):
        check_image_size(1, 65536)


def test_16_bit_grey_is_scaled_to_8_bits(tmp_path):
    values = np.array([[0, 255, 256, 0x1234], [0x8000, 0xABCD, 0xFF00, 0xFFFF]], np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(values).save(p)
    assert Image.open(p).mode == "I;16"
    px = load_image_rgb(p)
    assert px.dtype == np.uint8 and px.shape == (2, 4, 3)
    expect = np.array([[0, 0, 1, 0x12], [0x80, 0xAB, 0xFF, 0xFF]], np.uint8)  # the top 8 bits, not clipped
    assert np.array_equal(px[..., 0], expect) and (px == px[..., :1]).all()
    p32 = tmp_path / "i32.tif"
    Image.fromarray(values.astype(np.int32), "I").save(p32)
    assert np.array_equal(load_image_rgb(p32)[..., 0], expect)


def test_images_without_a_fixed_range_are_refused(tmp_path):
    p = tmp_path / "f.tif"
    Image.fromarray(np.ones((2, 3), np.float32), "F").save(p)
    with pytest.raises(DataError, match=re.escape(f"{p}: floating-point")):
        load_image_rgb(p)
    q = tmp_path / "neg.tif"
    Image.fromarray(np.full((2, 3), -5, np.int32), "I").save(q)
    with pytest.raises(DataError, match=re.escape(f"{q}: 32-bit integer pixels")):
        load_image_rgb(q)


# ------------------------------------------------------------------------------------------ CLI
def _cli_case(tmp_path: Path, kind: str, case) -> list[str]:
    """Files for one malformed case and the ``getok build tasks`` source arguments that read them."""
    if kind == "manifest":
        _, _, rec, obj, _ = case
        _img(tmp_path / "images" / "a.png")
        _img(tmp_path / "images" / "b.png")
        return ["--data", str(_manifest_case(tmp_path, rec, obj))]
    _img(tmp_path / "imgs" / "1.png")
    _img(tmp_path / "imgs" / "2.png")
    data = _coco_data()
    if kind == "coco":
        case[2](data)
        return ["--coco", str(_write(tmp_path / "i.json", data)), "--image-root", str(tmp_path / "imgs")]
    if kind == "refer":
        refs = _refs()
        refs[0].update(case[2])
        return ["--refs", str(_write(tmp_path / "r.json", refs)), "--instances",
                str(_write(tmp_path / "i.json", data)), "--image-root", str(tmp_path / "imgs")]  # fmt: skip
    d = tmp_path / "rs"
    _img(d / "x.jpg")
    _write(d / "x.json", {**_reasonseg_anno(), **case[2]})
    return ["--reasonseg", str(d)]


CLI_CASES = (
    [pytest.param("manifest", c, id=f"manifest-{c[0]}") for c in MANIFEST_CASES]
    + [pytest.param("coco", c, id=f"coco-{c[0]}") for c in COCO_CASES]
    + [pytest.param("refer", c, id=f"refer-{c[0]}") for c in REFER_CASES]
    + [pytest.param("reasonseg", c, id=f"reasonseg-{c[0]}") for c in REASONSEG_CASES]
)


@pytest.mark.parametrize("kind, case", CLI_CASES)
def test_cli_strict_build_gives_one_line_and_exit_2(tmp_path, capsys, kind, case):
    src = _cli_case(tmp_path, kind, case)
    out = tmp_path / "out"
    rc = cli_main(["build", "tasks", *src, "--codec", "grid:n=8", "--out", str(out), "--quiet", "--strict"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("getok: error: ")
    assert case[1] in lines[0] and not out.exists()
    # without --strict the bad part is skipped and the build goes on
    assert cli_main(["build", "tasks", *src, "--codec", "grid:n=8", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"]["skipped"] >= 1


@pytest.mark.parametrize("kind", ["manifest", "coco"])
def test_cli_strict_stops_at_an_over_size_image_file(tmp_path, capsys, kind):
    """The records are valid; the file on disk is above the pixel cap (found when the build decodes it)."""
    if kind == "manifest":
        root = _write_manifest(tmp_path, _manifest_records())
        _img(root / "images" / "b.png")
        bad = _png_header(root / "images" / "a.png", 8193, 8192)
        src = ["--data", str(root)]
    else:
        inst = _write(tmp_path / "i.json", _coco_data())
        _img(tmp_path / "imgs" / "2.png")
        bad = _png_header(tmp_path / "imgs" / "1.png", 8193, 8192)
        src = ["--coco", str(inst), "--image-root", str(tmp_path / "imgs")]
    out = tmp_path / "out"
    rc = cli_main(["build", "tasks", *src, "--codec", "grid:n=8", "--out", str(out), "--quiet", "--strict"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("getok: error: ") and not out.exists()
    assert str(bad) in lines[0] and "above getok's cap" in lines[0]
    # without --strict the image is skipped and named in the manifest
    assert cli_main(["build", "tasks", *src, "--codec", "grid:n=8", "--out", str(out), "--quiet"]) == 0
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert any("above getok's cap" in str(v) for v in (skipped.values() if isinstance(skipped, dict) else skipped))


def test_cli_top_level_error_is_one_line_even_without_strict(coco_dir, capsys):
    data = _coco_data()
    data["categories"] = "x"
    inst = _write(coco_dir / "i.json", data)
    rc = cli_main(["build", "tasks", "--coco", str(inst), "--image-root", str(coco_dir / "imgs"), "--codec",
                   "grid:n=8", "--out", str(coco_dir / "out"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"getok: error: {inst}: 'categories' must be a list, got str 'x'"


# ------------------------------------------------------------------------------------------ fuzzing
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=70)
    | st.integers()
    | st.sampled_from([-1, 0, 2**63, 10**30, 10**400, 200000, 1e308, -1e308])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["", "..", "../x.png", "images/a.png", "abc", "0", "1.5", "/etc/passwd", "a\x00b"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _paths(node, prefix=(), min_depth=0):
    """Every (container path, key) inside ``node``."""
    out = [prefix] if len(prefix) >= min_depth else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out += _paths(v, (*prefix, k), min_depth)
    return out


def _mutate(data, draw, min_depth=0, max_mutations=3):
    """Up to ``max_mutations`` changes: delete a key / list entry, replace a value with random JSON (other
    types, NaN, inf, huge numbers, nested lists), or wrap a value in a list."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(_paths(data, min_depth=min_depth)))
        op = draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
        if op == "delete" and len(path) <= min_depth:  # a file of a set: replaced, never removed
            op = "replace"
        if not path:
            data = draw(_JSON) if op != "wrap" else [data]
            continue
        parent = data
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = [parent[key]]
        else:
            parent[key] = draw(_JSON)
    return data


def _check_outcome(load, names: tuple[str, ...]):
    """Run ``load(strict)`` both ways: a loaded collection whose every skip has a reason and whose every
    object decodes to a mask of the image size, or a DataError naming one of ``names``."""
    for strict in (False, True):
        try:
            col = load(strict)
        except DataError as exc:
            assert any(n in str(exc) for n in names), str(exc)
            event(f"strict={strict}: DataError")
            continue
        event(
            f"strict={strict}: {'skips' if col.skipped else 'no skip'}, {'objects' if any(im.objects for im in col) else 'no object'}"
        )
        assert isinstance(col, ImageCollection)
        assert all(isinstance(s["reason"], str) and s["reason"] and s["item"] for s in col.skipped)
        if strict:
            assert col.skipped == []
        for im in col:
            for o in im.objects:
                m = o.get_mask()
                assert m.shape == im.size and m.dtype == bool


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    for rel in ("m/images/a.png", "m/images/b.png", "c/imgs/1.png", "c/imgs/2.png", "rs/x1.jpg", "rs/x2.jpg"):
        _img(root / rel)
    return root


@_FUZZ
@given(data=st.data())
def test_fuzz_manifest(fuzz_root, data):
    root = fuzz_root / "m"
    _write_manifest(root, _mutate(_manifest_records(), data.draw))
    _check_outcome(lambda strict: load_manifest(root, strict=strict), (str(root),))


@_FUZZ
@given(data=st.data())
def test_fuzz_coco(fuzz_root, data):
    root = fuzz_root / "c"
    inst = _write(root / "i.json", _mutate(_coco_data(), data.draw))
    _check_outcome(lambda strict: load_coco(inst, root / "imgs", strict=strict), (str(inst), str(root / "imgs")))


@_FUZZ
@given(data=st.data())
def test_fuzz_refer(fuzz_root, data):
    root = fuzz_root / "c"
    both = _mutate({"refs": _refs(), "instances": _coco_data()}, data.draw, min_depth=1)
    rp, inst = _write(root / "r.json", both["refs"]), _write(root / "i.json", both["instances"])
    _check_outcome(
        lambda strict: load_refer(rp, inst, root / "imgs", strict=strict), (str(rp), str(inst), str(root / "imgs"))
    )


@_FUZZ
@given(data=st.data())
def test_fuzz_reasonseg(fuzz_root, data):
    d = fuzz_root / "rs"
    both = _mutate({"x1": _reasonseg_anno(), "x2": _reasonseg_anno()}, data.draw, min_depth=1)
    for name in ("x1", "x2"):
        _write(d / f"{name}.json", both[name])
    _check_outcome(lambda strict: load_reasonseg(d, strict=strict), (str(d),))
