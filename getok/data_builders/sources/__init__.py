"""Data sources: loaders that turn annotation files into :class:`~getok.records.AnnotatedImage`.

* :func:`load_manifest` — the ``manifest.json`` format of ``../shared/data/real-dev``;
* :func:`load_coco` — COCO ``instances_*.json`` (pycocotools);
* :func:`load_refer` — RefCOCO / RefCOCO+ / RefCOCOg / gRefCOCO refs (JSON form; pickles are refused);
* :func:`load_reasonseg` — ReasonSeg's per-image JSON files.

Procedural scenes live in :mod:`getok.data_builders.scenes`. Every loader returns an
:class:`ImageCollection` (a list with ``skipped`` items and their reasons).
"""

from .base import ImageCollection, coco_mask_fields, safe_join
from .coco import load_coco
from .manifest import load_manifest
from .reasonseg import load_reasonseg
from .refer import load_refer

__all__ = [
    "ImageCollection",
    "coco_mask_fields",
    "safe_join",
    "load_manifest",
    "load_coco",
    "load_refer",
    "load_reasonseg",
]
