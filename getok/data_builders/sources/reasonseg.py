"""ReasonSeg (LISA): one labelme-style JSON per image, beside the image with the same stem.

A file looks like::

    {"text": ["What in the picture can be used to cut paper?"], "is_sentence": true,
     "shapes": [{"label": "target", "points": [[x, y], ...], "shape_type": "polygon"},
                {"label": "ignore", "points": [...]}]}

The mask follows LISA's reading: polygons are painted largest first, so a smaller one drawn later wins
where they overlap; ``target`` polygons paint the object, ``ignore`` polygons an ignore region (kept in
``meta["ignore_rle"]``, to leave out of metrics), ``flag`` polygons are skipped. Points are continuous
pixel coordinates. Each image becomes one object (category ``"target"``) whose expressions are the
``text`` entries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError, GetokError
from ...ops.masks import rle_encode
from ...ops.polygons import polygons_to_mask
from ...records import AnnotatedImage, AnnotatedObject, check_image_size, read_image_size
from .base import ImageCollection, as_flag, as_points, as_str, as_texts, read_json, safe_join

__all__ = ["load_reasonseg"]

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _image_size(path: Path, anno: dict) -> tuple[int, int]:
    """The declared ``imageHeight`` / ``imageWidth`` (checked, capped at
    :data:`~getok.records.MAX_IMAGE_PIXELS`), else the image file's header."""
    h, w = anno.get("imageHeight"), anno.get("imageWidth")
    if h is None and w is None:
        return read_image_size(path)
    return check_image_size(h, w, what="bad imageHeight/imageWidth:", names=("imageHeight", "imageWidth"))


def _paint(shapes: list, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Target and ignore masks from labelme shapes, largest polygon painted first."""
    polys = []
    for s in shapes:
        if not isinstance(s, dict):
            raise DataError("a shape is not a JSON object")
        label = (as_str(s.get("label"), "label") or "").lower()
        if label == "flag":
            continue
        pts = as_points(s.get("points", []), "points")
        if len(pts) < 3:
            raise DataError(f"shape {label!r} needs >= 3 finite [x, y] points")
        h, w = size
        if pts.min() < -max(h, w) or (pts - [w, h]).max() > max(h, w):
            raise DataError(f"shape {label!r} has points far outside the {h} x {w} image")
        x, y = pts[:, 0], pts[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
        polys.append((area, 255 if label == "ignore" else 1, pts))
    canvas = np.zeros(size, dtype=np.uint8)
    for _, value, pts in sorted(polys, key=lambda t: -t[0]):
        m = polygons_to_mask([pts], size)
        canvas[m] = value
    return canvas == 1, canvas == 255


def load_reasonseg(directory: str | Path, *, strict: bool = False) -> ImageCollection:
    """Load a ReasonSeg split directory (``*.json`` + images with the same stem).

    Returns
    -------
    ImageCollection
        One image per JSON file (sorted by name) with one ``"target"`` object; ``meta`` has
        ``is_sentence`` and ``ignore_rle`` (when the file has ignore regions). Files without a
        usable target, without an image, with malformed fields (``text`` not strings, ``points`` not
        ``[x, y]`` pairs, a declared size above :data:`~getok.records.MAX_IMAGE_PIXELS`)
        are skipped and listed; a JSON file or image that is a symlink leaving ``directory`` raises.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"no ReasonSeg directory at {directory}")
    out = ImageCollection(source={"loader": "reasonseg", "dir": str(directory)}, strict=strict)
    for jp in sorted(directory.glob("*.json")):
        where = str(jp)
        safe_join(directory, jp.name)  # a symlink out of the directory raises, as in every loader
        img_path = next((jp.with_suffix(e) for e in _IMAGE_EXTS if jp.with_suffix(e).is_file()), None)
        if img_path is None:
            out.skip(where, "no image with the same name")
            continue
        img_path = safe_join(directory, img_path.name)
        try:
            anno = read_json(jp, encodings=("utf-8", "cp1252"))  # some ReasonSeg files are not UTF-8
        except DataError as exc:
            out.skip(where, f"not valid JSON: {exc}")
            continue
        try:
            if not isinstance(anno, dict) or not isinstance(anno.get("shapes"), list):
                raise DataError("expected an object with a 'shapes' list")
            texts = as_texts(anno.get("text"), "text")
            size = _image_size(img_path, anno)
            target, ignore = _paint(anno["shapes"], size)
            if not target.any():
                raise DataError("empty mask: no target polygon")
            obj = AnnotatedObject(
                id=0,
                category="target",
                size=size,
                rle=rle_encode(target),
                expressions=texts,
                attributes={"referable_by_category": False},  # "the target" names nothing
            )
            is_sentence = as_flag(anno.get("is_sentence"), "is_sentence")
            meta = {"source": "reasonseg", "is_sentence": is_sentence, "path": img_path.name}
            if ignore.any():
                meta["ignore_rle"] = rle_encode(ignore)
            out.append(AnnotatedImage(image_id=jp.stem, size=size, objects=[obj], image_path=str(img_path), meta=meta))
        except GetokError as exc:
            out.skip(where, str(exc))
    return out
