"""What a build returns and where its images go: :class:`SampleList` (the samples plus what was skipped and
the in-memory images still to be written), :func:`safe_name` (a file-system safe image id) and
:func:`image_ref` (the image path a sample records)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from ..records import AnnotatedImage

__all__ = ["SampleList", "safe_name", "image_ref"]

log = logging.getLogger("getok.data_builders.tasks")  # the builders' logger (skips are logged under it)


class SampleList(list):
    """Samples plus what the build skipped and which in-memory images still need writing.

    Attributes
    ----------
    skipped : list of dict
        ``{"item", "reason"}`` per skipped image, object or task.
    images : dict
        ``image_id → AnnotatedImage`` for images held in memory (procedural scenes): the dataset writer
        saves them as ``images/<id>.png``, the path the samples name.
    settings : dict
        Codec spec and task configuration.
    """

    def __init__(self, items=(), *, settings: dict | None = None) -> None:
        super().__init__(items)
        self.skipped: list[dict[str, str]] = []
        self.images: dict[str, AnnotatedImage] = {}
        self.settings: dict = dict(settings or {})

    def skip(self, item: str, reason: str) -> None:
        # a bad image is worth a warning; per-object policy skips (no unique expression ...) are routine
        (log.warning if item.startswith("image ") else log.debug)("skipped %s: %s", item, reason)
        self.skipped.append({"item": str(item), "reason": str(reason)})

    def counts(self) -> dict[str, int]:
        """Samples per task."""
        return dict(sorted(Counter(s.task for s in self).items()))

    def extend_from(self, other: SampleList) -> None:
        """Append another build's samples, skips and pending images."""
        self.extend(other)
        self.skipped.extend(other.skipped)
        self.images.update(other.images)


def safe_name(image_id: str) -> str:
    """A file-system safe form of an image id (``/`` and odd characters → ``_``).

    >>> safe_name("coco/000000139:x")
    'coco_000000139_x'
    """
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(image_id))
    return out.strip(".") or "image"


def image_ref(image: AnnotatedImage) -> tuple[str, bool]:
    """Path a sample records for ``image`` and whether the dataset writer must save its pixels.

    Images with a file keep its absolute path; images held only in memory become ``images/<id>.png``.
    """
    if image.image_path:
        return str(Path(image.image_path).resolve()), False
    return f"images/{safe_name(image.image_id)}.png", True
