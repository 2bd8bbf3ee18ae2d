"""``rle_descriptors``: Text4Seg-style semantic descriptors, row run-length encoded (for comparison).

Spec: ``rle_descriptors:rows=16``. The image is cut into ``rows x rows`` patches; each patch is labelled
with the instance covering at least half of it (``target``, or ``target1``, ``target2``... with several
instances) or ``others``; each patch row is written as runs ``label*count`` joined by ``|``, rows joined
by newlines. The whole answer is one block (not one line per instance); ``none`` is the no-target answer.
An instance too small to own any patch gets the patch it covers most, so it is never lost.

Examples
--------
>>> import numpy as np
>>> from getok import Geometry, get_codec
>>> m = np.zeros((40, 40), bool); m[0:20, 0:10] = True
>>> print(get_codec("rle_descriptors:rows=4").encode([Geometry(size=(40, 40), mask=m)]))
target*1|others*3
target*1|others*3
others*4
others*4
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DecodeError, GeometryError
from ..geometry import Geometry
from ..ops.grid import index_to_cells, pixel_cell_lookup
from ._shapes import region_mask
from .base import NO_TARGET, Codec, register_codec

__all__ = ["RleDescriptorsCodec"]

_RUN = re.compile(r"^([a-z]+[0-9]*)\s*\*\s*([0-9]{1,4})$")
OTHERS = "others"


@dataclass(frozen=True)
class RleConfig:
    rows: int = 16

    def __post_init__(self):
        if not 1 <= self.rows <= 256:
            raise ConfigError(f"rle_descriptors.rows must be in [1, 256], got {self.rows}")


@register_codec
class RleDescriptorsCodec(Codec):
    name = "rle_descriptors"
    kinds = ("mask",)
    Config = RleConfig

    def _labels(self, k: int) -> list[str]:
        return ["target"] if k == 1 else [f"target{i + 1}" for i in range(k)]

    def encode(self, geometries: Sequence[Geometry], kind: str = "mask") -> str:
        self._check_kind(kind)
        if isinstance(geometries, Geometry):
            geometries = [geometries]
        if len(geometries) == 0:
            return NO_TARGET
        n = self.config.rows
        size = geometries[0].size
        rows, cols = pixel_cell_lookup(n, size)
        cell_of_pixel = (rows[:, None] * n + cols[None, :]).ravel()
        per_cell = np.bincount(cell_of_pixel, minlength=n * n).astype(np.float64)
        cover = np.zeros((len(geometries), n * n))
        for i, g in enumerate(geometries):
            if g.size != size:
                raise GeometryError("all instances of one answer must share the image size")
            m = region_mask(g).ravel()
            cover[i] = np.bincount(cell_of_pixel[m], minlength=n * n) / np.maximum(per_cell, 1)
        label = np.full(n * n, -1, dtype=np.int64)
        best = cover.argmax(axis=0)
        owned = cover.max(axis=0) >= 0.5
        label[owned] = best[owned]
        for i in range(len(geometries)):
            if not (label == i).any() and cover[i].max() > 0:
                label[int(cover[i].argmax())] = i
        names = self._labels(len(geometries))
        lines = []
        for r in range(n):
            row = label[r * n : (r + 1) * n]
            runs, start = [], 0
            for c in range(1, n + 1):
                if c == n or row[c] != row[start]:
                    runs.append(f"{OTHERS if row[start] < 0 else names[row[start]]}*{c - start}")
                    start = c
            lines.append("|".join(runs))
        return "\n".join(lines)

    def decode(self, text: str, size, kind: str = "mask") -> list[Geometry]:
        self._check_kind(kind)
        if not isinstance(text, str):
            raise DecodeError("answer must be a string", "not_text")
        body = text.strip()
        if not body:
            raise DecodeError("empty answer (the no-target answer is 'none')", "empty")
        if body.lower() == NO_TARGET:
            return []
        n = self.config.rows
        lines = [ln.strip() for ln in body.split("\n") if ln.strip()]
        if len(lines) != n:
            raise DecodeError(f"expected {n} rows, got {len(lines)}", "bad_count")
        labels: list[str] = []
        for r, line in enumerate(lines):
            total = 0
            for run in line.split("|"):
                m = _RUN.match(run.strip())
                if not m:
                    raise DecodeError(f"row {r}: bad run {run.strip()[:20]!r}", "bad_structure")
                k = int(m.group(2))
                total += k
                if total > n or k == 0:
                    raise DecodeError(f"row {r}: runs must be positive and sum to {n}", "bad_count")
                labels.extend([m.group(1)] * k)
            if total != n:
                raise DecodeError(f"row {r}: runs sum to {total}, expected {n}", "bad_count")
        arr = np.asarray(labels)
        names = [lab for lab in dict.fromkeys(labels) if lab != OTHERS]
        valid = set(self._labels(1)) | {f"target{i + 1}" for i in range(n * n)}
        bad = [lab for lab in names if lab not in valid]
        if bad:
            raise DecodeError(f"unknown descriptor {bad[0]!r}", "unknown_token")
        names.sort(key=lambda s: (len(s), s))
        return [
            Geometry(size=size, cells=index_to_cells(np.flatnonzero(arr == lab), n), grid_n=n) for lab in names
        ]
