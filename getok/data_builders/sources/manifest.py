"""The ``manifest.json`` format of ``../shared/data/real-dev``: a JSON list of image records.

Each record names an image (``image``, relative to the root), its ``width`` / ``height`` and its
``objects`` (COCO ``segmentation`` as polygons or uncompressed RLE, ``category``, ``expressions`` with a
``text``), plus ``no_target_expressions``. See that directory's README for the full schema.

Checks at load time: the record's fields and types, image paths inside the root (an escaping path is a
:class:`DataError`, always), the image file's presence, duplicate image ids and object ids, masks that are
empty or larger than the image. A bad record or object is skipped and listed (``strict=True`` raises).
Pixels are decoded lazily, so a size mismatch or a corrupt file is found when the image is used
(the task builder skips such images and lists them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ...errors import DataError, GetokError
from ...io import atomic_dir
from ...ops.masks import rle_encode
from ...records import AnnotatedImage, AnnotatedObject, save_png
from ..tasks import safe_name
from .base import (
    ImageCollection,
    as_box,
    as_flag,
    as_id,
    as_int,
    as_list,
    as_str,
    as_texts,
    check_image_size,
    coco_mask_fields,
    read_json,
    safe_join,
)

__all__ = ["load_manifest", "write_manifest", "manifest_record"]


def load_manifest(
    root: str | Path,
    manifest: str = "manifest.json",
    *,
    include_crowd: bool = False,
    strict: bool = False,
    check_files: bool = True,
) -> ImageCollection:
    """Read a real-dev style manifest into :class:`AnnotatedImage` records.

    Parameters
    ----------
    root : path
        Directory holding ``manifest`` and the images it names.
    manifest : str
        File name of the manifest inside ``root``.
    include_crowd : bool
        Keep ``iscrowd`` regions as objects (excluded by default, counted in ``stats``).
    strict : bool
        Raise :class:`DataError` at the first bad record instead of skipping it.
    check_files : bool
        Skip records whose image file does not exist.

    Returns
    -------
    ImageCollection
        Images in manifest order; ``image_id`` is the image file's stem; objects keep their manifest
        ``id``; attributes carry ``category_id``, ``coco_ann_id``, ``bbox_xywh``, ``area``,
        ``category_unique_in_image``. A field of the wrong type skips its object (object fields) or its
        record (record fields), named ``<manifest path>[<index>] (<image>) ...`` with the field in the reason;
        a record without a string ``image`` is skipped; an image path that escapes ``root`` raises.
    """
    root = Path(root)
    path = root / manifest
    if not path.is_file():
        raise DataError(f"no manifest at {path}")
    records = read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: a manifest is a JSON list of image records, got {type(records).__name__}")
    out = ImageCollection(source={"loader": "manifest", "root": str(root), "manifest": manifest}, strict=strict)
    seen: set[str] = set()
    for i, rec in enumerate(records):
        where = f"{path}[{i}]"
        if not isinstance(rec, dict):
            out.skip(where, "record is not a JSON object")
            continue
        rel = rec.get("image")
        if not isinstance(rel, str) or not rel.strip():
            out.skip(where, f"'image' must be a non-empty path string, got {rel!r:.60}")
            continue
        image_path = safe_join(root, rel)  # escaping paths raise, never skipped
        where = f"{path}[{i}] ({rel})"
        try:
            h, w = check_image_size(rec.get("height"), rec.get("width"), what="bad or missing width/height:")
            objs_in = as_list(rec.get("objects"), "objects")
            captions = as_texts(rec.get("captions"), "captions")
            no_target = as_texts(rec.get("no_target_expressions"), "no_target_expressions")
            groups_in = as_list(rec.get("group_expressions"), "group_expressions")
            unverified = as_list(rec.get("unverified_expressions"), "unverified_expressions")
        except DataError as exc:
            out.skip(where, str(exc))
            continue
        image_id = Path(rel).stem
        if image_id in seen:
            out.skip(where, f"duplicate image id: {image_id!r}")
            continue
        if check_files and not image_path.is_file():
            out.skip(where, f"image file not found: {image_path}")
            continue
        objects = []
        obj_ids: set[int] = set()
        dup = False
        for j, o in enumerate(objs_in):
            owhere = f"{where} object [{j}]"
            if not isinstance(o, dict):
                out.skip(owhere, "object is not a JSON object")
                continue
            try:
                oid = as_int(o.get("id", j), "id")
            except DataError as exc:
                out.skip(owhere, f"bad object id: {exc}")
                continue
            owhere = f"{where} object {oid}"
            if oid in obj_ids:
                dup = True
                break
            obj_ids.add(oid)
            try:
                if as_flag(o.get("iscrowd"), "iscrowd") and not include_crowd:
                    out.note("crowd_excluded")
                    continue
                fields = coco_mask_fields(o.get("segmentation"), (h, w))
                category = as_str(o.get("category"), "category")
                if not category:  # fall back on the category id, then on "object"
                    cid = o.get("category_id")
                    category = str(as_id(cid, "category_id")) if cid is not None else "object"
                attrs = dict(o["attributes"]) if isinstance(o.get("attributes"), dict) else {}
                attrs.update(
                    {
                        k: o[k]
                        for k in ("category_id", "coco_ann_id", "area", "iscrowd", "category_unique_in_image")
                        if k in o
                    }
                )
                if "bbox" in o:
                    attrs["bbox_xywh"] = as_box(o["bbox"], "bbox")
                objects.append(
                    AnnotatedObject(
                        id=oid,
                        category=category,
                        size=(h, w),
                        attributes=attrs,
                        expressions=as_texts(o.get("expressions"), "expressions"),
                        **fields,
                    )
                )
            except GetokError as exc:
                out.skip(owhere, str(exc))
        if dup:
            out.skip(where, "duplicate object ids: the record is ambiguous")
            continue
        meta = {"source": "manifest", "manifest_index": i, "path": rel, "captions": captions}
        for k in ("sha256", "coco_image_id", "mode", "license"):
            if k in rec:
                meta[k] = rec[k]
        if isinstance(rec.get("meta"), dict):
            meta.update({k: v for k, v in rec["meta"].items() if k not in meta})
        groups = []
        for k, g in enumerate(groups_in):
            try:
                if not isinstance(g, dict):
                    raise DataError(f"not a JSON object: {g!r:.60}")
                text = as_str(g.get("text"), "text")
                if not text:
                    raise DataError("'text' must be a non-empty string")
                if g.get("object_ids") is None:
                    raise DataError("'object_ids' is missing")
                ids = [as_int(v, "object_ids") for v in as_list(g["object_ids"], "object_ids")]
            except DataError as exc:
                out.skip(f"{where} group_expressions[{k}]", str(exc))
                continue
            groups.append({"text": text, "object_ids": ids})
        meta["group_expressions"] = groups
        if unverified:
            meta["unverified_expressions"] = len(unverified)
        try:
            img = AnnotatedImage(
                image_id=image_id,
                size=(h, w),
                objects=objects,
                image_path=str(image_path),
                no_target_expressions=no_target,
                meta=meta,
            )
        except GetokError as exc:
            out.skip(where, str(exc))
            continue
        seen.add(image_id)
        out.append(img)
    return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def manifest_record(image: AnnotatedImage, image_rel: str) -> dict:
    """One manifest record of ``image`` (masks as compressed COCO RLE, ``segmentation_format: "rle"``).

    Array-valued ``meta`` entries (such as a scene's ``label_map``) are left out: a scene's label map is
    recovered from its disjoint object masks (:func:`getok.data_builders.scenes.label_map_from_objects`).
    """
    h, w = image.size
    objects = []
    for o in image.objects:
        m = o.get_mask()
        types = o.attributes.get("expression_types", [])
        attrs = {k: v for k, v in o.attributes.items() if k != "expression_types" and not isinstance(v, np.ndarray)}
        objects.append(
            {
                "id": int(o.id),
                "category": o.category,
                "segmentation": rle_encode(m),
                "segmentation_format": "rle",
                "area": int(np.count_nonzero(m)),
                "iscrowd": False,
                "attributes": _jsonable(attrs),
                "expressions": [
                    {"text": t, **({"type": types[i]} if i < len(types) else {})} for i, t in enumerate(o.expressions)
                ],
            }
        )
    meta = {k: v for k, v in image.meta.items() if k != "group_expressions" and not isinstance(v, np.ndarray)}
    return {
        "image": image_rel,
        "width": w,
        "height": h,
        "mode": "RGB",
        "objects": objects,
        "no_target_expressions": [{"text": t} for t in image.no_target_expressions],
        "group_expressions": _jsonable(image.meta.get("group_expressions", [])),
        "meta": _jsonable(meta),
    }


def write_manifest(
    images: Iterable[AnnotatedImage], out_dir: str | Path, *, overwrite: bool = False, progress: bool = False
) -> Path:
    """Write images (PNG) and a real-dev style ``manifest.json`` that :func:`load_manifest` reads back.

    Used by ``getok build scenes``; works for any source (e.g. to freeze a filtered COCO subset).
    Atomic: the directory appears complete or not at all.
    """

    it = images
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(images, desc="images", unit="img")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        records = []
        for im in it:
            rel = f"images/{safe_name(im.image_id)}.png"
            if (tmp / rel).exists():
                raise DataError(f"two images map to the same file name {rel} (ids must be unique)")
            save_png(im.get_image(), tmp / rel)
            records.append(manifest_record(im, rel))
        (tmp / "manifest.json").write_text(json.dumps(records, separators=(",", ":")))
    return Path(out_dir)
