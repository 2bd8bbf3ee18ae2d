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
from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import DataError, GetokError, require
from ...records import AnnotatedImage, AnnotatedObject
from .base import (
    ImageCollection,
    as_box,
    as_flag,
    as_id,
    as_list,
    as_str,
    check_image_size,
    coco_mask_fields,
    read_json,
    safe_join,
)

__all__ = ["load_coco", "read_coco_json", "coco_images"]


def read_coco_json(path: str | Path) -> dict:
    """Read and check a COCO-style instances file: an object whose ``images``, ``annotations`` and
    ``categories`` are lists (the last two may be absent); anything else is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no COCO annotation file at {path}")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: a COCO instances file is an object with 'images', 'annotations', 'categories'")
    for key in ("annotations", "categories"):
        try:
            data[key] = as_list(data.get(key), key)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc
    return data


def _checked_entries(entries: list, kind: str, id_fields: tuple[str, ...], out: ImageCollection, origin: str) -> list:
    """The dict entries of ``images`` / ``annotations`` / ``categories`` whose ``id_fields`` are usable ids
    (:func:`~getok.data_builders.sources.base.as_id`, an integral float normalised to an int); every other
    entry is skipped with the field named."""
    kept = []
    for k, e in enumerate(entries):
        where = f"{origin} {kind}[{k}]"
        if not isinstance(e, dict):
            out.skip(where, f"not a JSON object: {e!r:.60}")
            continue
        try:
            ids = {f: as_id(e.get(f), f) for f in id_fields}
        except DataError as exc:
            out.skip(where, str(exc))
            continue
        kept.append({**e, **ids})
    return kept


def _id_order(v) -> tuple:
    """Sort key for ids that may mix ints and strings (ints first, by value)."""
    return (isinstance(v, str), v)


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
    max_images: int | None = None,
    origin: str | None = None,
) -> dict[Any, AnnotatedImage]:
    """Build :class:`AnnotatedImage` records from a COCO dict into ``out``; returns ``{coco image id: image}``.

    Object ids are the annotation's index within its image (``0..K-1``, annotation order);
    ``attributes["coco_ann_id"]`` keeps the COCO id. Images, annotations and categories whose ids are not
    integers or strings (an annotation without ``image_id`` or ``category_id`` included) are skipped with
    the field named; ``origin`` (default: ``out.source["instances"]``) names the file in skip items.
    ``max_images`` keeps the first images by id (of those in ``image_ids``, when given).
    """
    image_root = Path(image_root)
    origin = origin or str(out.source.get("instances", "COCO"))
    images = _checked_entries(data["images"], "images", ("id",), out, origin)
    anns_in = _checked_entries(data["annotations"], "annotations", ("id", "image_id", "category_id"), out, origin)
    cats_in = _checked_entries(data["categories"], "categories", ("id",), out, origin)
    ids = Counter(im["id"] for im in images)
    dup_images = {k for k, v in ids.items() if v > 1}
    ann_ids = Counter(a["id"] for a in anns_in)
    dup_anns = {k for k, v in ann_ids.items() if v > 1}
    for k in sorted(dup_anns, key=_id_order):
        out.skip(f"{origin} annotation {k}", "duplicate annotation id (every copy dropped)")
    coco = _coco_index(
        {
            **data,
            "images": [im for im in images if im["id"] not in dup_images],
            "annotations": [a for a in anns_in if a["id"] not in dup_anns],
            "categories": cats_in,
        }
    )
    for k in sorted(dup_images, key=_id_order):
        out.skip(f"{origin} image {k}", "duplicate image id (every copy dropped)")
    cats = {}
    for c in cats_in:
        try:
            cats[c["id"]] = as_str(c.get("name"), "name", default=str(c["id"]))
        except DataError as exc:
            out.skip(f"{origin} category {c['id']}", str(exc))
    order = [i for i in sorted(coco.imgs, key=_id_order) if image_ids is None or i in image_ids]
    if max_images is not None:
        order = order[: int(max_images)]
    result: dict[Any, AnnotatedImage] = {}
    seen_stems: set[str] = set()
    for img_id in order:
        info = coco.imgs[img_id]
        file_name = info.get("file_name")
        where = f"{origin} image {img_id} ({file_name!r:.80})"
        if not isinstance(file_name, str) or not file_name.strip():
            out.skip(where, f"'file_name' must be a non-empty path string, got {file_name!r:.60}")
            continue
        path = safe_join(image_root, file_name)  # escaping paths raise
        try:
            h, w = check_image_size(info.get("height"), info.get("width"), what="bad or missing width/height:")
        except DataError as exc:
            out.skip(where, str(exc))
            continue
        if check_files and not path.is_file():
            out.skip(where, f"image file not found: {path}")
            continue
        anns = []
        for a in coco.imgToAnns.get(img_id, []):
            try:
                anns.append((a, as_flag(a.get("iscrowd"), "iscrowd")))
            except DataError as exc:
                out.skip(f"{where} annotation {a['id']}", str(exc))
        noncrowd_cats = Counter(a["category_id"] for a, crowd in anns if not crowd)
        objects = []
        for j, (a, crowd) in enumerate(anns):
            owhere = f"{where} annotation {a['id']}"
            if crowd and not include_crowd:
                out.note("crowd_excluded")
                continue
            try:
                fields = coco_mask_fields(a.get("segmentation"), (h, w))
                attrs = {
                    "coco_ann_id": a["id"],
                    "category_id": a["category_id"],
                    "iscrowd": crowd,
                    "area": a.get("area"),
                    "category_unique_in_image": (not crowd) and noncrowd_cats[a["category_id"]] == 1,
                }
                if "bbox" in a:
                    attrs["bbox_xywh"] = as_box(a["bbox"], "bbox")
                objects.append(
                    AnnotatedObject(
                        id=j,
                        category=str(cats.get(a["category_id"], a["category_id"])),
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
    coco_images(
        data, image_root, out, include_crowd=include_crowd, check_files=check_files, max_images=max_images,
        origin=str(instances_json),
    )  # fmt: skip
    return out
