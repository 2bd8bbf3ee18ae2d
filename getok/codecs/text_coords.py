"""``text_coords``: coordinates as plain text numbers (no new tokens), including the base models' own formats.

Spec: ``text_coords:style=norm3,eps=0.01,holes=false``; ``style=qwen2_5`` adds the resize bounds of the
model's image processor: ``text_coords:style=qwen2_5,eps=0.01,holes=false,min_pixels=3136,max_pixels=12845056,factor=28``.

Styles, the model or paper each matches, and a box as it is written:

* ``norm3`` — Shikra / SimpleSeg: normalised to ``[0, 1]``, 3 decimals, ``[0.100, 0.100, 0.500, 0.500]``;
* ``int1000`` — Qwen2-VL's integers, bins of ``[0, 1000)`` (floor), ``[100, 100, 500, 500]``;
* ``qwen3`` — **Qwen3-VL**'s own grounding format (dense and MoE): integers relative to 0–1000,
  ``{"bbox_2d": [100, 100, 500, 500]}``;
* ``qwen2_5`` — **Qwen2.5-VL**'s own grounding format: absolute pixels of the *resized* model input,
  ``{"bbox_2d": [20, 11, 98, 56]}`` for the same box in a 100 x 200 image (seen by the model as 112 x 196).

``norm3`` / ``int1000``: point ``[x, y]``; box ``[x1, y1, x2, y2]``; polyline ``[[x, y], [x, y], ...]``;
mask: the outline as polygons (SimpleSeg's recipe, ``eps`` relative to the perimeter), several polygons
separated by ``"; "``.

``qwen3`` / ``qwen2_5`` write what the base model writes when asked to ground: one JSON object per
instance with Qwen's keys, point ``{"point_2d": [x, y]}`` and box ``{"bbox_2d": [x1, y1, x2, y2]}``, integers.
The base models name no outline format; getok's extension in the same style is ``{"points_2d": [[x, y],
...]}`` for a polyline and ``{"polygon_2d": [[x, y], ...]}`` for a mask (several polygons: a list of rings,
``[[[x, y], ...], [[x, y], ...]]``). Switching a run between grid tokens and the base model's own format is
one codec spec: ``grid_offset:n=32,r=1,step=0.5`` ↔ ``text_coords:style=qwen3`` (Qwen3-VL) or
``text_coords:style=qwen2_5,max_pixels=...`` (Qwen2.5-VL, with the run's ``model.max_pixels``).

* **qwen3** (Qwen3-VL, dense and MoE): ``x_int = round(1000 * x / W)``, ``y_int = round(1000 * y / H)`` in
  ``[0, 1000]``; decoded ``x = x_int * W / 1000``. Independent of the image processor (relative to the
  image, which the processor only rescales).
* **qwen2_5** (Qwen2.5-VL): pixels of the image the model *sees*. Qwen2.5-VL's processor resizes an
  ``(H, W)`` image to ``(H', W') = smart_resize(H, W, factor, min_pixels, max_pixels)``
  (:func:`smart_resize`, ``factor = patch 14 x merge 2 = 28``): each side rounded to a multiple of
  ``factor``; when ``H' W' > max_pixels`` both sides are scaled by ``sqrt(H W / max_pixels)`` and floored to
  multiples, when ``H' W' < min_pixels`` scaled up by ``sqrt(min_pixels / (H W))`` and ceiled. The answer
  is ``x' = round(x * W' / W)``, ``y' = round(y * H' / H)`` in ``[0, W'] x [0, H']``; decoding maps back to the
  original image, ``x = x' * W / W'``. ``min_pixels`` / ``max_pixels`` / ``factor`` must be the processor's
  (defaults: Qwen2.5-VL-7B-Instruct's ``preprocessor_config.json``; a run that sets ``model.max_pixels``
  must set the same here), else the coordinates refer to another image. They are part of the spec only
  with ``style=qwen2_5`` (other styles refuse them), so older ``text_coords`` specs are unchanged.

Answers keep getok's grammar (one line per instance, ``none`` for no target); decoding also reads the base
model's own multi-object answer — a JSON list of objects, optionally in a ````json`` fence, other keys such
as ``"label"`` ignored, ``[]`` = no target — so a zero-shot base model is scored through the same codec.
A mask answer may also be a ``bbox_2d`` box (the base model's region; rasterised or handed to SAM). Anything
else is a :class:`~getok.errors.DecodeError` with a reason (``bad_structure``, ``bad_count``,
``out_of_range``, ``bad_box``), never another exception.

Examples
--------
>>> from getok import Geometry, get_codec
>>> c = get_codec("text_coords")
>>> c.encode([Geometry(size=(100, 200), box=[20, 10, 100, 50])], kind="box")
'[0.100, 0.100, 0.500, 0.500]'
>>> get_codec("text_coords:style=int1000").encode([Geometry(size=(100, 200), points=[[50, 25]])], kind="point")
'[250, 250]'
>>> get_codec("text_coords:style=qwen3").encode([Geometry(size=(100, 200), box=[20, 10, 100, 50])], kind="box")
'{"bbox_2d": [100, 100, 500, 500]}'
>>> q25 = get_codec("text_coords:style=qwen2_5")
>>> q25.resized_size((100, 200))
(112, 196)
>>> q25.encode([Geometry(size=(100, 200), box=[20, 10, 100, 50])], kind="box")
'{"bbox_2d": [20, 11, 98, 56]}'
>>> q25.decode('[{"bbox_2d": [20, 11, 98, 56], "label": "dog"}]', (100, 200), kind="box")[0].box.round(2).tolist()
[20.41, 9.82, 100.0, 50.0]
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from ..conventions import as_size, denormalize_box, denormalize_points, normalize_box, normalize_points
from ..errors import ConfigError, DecodeError, GeometryError
from ..geometry import Geometry
from ..ops.polygons import signed_area
from ._shapes import decode_rings, encode_rings, geometry_box, geometry_points, geometry_rings, rings_geometry
from ._vertices import TextVertices
from .base import Codec, register_codec

__all__ = ["TextCoordsCodec", "STYLES", "QWEN_STYLES", "QWEN_KEYS", "smart_resize"]

#: The base models' own grounding formats (JSON objects with Qwen's keys).
QWEN_STYLES = ("qwen3", "qwen2_5")
#: Every style of ``text_coords``.
STYLES = TextVertices.STYLES + QWEN_STYLES
#: JSON key of each answer kind in the Qwen styles (``point_2d`` / ``bbox_2d``: the models' own).
QWEN_KEYS = {"point": "point_2d", "box": "bbox_2d", "polyline": "points_2d", "mask": "polygon_2d"}

#: Qwen2.5-VL-7B-Instruct's image processor (``preprocessor_config.json``): min / max pixels, patch x merge.
QWEN2_5_MIN_PIXELS = 56 * 56
QWEN2_5_MAX_PIXELS = 16384 * 28 * 28
QWEN2_5_FACTOR = 28
_RESIZE_FIELDS = ("min_pixels", "max_pixels", "factor")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```$", re.DOTALL)


def smart_resize(
    height: int, width: int, factor: int = QWEN2_5_FACTOR, min_pixels: int = QWEN2_5_MIN_PIXELS,
    max_pixels: int = QWEN2_5_MAX_PIXELS,
) -> tuple[int, int]:  # fmt: skip
    """The size ``(H', W')`` Qwen2-VL / Qwen2.5-VL's image processor resizes an ``(H, W)`` image to.

    Each side is rounded to a multiple of ``factor`` (patch x merge: 28); if the area then exceeds
    ``max_pixels`` both sides are scaled by ``sqrt(H W / max_pixels)`` and floored to multiples of ``factor``
    (at least ``factor``), if it falls below ``min_pixels`` they are scaled by ``sqrt(min_pixels / (H W))``
    and ceiled. The same rule as ``transformers``' ``smart_resize`` (checked in the tests), without its import.

    >>> smart_resize(100, 200)
    (112, 196)
    >>> smart_resize(1080, 1920, max_pixels=1003520)
    (728, 1316)
    """
    h, w = as_size((height, width))
    f = int(factor)
    h_bar, w_bar = round(h / f) * f, round(w / f) * f
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        h_bar = max(f, math.floor(h / beta / f) * f)
        w_bar = max(f, math.floor(w / beta / f) * f)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / f) * f
        w_bar = math.ceil(w * beta / f) * f
    return int(h_bar), int(w_bar)


@dataclass(frozen=True)
class TextCoordsConfig:
    style: str = "norm3"
    eps: float = 0.01
    holes: bool = False
    min_pixels: int = QWEN2_5_MIN_PIXELS
    max_pixels: int = QWEN2_5_MAX_PIXELS
    factor: int = QWEN2_5_FACTOR

    def __post_init__(self):
        if self.style not in STYLES:
            raise ConfigError(f"text_coords.style must be one of {STYLES}, got {self.style!r}")
        if not 0 <= self.eps < 1:
            raise ConfigError(f"text_coords.eps must be in [0, 1), got {self.eps}")
        for name in _RESIZE_FIELDS:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"text_coords.{name} must be a positive int, got {v!r}")
        if self.style != "qwen2_5":
            changed = [f.name for f in dataclasses.fields(self) if f.name in _RESIZE_FIELDS
                       and getattr(self, f.name) != f.default]  # fmt: skip
            if changed:
                raise ConfigError(
                    f"text_coords {', '.join(changed)}: only style=qwen2_5 uses the resize bounds (absolute pixels "
                    f"of the resized input); style={self.style} does not"
                )
        if self.min_pixels > self.max_pixels:
            raise ConfigError(
                f"text_coords.min_pixels ({self.min_pixels}) must be <= text_coords.max_pixels ({self.max_pixels})"
            )


@register_codec
class TextCoordsCodec(Codec):
    name = "text_coords"
    Config = TextCoordsConfig

    def __init__(self, **params):
        super().__init__(**params)
        self.qwen = self.config.style in QWEN_STYLES
        self.vertices = None if self.qwen else TextVertices(self.config.style)

    @property
    def spec(self) -> str:
        """Canonical spec; ``min_pixels`` / ``max_pixels`` / ``factor`` only with ``style=qwen2_5``."""
        parts = []
        for f in dataclasses.fields(self.config):
            if f.name in _RESIZE_FIELDS and self.config.style != "qwen2_5":
                continue
            v = getattr(self.config, f.name)
            parts.append(f"{f.name}={str(v).lower() if isinstance(v, bool) else v}")
        return f"{self.name}:{','.join(parts)}"

    # ------------------------------------------------------------------ the coordinate frame
    def resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(H', W')`` of the image the coordinates refer to: the processor's resize for ``qwen2_5``
        (:func:`smart_resize`), the image itself otherwise."""
        h, w = as_size(size)
        if self.config.style != "qwen2_5":
            return h, w
        c = self.config
        return smart_resize(h, w, c.factor, c.min_pixels, c.max_pixels)

    def _scale(self, size) -> np.ndarray:
        """Integer units per normalised unit, ``(sx, sy)``: 1000 for ``qwen3``, ``(W', H')`` for ``qwen2_5``."""
        if self.config.style == "qwen3":
            as_size(size)
            return np.array([1000.0, 1000.0])
        h, w = self.resized_size(size)
        return np.array([float(w), float(h)])

    def _ints(self, pts_norm, scale) -> np.ndarray:
        return np.rint(np.clip(np.asarray(pts_norm, dtype=np.float64).reshape(-1, 2), 0.0, 1.0) * scale).astype(np.int64)

    # ------------------------------------------------------------------ encode
    def encode_one(self, g: Geometry, kind: str) -> str:
        if self.qwen:
            return self._encode_qwen(g, kind)
        v = self.vertices
        if kind == "point":
            return v.format(normalize_points(geometry_points(g)[:1], g.size), single=True)
        if kind == "box":
            return v.format_numbers(normalize_box(geometry_box(g), g.size))
        if kind == "polyline":
            return v.format(normalize_points(geometry_points(g), g.size))
        outers, holes = geometry_rings(g, self.config.eps, self.config.holes)
        return encode_rings(outers, holes, g.size, v)

    def _encode_qwen(self, g: Geometry, kind: str) -> str:
        s = self._scale(g.size)
        if kind == "point":
            value = self._ints(normalize_points(geometry_points(g)[:1], g.size), s)[0].tolist()
        elif kind == "box":
            value = self._ints(normalize_box(geometry_box(g), g.size).reshape(2, 2), s).reshape(4).tolist()
        elif kind == "polyline":
            value = self._ints(normalize_points(geometry_points(g), g.size), s).tolist()
        else:
            outers, holes = geometry_rings(g, self.config.eps, self.config.holes)
            rings = []
            for ring in outers:
                q = _dedupe(self._ints(normalize_points(ring, g.size), s))
                rings.append(q[::-1] if signed_area(q) < 0 else q)  # quantisation flipped a thin outer ring
            for ring in holes:
                q = _dedupe(self._ints(normalize_points(ring, g.size), s))
                if len(q) >= 3 and signed_area(q) < 0:  # a hole that collapsed or flipped encloses nothing
                    rings.append(q)
            value = rings[0].tolist() if len(rings) == 1 else [r.tolist() for r in rings]
        return json.dumps({QWEN_KEYS[kind]: value})

    # ------------------------------------------------------------------ decode
    def decode(self, text: str, size: tuple[int, int], kind: str = "mask") -> list[Geometry]:
        """Answer text → geometries (pixels of the original image). The Qwen styles also read the base
        model's own answers: a JSON list of objects (``[]``: no target), optionally in a code fence."""
        if not self.qwen or not isinstance(text, str):
            return super().decode(text, size, kind)
        self._check_kind(kind)
        body = text.strip()
        m = _FENCE.match(body)
        if m:
            body = m.group(1).strip()
        if body.startswith("["):  # the base model's own multi-object answer
            items = _load_json(body)
            if not isinstance(items, list) or not all(isinstance(o, dict) for o in items):
                raise DecodeError(f"expected a JSON list of objects, got {body[:40]!r}", "bad_structure")
            return [self._decode_checked(o, size, kind, i) for i, o in enumerate(items)]
        if body.startswith("{") and "\n" in body:  # one object written over several lines
            try:
                obj = json.loads(body, parse_constant=lambda c: math.nan)
            except (ValueError, RecursionError):
                obj = None  # several one-line objects: getok's grammar
            if isinstance(obj, dict):
                return [self._decode_checked(obj, size, kind, 0)]
        return super().decode(body, size, kind)

    def _decode_checked(self, obj: dict, size, kind: str, i: int) -> Geometry:
        try:
            return self._decode_object(obj, size, kind)
        except DecodeError as exc:
            raise DecodeError(f"instance {i}: {exc}", exc.reason) from None
        except GeometryError as exc:
            raise DecodeError(f"instance {i}: {exc}", "bad_geometry") from None

    def decode_one(self, line: str, size, kind: str) -> Geometry:
        if self.qwen:
            if line.startswith("["):  # one instance as the base model's list
                out = self.decode(line, size, kind)
                if len(out) != 1:
                    raise DecodeError(f"a list of {len(out)} objects among instances", "bad_structure")
                return out[0]
            if not (line.startswith("{") and line.endswith("}")):
                raise DecodeError(f"expected a JSON object like {{\"{QWEN_KEYS[kind]}\": [...]}}, got {line[:40]!r}",
                                  "bad_structure")  # fmt: skip
            obj = _load_json(line)
            if not isinstance(obj, dict):
                raise DecodeError(f"expected a JSON object, got {line[:40]!r}", "bad_structure")
            return self._decode_object(obj, size, kind)
        v = self.vertices
        if kind == "point":
            return Geometry(size=size, points=denormalize_points(v.parse(line, single=True), size))
        if kind == "box":
            b = v.parse_numbers(line, 4)
            if b[0] > b[2] or b[1] > b[3]:
                raise DecodeError(f"box corners out of order: {line[:40]!r}", "bad_box")
            return Geometry(size=size, box=denormalize_box(b, size))
        if kind == "polyline":
            return Geometry(size=size, points=denormalize_points(v.parse(line), size))
        return decode_rings(line, size, v, self.config.holes)

    def _decode_object(self, obj: dict, size, kind: str) -> Geometry:
        key = QWEN_KEYS[kind]
        if kind == "mask" and key not in obj and "bbox_2d" in obj:  # the base model's region: its box
            key, kind = "bbox_2d", "box"
        if key not in obj:
            found = sorted(k for k in obj if isinstance(k, str) and k.endswith("_2d"))
            raise DecodeError(f"a {kind} answer needs the key {key!r}, got {found or sorted(obj)[:4]}", "bad_structure")
        s = self._scale(size)
        value = obj[key]
        if kind == "point":
            pts = self._values(value, s, flat=2)
            return Geometry(size=size, points=denormalize_points(pts, size))
        if kind == "box":
            b = self._values(value, s, flat=4).reshape(4)
            if b[0] > b[2] or b[1] > b[3]:
                raise DecodeError(f"box corners out of order: {value}", "bad_box")
            return Geometry(size=size, box=denormalize_box(b, size))
        if kind == "polyline":
            return Geometry(size=size, points=denormalize_points(self._values(value, s), size))
        if isinstance(value, list) and value and isinstance(value[0], list) and value[0] and isinstance(value[0][0], list):
            rings_in = value  # several polygons
        else:
            rings_in = [value]
        return rings_geometry([self._values(ring_in, s) for ring_in in rings_in], size, self.config.holes)

    def _values(self, value, scale: np.ndarray, flat: int | None = None) -> np.ndarray:
        """Integer coordinates → normalised ``(K, 2)`` points: ``flat`` numbers (a point / box) or a
        non-empty list of ``[x, y]`` pairs; each in ``[0, sx] x [0, sy]``."""
        if flat is not None:
            ok = isinstance(value, list) and all(_is_number(v) for v in value)
            if not ok:
                raise DecodeError(f"expected a flat list of {flat} integers, got {str(value)[:40]!r}", "bad_structure")
            if len(value) != flat:
                raise DecodeError(f"expected {flat} numbers, got {len(value)}", "bad_count")
            nums = value
        else:
            ok = isinstance(value, list) and value and all(
                isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in value
            )
            if not ok:
                raise DecodeError(f"expected a list of [x, y] pairs, got {str(value)[:40]!r}", "bad_structure")
            nums = [v for p in value for v in p]
        try:
            a = np.asarray([float(v) for v in nums], dtype=np.float64).reshape(-1, 2)
        except OverflowError:
            raise DecodeError("coordinate too large", "out_of_range") from None
        if not np.all(np.isfinite(a)) or not np.all(a == np.floor(a)):
            raise DecodeError("coordinate is not an integer", "out_of_range")
        if (a < 0).any() or (a > scale).any():
            sx, sy = (int(v) for v in scale)
            raise DecodeError(f"coordinate outside [0, {sx}] x [0, {sy}]", "out_of_range")
        return a / scale


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _dedupe(q: np.ndarray) -> np.ndarray:
    """Drop vertices equal to their predecessor (and a last vertex equal to the first)."""
    keep = np.ones(len(q), dtype=bool)
    keep[1:] = np.any(q[1:] != q[:-1], axis=1)
    q = q[keep]
    if len(q) > 1 and np.all(q[0] == q[-1]):
        q = q[:-1]
    return q


def _load_json(text: str):
    if text.count("[") > 4096:
        raise DecodeError("list nested or repeated too deeply", "bad_structure")
    try:
        return json.loads(text, parse_constant=lambda c: math.nan)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not valid JSON: {exc}", "bad_structure") from None
