"""Refer-style annotations: RefCOCO, RefCOCO+, RefCOCOg and gRefCOCO.

Each dataset is a *refs* list plus a COCO-style ``instances.json`` (images, annotations, categories).
A ref names an image, one annotation (``ann_id``) and its sentences::

    {"ref_id": 0, "image_id": 581857, "ann_id": 1719310, "split": "train", "category_id": 1,
     "sentences": [{"sent": "the lady with the blue shirt", "raw": "...", "sent_id": 0, "tokens": [...]}]}

gRefCOCO (``grefs(unc).json``, JSON already) has ``ann_id`` as a list (several targets) and
``no_target: true`` (with ``ann_id`` ``[-1]`` or empty) for expressions that name nothing.

**Pickles are never read.** The original RefCOCO / RefCOCO+ / RefCOCOg releases ship ``refs(unc).p`` /
``refs(umd).p`` / ``refs(google).p`` as Python pickles, and unpickling a downloaded file can run
arbitrary code. Convert them once, in an environment you trust, to the JSON list this loader reads::

    python -c "import json, pickle, sys; json.dump(pickle.load(open(sys.argv[1], 'rb')), open(sys.argv[2], 'w'))" \\
        'refs(unc).p' refs_unc.json

(the refs are plain lists of dicts, so the JSON holds exactly the same content). Passing a ``.p`` /
``.pkl`` file raises :class:`DataError` with this advice.

Single-target sentences become the object's ``expressions``; multi-target ones go to
``meta["group_expressions"]`` (``{"text", "object_ids"}``); no-target ones to ``no_target_expressions``.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from .base import ImageCollection, as_flag, as_id, as_str, as_texts, is_pickle_path, read_json
from .coco import coco_images, read_coco_json

__all__ = ["load_refer", "read_refs_json"]

_PICKLE_ADVICE = (
    "is a pickle; getok never unpickles files. Convert it once, where you trust the file, with "
    "python -c \"import json, pickle, sys; json.dump(pickle.load(open(sys.argv[1], 'rb')), open(sys.argv[2], 'w'))\" "
    "IN.p OUT.json and pass the JSON"
)


def read_refs_json(path: str | Path) -> list[dict]:
    """Read a refs file in JSON form (a list of refs, or ``{"refs": [...]}``)."""
    path = Path(path)
    if is_pickle_path(path):
        raise DataError(f"{path} {_PICKLE_ADVICE}")
    if not path.is_file():
        raise DataError(f"no refs file at {path}")
    with path.open("rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80":  # pickle protocol marker, whatever the file is called
        raise DataError(f"{path} {_PICKLE_ADVICE}")
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("refs"), list):
        data = data["refs"]
    if not isinstance(data, list):
        raise DataError(f"{path}: refs must be a JSON list of ref objects")
    return data


def _ann_list(ref: dict) -> list:
    """The ref's target annotation ids (``ann_id`` one id or a list; ``-1`` / ``None`` mean no target)."""
    a = ref.get("ann_id")
    anns = a if isinstance(a, list) else [a]
    return [as_id(x, "ann_id") for x in anns if x not in (-1, None)]


def load_refer(
    refs_json: str | Path,
    instances_json: str | Path,
    image_root: str | Path,
    *,
    split: str | None = None,
    dataset: str = "refcoco",
    include_crowd: bool = False,
    strict: bool = False,
    check_files: bool = True,
) -> ImageCollection:
    """Load a refer-style dataset (RefCOCO / RefCOCO+ / RefCOCOg / gRefCOCO) in its JSON form.

    Parameters
    ----------
    refs_json : path
        The refs list as JSON (see the module docstring for converting the official pickles).
    instances_json : path
        The dataset's COCO-style ``instances.json``.
    image_root : path
        Directory of the COCO images (``file_name`` is relative to it, e.g. ``train2014``).
    split : str, optional
        Keep refs of this split only (``train``, ``val``, ``testA``, ...).
    dataset : str
        Name recorded in the images' ``meta["source"]``.
    include_crowd, strict, check_files
        See :func:`~getok.data_builders.sources.load_manifest`.

    Returns
    -------
    ImageCollection
        The images the kept refs point to, with every instance of each image as an object.
    """
    refs = read_refs_json(refs_json)
    data = read_coco_json(instances_json)
    out = ImageCollection(
        source={
            "loader": "refer",
            "dataset": dataset,
            "refs": str(refs_json),
            "instances": str(instances_json),
            "image_root": str(image_root),
            "split": split,
        },
        strict=strict,
    )
    kept = []
    for i, r in enumerate(refs):
        where = f"{refs_json} ref[{i}]"
        if not isinstance(r, dict) or "image_id" not in r:
            out.skip(where, "not a ref object with an image_id")
            continue
        try:
            r_split = as_str(r.get("split"), "split")
            if split is not None and r_split != split:
                continue
            ref = {
                **r,
                "image_id": as_id(r["image_id"], "image_id"),
                "ann_id": _ann_list(r),
                "sentences": as_texts(r.get("sentences"), "sentences", keys=("sent", "raw")),
                "no_target": as_flag(r.get("no_target"), "no_target"),
                "where": f"{where} (ref_id {r.get('ref_id')!r:.40}, image {r['image_id']!r:.40})",
            }
        except DataError as exc:
            out.skip(where, str(exc))
            continue
        kept.append(ref)
    by_coco = coco_images(
        data,
        image_root,
        out,
        include_crowd=include_crowd,
        check_files=check_files,
        image_ids={r["image_id"] for r in kept},
        source=dataset,
        origin=str(instances_json),
    )
    ann_to_obj = {}
    for img in by_coco.values():
        for o in img.objects:
            ann_to_obj[o.attributes.get("coco_ann_id")] = (img, o)
    n_expr = 0
    for r in kept:
        where = r["where"]
        img = by_coco.get(r["image_id"])
        if img is None:
            out.skip(where, "its image was skipped or is not in the instances file")
            continue
        texts = r["sentences"]
        if not texts:
            out.skip(where, "no sentences")
            continue
        anns = r["ann_id"]
        if r["no_target"] or not anns:
            img.no_target_expressions.extend(texts)
            n_expr += len(texts)
            continue
        targets = [ann_to_obj.get(a) for a in anns]
        if any(t is None or t[0] is not img for t in targets):
            missing = [a for a, t in zip(anns, targets) if t is None or t[0] is not img]
            out.skip(where, f"annotation(s) {missing} not among the image's usable objects")
            continue
        ids = sorted({t[1].id for t in targets})
        if len(ids) == 1:
            targets[0][1].expressions.extend(texts)
        else:
            groups = img.meta.setdefault("group_expressions", [])
            groups.extend({"text": t, "object_ids": ids} for t in texts)
        splits = img.meta.setdefault("splits", [])
        if r.get("split") is not None and r["split"] not in splits:
            splits.append(r["split"])
        n_expr += len(texts)
    out.stats["expressions"] = n_expr
    return out
