"""Source loaders on small synthetic fixture files (and real-dev where present)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from getok.data_builders.sources import (
    coco_mask_fields,
    load_coco,
    load_manifest,
    load_reasonseg,
    load_refer,
    safe_join,
)
from getok.errors import DataError
from getok.ops.masks import rle_encode

H, W = 40, 60


def _img(path: Path, mode: str = "RGB", size=(H, W)) -> Path:
    h, w = size
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(h, w, 4), dtype=np.uint8)
    im = Image.fromarray(arr, "RGBA").convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def _square_poly(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(np.int8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def _obj(i, seg, category="cup", **kw):
    fmt = "polygon" if isinstance(seg, list) else "rle_uncompressed"
    return {"id": i, "category": category, "segmentation": seg, "segmentation_format": fmt, "iscrowd": False, **kw}


@pytest.fixture
def manifest_root(tmp_path):
    root = tmp_path / "data"
    _img(root / "images" / "a.png")
    _img(root / "images" / "b.jpg", "L")
    rle_mask = np.zeros((H, W), bool)
    rle_mask[5:15, 30:50] = True
    records = [
        {
            "image": "images/a.png",
            "width": W,
            "height": H,
            "objects": [
                _obj(0, _square_poly(10, 10, 20, 30), expressions=[{"text": "the left cup"}]),
                _obj(1, _uncompressed_rle(rle_mask), category="plate"),
            ],
            "no_target_expressions": [{"text": "the dog"}],
            "captions": ["a cup"],
        },
        {"image": "images/b.jpg", "width": W, "height": H, "objects": [_obj(0, _square_poly(0, 0, 5, 5))]},
    ]
    (root / "manifest.json").write_text(json.dumps(records))
    return root, rle_mask


def _write_manifest(root: Path, records) -> Path:
    (root / "manifest.json").write_text(json.dumps(records))
    return root


def test_manifest_loads_polygons_and_rle(manifest_root):
    root, rle_mask = manifest_root
    col = load_manifest(root)
    assert [im.image_id for im in col] == ["a", "b"] and col.skipped == []
    a = col[0]
    assert a.size == (H, W) and a.no_target_expressions == ["the dog"] and a.meta["captions"] == ["a cup"]
    cup, plate = a.objects
    assert cup.expressions == ["the left cup"]
    m = cup.get_mask()
    assert m[10:30, 10:20].all()  # pixel centres inside the continuous square (the rasteriser may add its edge)
    assert m.sum() - 200 <= 31 and not m[:9].any() and not m[:, 22:].any()
    assert np.array_equal(plate.get_mask(), rle_mask)
    # grayscale file → (H, W, 3) uint8
    img = col[1].get_image()
    assert img.shape == (H, W, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd", "images/../../x.png"])
def test_manifest_paths_that_escape_the_root_are_errors(tmp_path, bad):
    root = _write_manifest(tmp_path, [{"image": bad, "width": W, "height": H, "objects": []}])
    with pytest.raises(DataError, match="escapes the data root"):
        load_manifest(root)


def test_symlink_out_of_the_root_is_an_error(tmp_path):
    outside = _img(tmp_path / "outside.png")
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "link.png").symlink_to(outside)
    with pytest.raises(DataError, match="escapes the data root"):
        safe_join(root, "images/link.png")


def test_manifest_bad_records_are_skipped_and_listed(tmp_path):
    _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "images" / "c.png")
    big = np.ones((H + 5, W), bool)
    records = [
        {"image": "images/a.png", "width": W, "height": H, "objects": [_obj(0, _square_poly(1, 1, 9, 9))]},
        {"image": "images/a.png", "width": W, "height": H, "objects": []},  # duplicate id
        {"image": "images/missing.png", "width": W, "height": H, "objects": []},
        {"image": "images/c.png", "width": W, "height": H, "objects": [_obj(0, []), _obj(0, [])]},  # dup object ids
        {"image": "images/c.png", "height": H, "objects": []},  # no width (and would be a duplicate)
    ]
    col = load_manifest(_write_manifest(tmp_path, records))
    assert [im.image_id for im in col] == ["a"]
    reasons = [s["reason"] for s in col.skipped]
    assert any(r.startswith("duplicate image id") for r in reasons)
    assert any(r.startswith("image file not found") for r in reasons)
    assert any(r.startswith("duplicate object ids") for r in reasons)
    assert any("width/height" in r for r in reasons)
    # object-level problems skip the object only
    records = [
        {
            "image": "images/c.png",
            "width": W,
            "height": H,
            "objects": [
                _obj(0, _square_poly(1, 1, 9, 9)),
                _obj(1, []),  # empty
                _obj(2, _uncompressed_rle(big)),  # larger than the image
                _obj(3, {"size": [H, W], "counts": [5, 5]}),  # counts do not cover the image
                _obj(4, _square_poly(0, 0, W + 30, 10)),  # polygon far outside
                _obj(5, [[1, 2, 3]]),  # odd length
            ],
        }
    ]
    col = load_manifest(_write_manifest(tmp_path, records))
    assert [o.id for o in col[0].objects] == [0]
    reasons = [s["reason"].split(":")[0] for s in col.skipped]
    assert reasons == [
        "empty mask",
        "mask larger than the image",
        "malformed mask",
        "mask larger than the image",
        "malformed mask",
    ]
    with pytest.raises(DataError, match="empty mask"):
        load_manifest(tmp_path, strict=True)


def test_manifest_image_problems_are_found_at_load_time(tmp_path):
    _img(tmp_path / "images" / "small.png", size=(20, 20))
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg at all")
    _img(tmp_path / "images" / "rgba.png", "RGBA")
    _img(tmp_path / "images" / "cmyk.jpg", "CMYK")
    recs = [{"image": f"images/{n}", "width": W, "height": H, "objects": []} for n in ("small.png", "broken.jpg")]
    recs += [{"image": f"images/{n}", "width": W, "height": H, "objects": []} for n in ("rgba.png", "cmyk.jpg")]
    col = load_manifest(_write_manifest(tmp_path, recs))
    assert len(col) == 4  # the files exist: pixels are checked when used
    with pytest.raises(DataError, match="pixels are"):
        col[0].get_image()
    with pytest.raises(DataError, match="cannot decode"):
        col[1].get_image()
    for im in col[2:]:
        px = im.get_image()
        assert px.shape == (H, W, 3) and px.dtype == np.uint8


def test_manifest_that_is_not_a_list(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "getok-dataset"}))
    with pytest.raises(DataError, match="JSON list"):
        load_manifest(tmp_path)
    with pytest.raises(DataError, match="no manifest"):
        load_manifest(tmp_path / "nowhere")


def test_coco_mask_fields_forms():
    m = np.zeros((H, W), bool)
    m[3:7, 4:9] = True
    assert coco_mask_fields(_square_poly(1, 1, 5, 5), (H, W)) == {"polygons": _square_poly(1, 1, 5, 5)}
    assert coco_mask_fields(_uncompressed_rle(m), (H, W))["rle"]["counts"] == _uncompressed_rle(m)["counts"]
    comp = rle_encode(m)["counts"]  # compressed: passed through as the string, after checking it decodes
    assert coco_mask_fields({"size": [H, W], "counts": comp}, (H, W)) == {"rle": {"size": [H, W], "counts": comp}}
    with pytest.raises(DataError, match="compressed RLE"):  # pycocotools would read past this corrupt string
        coco_mask_fields({"size": [H, W], "counts": "abc"}, (H, W))
    with pytest.raises(DataError, match="empty mask"):
        coco_mask_fields(_uncompressed_rle(np.zeros((H, W), bool)), (H, W))
    with pytest.raises(DataError, match="malformed mask"):
        coco_mask_fields("polygon", (H, W))


# ---------------------------------------------------------------------------------------------- COCO
def _coco_dict(tmp_path):
    from pycocotools import mask as mask_utils

    _img(tmp_path / "imgs" / "1.jpg")
    _img(tmp_path / "imgs" / "2.jpg")
    crowd = np.zeros((H, W), bool)
    crowd[20:35, 0:30] = True
    comp = np.zeros((H, W), bool)
    comp[30:38, 40:55] = True
    enc = mask_utils.encode(np.asfortranarray(comp.astype(np.uint8)))
    return (
        {
            "images": [
                {"id": 1, "file_name": "1.jpg", "height": H, "width": W},
                {"id": 2, "file_name": "2.jpg", "height": H, "width": W},
                {"id": 3, "file_name": "3.jpg", "height": H, "width": W},  # no file
            ],
            "annotations": [
                {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": _square_poly(2, 2, 12, 12)},
                {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": _square_poly(20, 2, 30, 12)},
                {"id": 12, "image_id": 1, "category_id": 2, "iscrowd": 1, "segmentation": _uncompressed_rle(crowd)},
                {
                    "id": 13,
                    "image_id": 1,
                    "category_id": 3,
                    "iscrowd": 0,
                    "segmentation": {"size": [H, W], "counts": enc["counts"].decode()},
                },
                {"id": 14, "image_id": 2, "category_id": 2, "iscrowd": 0, "segmentation": _square_poly(5, 5, 9, 9)},
                {
                    "id": 15,
                    "image_id": 2,
                    "category_id": 2,
                    "iscrowd": 0,
                    "segmentation": {"size": [H + 1, W], "counts": [0, (H + 1) * W]},
                },
            ],  # fmt: skip
            "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "person"}, {"id": 3, "name": "kite"}],
        },
        crowd,
        comp,
    )


def test_load_coco(tmp_path):
    data, crowd, comp = _coco_dict(tmp_path)
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(data))
    col = load_coco(p, tmp_path / "imgs")
    assert [im.image_id for im in col] == ["1", "2"]
    one = col[0]
    assert [o.category for o in one.objects] == ["dog", "dog", "kite"]
    assert [o.attributes["category_unique_in_image"] for o in one.objects] == [False, False, True]
    assert np.array_equal(one.objects[2].get_mask(), comp)
    assert col.stats["crowd_excluded"] == 1
    reasons = " | ".join(s["reason"] for s in col.skipped)
    assert "image file not found" in reasons and "mask larger than the image" in reasons
    kept = load_coco(p, tmp_path / "imgs", include_crowd=True)
    crowd_obj = [o for o in kept[0].objects if o.attributes["iscrowd"]]
    assert len(crowd_obj) == 1 and np.array_equal(crowd_obj[0].get_mask(), crowd)
    assert len(load_coco(p, tmp_path / "imgs", max_images=1)) == 1


def test_coco_duplicates_and_escapes(tmp_path):
    data, _, _ = _coco_dict(tmp_path)
    data["images"].append({"id": 2, "file_name": "2.jpg", "height": H, "width": W})
    data["annotations"].append(dict(data["annotations"][0]))
    p = tmp_path / "dup.json"
    p.write_text(json.dumps(data))
    col = load_coco(p, tmp_path / "imgs")
    assert [im.image_id for im in col] == ["1"]
    assert [o.attributes["coco_ann_id"] for o in col[0].objects] == [11, 13]
    assert sum(s["reason"].startswith("duplicate") for s in col.skipped) == 2
    data, _, _ = _coco_dict(tmp_path)
    data["images"][0]["file_name"] = "../../secret.jpg"
    p.write_text(json.dumps(data))
    with pytest.raises(DataError, match="escapes"):
        load_coco(p, tmp_path / "imgs")


# ---------------------------------------------------------------------------------------------- refer
def _refer_files(tmp_path):
    data, _, _ = _coco_dict(tmp_path)
    inst = tmp_path / "instances.json"
    inst.write_text(json.dumps(data))
    refs = [
        {"ref_id": 0, "image_id": 1, "ann_id": 10, "split": "train", "category_id": 1,
         "sentences": [{"sent": "left dog", "raw": "Left dog", "sent_id": 0}, {"sent": "the small dog"}]},
        {"ref_id": 1, "image_id": 1, "ann_id": 13, "split": "val", "sentences": [{"sent": "kite"}]},
        # gRefCOCO forms: several targets, no target
        {"ref_id": 2, "image_id": 1, "ann_id": [10, 11], "split": "train", "sentences": [{"sent": "both dogs"}]},
        {"ref_id": 3, "image_id": 1, "ann_id": [-1], "no_target": True, "split": "train",
         "sentences": [{"sent": "the cat"}]},
        {"ref_id": 4, "image_id": 2, "ann_id": 999, "split": "train", "sentences": [{"sent": "ghost"}]},
    ]  # fmt: skip
    rp = tmp_path / "refs.json"
    rp.write_text(json.dumps(refs))
    return rp, inst


def test_load_refer_and_grefcoco(tmp_path):
    rp, inst = _refer_files(tmp_path)
    col = load_refer(rp, inst, tmp_path / "imgs", split="train", dataset="grefcoco")
    one = next(im for im in col if im.image_id == "1")
    by_ann = {o.attributes["coco_ann_id"]: o for o in one.objects}
    assert by_ann[10].expressions == ["left dog", "the small dog"]
    assert by_ann[13].expressions == []  # its ref is in "val"
    assert one.meta["group_expressions"] == [{"text": "both dogs", "object_ids": [0, 1]}]
    assert one.no_target_expressions == ["the cat"]
    assert any("999" in s["reason"] for s in col.skipped)
    assert load_refer(rp, inst, tmp_path / "imgs", split="val")[0].objects[2].expressions == ["kite"]


def test_refer_refuses_pickles(tmp_path):
    _, inst = _refer_files(tmp_path)
    p = tmp_path / "refs(unc).p"
    p.write_bytes(pickle.dumps([{"ref_id": 0}]))
    with pytest.raises(DataError, match="pickle"):
        load_refer(p, inst, tmp_path / "imgs")
    disguised = tmp_path / "refs.json"
    disguised.write_bytes(pickle.dumps([{"ref_id": 0}], protocol=4))
    with pytest.raises(DataError, match="pickle"):
        load_refer(disguised, inst, tmp_path / "imgs")


# ---------------------------------------------------------------------------------------------- ReasonSeg
def test_load_reasonseg(tmp_path):
    d = tmp_path / "reason"
    _img(d / "x1.jpg")
    shapes = [
        {"label": "target", "points": [[10, 10], [40, 10], [40, 30], [10, 30]], "shape_type": "polygon"},
        {"label": "ignore", "points": [[20, 15], [30, 15], [30, 25], [20, 25]], "shape_type": "polygon"},
        {"label": "flag", "points": [[0, 0], [1, 0], [1, 1]]},
    ]
    (d / "x1.json").write_text(json.dumps({"text": ["what holds water?", "the cup"], "is_sentence": True,
                                           "shapes": shapes}))  # fmt: skip
    _img(d / "x2.jpg")
    (d / "x2.json").write_text(
        json.dumps({"text": "q", "shapes": [{"label": "ignore", "points": [[1, 1], [5, 1], [5, 5]]}]})
    )
    (d / "x3.json").write_text(json.dumps({"text": "q", "shapes": []}))  # no image
    _img(d / "x4.jpg")
    (d / "x4.json").write_bytes(b"{broken")
    col = load_reasonseg(d)
    assert [im.image_id for im in col] == ["x1"]
    im = col[0]
    obj = im.objects[0]
    assert obj.expressions == ["what holds water?", "the cup"] and im.meta["is_sentence"] is True
    m = obj.get_mask()
    from getok.ops.masks import rle_decode

    ign = rle_decode(im.meta["ignore_rle"])
    assert ign.any() and not (m & ign).any()  # the smaller ignore polygon is painted over the target
    from getok.ops.polygons import polygons_to_mask

    outer = polygons_to_mask([np.array(shapes[0]["points"], float)], (H, W))
    assert np.array_equal(m | ign, outer)  # together they fill the target polygon
    reasons = sorted(s["reason"].split(":")[0] for s in col.skipped)
    assert reasons == ["empty mask", "no image with the same name", "not valid JSON"]


# ---------------------------------------------------------------------------------------------- real-dev
@pytest.mark.shared
def test_real_dev_manifest(real_dev_root):
    col = load_manifest(real_dev_root)
    assert len(col) == 40 and not col.skipped
    assert sum(len(im.objects) for im in col) == 313
    assert sum(len(o.expressions) for im in col for o in im.objects) == 10
    im = col[0]
    assert im.get_image().shape == (*im.size, 3)
    for o in im.objects:
        m = o.get_mask()
        assert m.shape == im.size and m.any()
    extras = load_manifest(real_dev_root / "extras" / "sam_notebook_images")
    assert len(extras) == 3 and all(not im.objects for im in extras)
