"""COCO instance annotations (``instances_*.json``) through pycocotools.

Polygons, uncompressed RLE (crowd regions) and compressed RLE are all accepted; masks are decoded
lazily. Crowd regions (``iscrowd=1``) are not instances of one object: they are excluded by default
(``include_crowd=True`` keeps them, with ``attributes["iscrowd"] = True``) and counted in ``stats``.
Every object records whether it is the only non-crowd instance of its category in the image
(``category_unique_in_image``), which the task builder uses to refer to it by its category name.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import DataError, GetokError, require
from ..records import AnnotatedImage, AnnotatedObject
from .base import ImageCollection, coco_mask_fields, safe_join

__all__ = ["load_coco", "read_coco_json", "coco_images"]


def read_coco_json(path: str | Path) -> dict:
    """Read and check a COCO-style instances file (``images``, ``annotations``, ``categories``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no COCO annotation file at {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: a COCO instances file is an object with 'images', 'annotations', 'categories'")
    data.setdefault("annotations", [])
    data.setdefault("categories", [])
    return data


def _coco_index(data: dict):
    """A pycocotools ``COCO`` index over an already-loaded dict (its load messages silenced)."""
    coco_mod = require("pycocotools.coco", "data", "COCO loading")
    coco = coco_mod.COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_images(
    data: dict,
    image_root: str | Path,
    out: ImageCollection,
    *,
    include_crowd: bool = False,
    check_files: bool = True,
    image_ids: set | None = None,
    source: str = "coco",
) -> dict[Any, AnnotatedImage]:
    """Build :class:`AnnotatedImage` records from a COCO dict into ``out``; returns ``{coco image id: image}``.

    Object ids are the annotation's index within its image (``0..K-1``, annotation order);
    ``attributes["coco_ann_id"]`` keeps the COCO id.
    """
    image_root = Path(image_root)
    ids = Counter(im.get("id") for im in data["images"] if isinstance(im, dict))
    dup_images = {k for k, v in ids.items() if v > 1}
    ann_ids = Counter(a.get("id") for a in data["annotations"] if isinstance(a, dict))
    dup_anns = {k for k, v in ann_ids.items() if v > 1}
    for k in sorted(dup_anns, key=str):
        out.skip(f"annotation {k}", "duplicate annotation id (every copy dropped)")
    coco = _coco_index(
        {
            **data,
            "images": [im for im in data["images"] if isinstance(im, dict) and im.get("id") not in dup_images],
            "annotations": [a for a in data["annotations"] if isinstance(a, dict) and a.get("id") not in dup_anns],
        }
    )
    for k in sorted(dup_images, key=str):
        out.skip(f"image {k}", "duplicate image id (every copy dropped)")
    cats = {c["id"]: c.get("name", str(c["id"])) for c in data["categories"] if isinstance(c, dict) and "id" in c}
    result: dict[Any, AnnotatedImage] = {}
    seen_stems: set[str] = set()
    for img_id in sorted(coco.imgs, key=lambda v: (str(type(v)), v)):
        if image_ids is not None and img_id not in image_ids:
            continue
        info = coco.imgs[img_id]
        where = f"image {img_id} ({info.get('file_name')})"
        file_name = info.get("file_name")
        path = safe_join(image_root, file_name)  # escaping paths raise
        try:
            h, w = int(info["height"]), int(info["width"])
            if h <= 0 or w <= 0:
                raise ValueError("non-positive size")
        except (KeyError, TypeError, ValueError) as exc:
            out.skip(where, f"bad or missing width/height: {exc}")
            continue
        if check_files and not path.is_file():
            out.skip(where, f"image file not found: {path}")
            continue
        anns = coco.imgToAnns.get(img_id, [])
        noncrowd_cats = Counter(a.get("category_id") for a in anns if not a.get("iscrowd"))
        objects = []
        for j, a in enumerate(anns):
            owhere = f"{where} annotation {a.get('id')}"
            crowd = bool(a.get("iscrowd"))
            if crowd and not include_crowd:
                out.note("crowd_excluded")
                continue
            try:
                fields = coco_mask_fields(a.get("segmentation"), (h, w))
                attrs = {
                    "coco_ann_id": a.get("id"),
                    "category_id": a.get("category_id"),
                    "iscrowd": crowd,
                    "area": a.get("area"),
                    "category_unique_in_image": (not crowd) and noncrowd_cats[a.get("category_id")] == 1,
                }
                if "bbox" in a:
                    attrs["bbox_xywh"] = list(a["bbox"])
                objects.append(
                    AnnotatedObject(
                        id=j,
                        category=str(cats.get(a.get("category_id"), a.get("category_id"))),
                        size=(h, w),
                        attributes=attrs,
                        **fields,
                    )
                )
            except GetokError as exc:
                out.skip(owhere, str(exc))
        stem = Path(file_name).stem
        image_id = stem if stem not in seen_stems else f"{stem}-{img_id}"
        try:
            rec = AnnotatedImage(
                image_id=image_id,
                size=(h, w),
                objects=objects,
                image_path=str(path),
                meta={"source": source, "coco_image_id": img_id, "path": file_name},
            )
        except GetokError as exc:
            out.skip(where, str(exc))
            continue
        seen_stems.add(stem)
        result[img_id] = rec
        out.append(rec)
    return result


def load_coco(
    instances_json: str | Path,
    image_root: str | Path,
    *,
    include_crowd: bool = False,
    strict: bool = False,
    check_files: bool = True,
    max_images: int | None = None,
) -> ImageCollection:
    """Load a COCO instances file.

    Parameters
    ----------
    instances_json : path
        ``instances_*.json`` (``images`` with ``file_name`` / ``height`` / ``width``, ``annotations`` with
        ``segmentation`` / ``iscrowd`` / ``category_id``, ``categories``).
    image_root : path
        Directory that ``file_name`` is relative to (a name that escapes it is a :class:`DataError`).
    include_crowd, strict, check_files
        See :func:`~getok.data_builders.sources.load_manifest`.
    max_images : int, optional
        Keep the first ``max_images`` images (by COCO id).

    Returns
    -------
    ImageCollection
        ``image_id`` is the file's stem; objects are instances with category names.
    """
    data = read_coco_json(instances_json)
    out = ImageCollection(
        source={"loader": "coco", "instances": str(instances_json), "image_root": str(image_root)}, strict=strict
    )
    ids = None
    if max_images is not None:
        all_ids = sorted(
            (im.get("id") for im in data["images"] if isinstance(im, dict)), key=lambda v: (str(type(v)), v)
        )
        ids = set(all_ids[: int(max_images)])
    coco_images(data, image_root, out, include_crowd=include_crowd, check_files=check_files, image_ids=ids)
    return out
