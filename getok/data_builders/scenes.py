"""Procedural scenes: deterministic images of coloured shapes with exact masks and referring expressions.

The embedded default dataset of every demo and test. A scene is an :class:`AnnotatedImage` whose objects
are drawn back to front (z-order = list order); each object's mask is its *visible* region, and
``meta["label_map"]`` (``(H, W)`` int32) holds ``0`` for background and ``k + 1`` where ``objects[k]`` is
visible, so ``objects[k].mask == (label_map == k + 1)`` (the exact proposer relies on it).

Shapes: circle, square, triangle, ring (a hole), cross and L-shape (thin parts), star, ellipse, bar.
Colours come from :data:`PALETTE`; sizes are small / medium / large (half-extent as a fraction of the
shorter image side). Backgrounds are plain, noisy or textured greys (no palette colour). The pixels of
shapes and backgrounds are drawn by :mod:`~getok.data_builders.scene_drawing`; this module places the
objects (overlap, occlusion, colours), attaches their expressions (:mod:`~getok.data_builders.expressions`)
and generates, summarises and writes scene series.

Referring expressions follow a small grammar that :func:`resolve_expression` reads back:

* attributes — ``the [small|medium-sized|large] [<colour>] <shape>|object`` (``the red circle``);
* superlatives — ``the largest|smallest|leftmost|rightmost|topmost|bottommost <np>``;
* spatial relations — ``the <np> left of|right of|above|below the <np>``;
* plurals (image level, ``meta["group_expressions"]``) — ``all the red objects``, ``all the circles``;
* absent objects (``no_target_expressions``) — ``the green star`` when there is none.

Every expression attached to an object resolves to exactly that object, by construction: a candidate
text is kept only if the resolver returns exactly its object. Superlatives and relations need a clear
margin (``SceneConfig.rel_margin``, ``size_ratio``) for the target, while every distractor must fail
the relation even without a margin, so a near tie is never written.

Examples
--------
>>> from getok.data_builders.scenes import SceneConfig, generate_scene, resolve_expression
>>> s = generate_scene(3, SceneConfig())
>>> s.get_image().shape, s.get_image().dtype
((112, 112, 3), dtype('uint8'))
>>> all(resolve_expression(s, e) == [o.id] for o in s.objects for e in o.expressions)
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..io import atomic_dir
from ..records import AnnotatedImage, AnnotatedObject, save_png
from .expressions import (  # the scene vocabulary and its expressions (re-exported for the users of scenes)
    EXPRESSION_KINDS,
    PALETTE,
    SHAPES,
    SIZE_CLASSES,
    _describe,
    _Obj,
    expression_kind,
    plural,
    resolve_expression,
)
from .sample_list import safe_name
from .scene_drawing import BACKGROUNDS, background_canvas, shape_mask  # pixels of shapes and backgrounds
from .sources.manifest import manifest_record

__all__ = [
    "SHAPES",
    "PALETTE",
    "SIZE_CLASSES",
    "BACKGROUNDS",
    "MAX_SCENE_SIDE",
    "SceneConfig",
    "generate_scene",
    "generate_scenes",
    "iter_scenes",
    "scene_seed",
    "resolve_expression",
    "expression_kind",
    "EXPRESSION_KINDS",
    "plural",
    "scene_summary",
    "label_map_from_objects",
    "write_scenes",
]

#: Largest scene side in pixels (scenes are drawn on float canvases; 112 feeds the tiny VLM, 224 or 448 work the same).
MAX_SCENE_SIDE = 4096

_KERNEL3 = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn and described.

    Parameters
    ----------
    size : (H, W)
        Image size in pixels (112 for the tiny VLM; 224, 448 work the same).
    min_objects, max_objects : int
        Number of objects drawn per scene (objects that cannot be placed are dropped, never fewer than 1).
    shapes, colors, sizes : tuple of str
        Allowed shapes (:data:`SHAPES`), colours (keys of :data:`PALETTE`), size classes.
    background : str
        ``"plain"``, ``"noise"``, ``"texture"`` or ``"mixed"`` (one of the three per scene).
    noise_std : float
        Std of the per-pixel noise (0-255 scale) of ``noise`` / ``texture`` backgrounds and of objects
        drawn on them.
    overlap_prob : float
        Probability that an object is placed on purpose to overlap an earlier one; otherwise placements
        that touch earlier objects are avoided when possible.
    min_visible : float
        Smallest visible fraction of an object's full area after occlusion (placements that hide more
        are retried).
    min_pixels : int
        Smallest visible area of an object, pixels.
    rel_margin : float
        Margin (fraction of the image side) by which a relation or a left/right/top/bottom superlative
        must hold for the target.
    size_ratio : float
        Area ratio by which the largest / smallest object must beat the others.
    max_expressions : int
        At most this many expressions per object (attribute first, then superlative, then relation).
    n_absent : int
        No-target expressions per scene.
    """

    size: tuple[int, int] = (112, 112)
    min_objects: int = 2
    max_objects: int = 6
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = tuple(PALETTE)
    sizes: tuple[str, ...] = tuple(SIZE_CLASSES)
    background: str = "mixed"
    noise_std: float = 10.0
    overlap_prob: float = 0.3
    min_visible: float = 0.6
    min_pixels: int = 12
    rel_margin: float = 0.08
    size_ratio: float = 1.3
    max_expressions: int = 4
    n_absent: int = 2

    def __post_init__(self) -> None:
        try:
            h, w = (int(v) for v in self.size)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"SceneConfig.size must be (H, W), got {self.size!r}") from exc
        if min(h, w) < 32:
            raise ConfigError(f"SceneConfig.size must be at least 32 x 32, got {self.size!r}")
        if max(h, w) > MAX_SCENE_SIDE:  # a float32 canvas of 100000^2 pixels is 112 GiB
            raise ConfigError(f"SceneConfig.size must be at most {MAX_SCENE_SIDE} x {MAX_SCENE_SIDE}, got {self.size!r}")
        object.__setattr__(self, "size", (h, w))
        if not 1 <= self.min_objects <= self.max_objects <= 20:
            raise ConfigError(
                f"SceneConfig.min_objects / max_objects must satisfy 1 <= min <= max <= 20, "
                f"got {self.min_objects}, {self.max_objects}"
            )
        for name, allowed in (("shapes", SHAPES), ("colors", tuple(PALETTE)), ("sizes", tuple(SIZE_CLASSES))):
            vals = tuple(getattr(self, name))
            object.__setattr__(self, name, vals)
            bad = [v for v in vals if v not in allowed]
            if not vals or bad:
                raise ConfigError(f"SceneConfig.{name} must be a non-empty subset of {allowed}, got {vals}")
        if self.background not in (*BACKGROUNDS, "mixed"):
            raise ConfigError(
                f"SceneConfig.background must be one of {(*BACKGROUNDS, 'mixed')}, got {self.background!r}"
            )
        if not 0 <= self.noise_std <= 64:
            raise ConfigError(f"SceneConfig.noise_std must be in [0, 64], got {self.noise_std}")
        if not 0 <= self.overlap_prob <= 1:
            raise ConfigError(f"SceneConfig.overlap_prob must be in [0, 1], got {self.overlap_prob}")
        if not 0 < self.min_visible <= 1:
            raise ConfigError(f"SceneConfig.min_visible must be in (0, 1], got {self.min_visible}")
        if self.min_pixels < 1:
            raise ConfigError(f"SceneConfig.min_pixels must be >= 1, got {self.min_pixels}")
        if not 0 <= self.rel_margin < 0.5:
            raise ConfigError(f"SceneConfig.rel_margin must be in [0, 0.5), got {self.rel_margin}")
        if self.size_ratio < 1:
            raise ConfigError(f"SceneConfig.size_ratio must be >= 1, got {self.size_ratio}")
        if self.max_expressions < 1:
            raise ConfigError(f"SceneConfig.max_expressions must be >= 1, got {self.max_expressions}")
        if self.n_absent < 0:
            raise ConfigError(f"SceneConfig.n_absent must be >= 0, got {self.n_absent}")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def scene_seed(seed: int, index: int) -> int:
    """Seed of scene ``index`` of the series ``seed`` (independent streams, stable across versions)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


# ---------------------------------------------------------------------------------------------- generator
def _position_word(cx: float, cy: float, size: tuple[int, int]) -> str:
    h, w = size
    col = ("left", "", "right")[min(2, int(3 * cx / w))]
    row = ("top", "", "bottom")[min(2, int(3 * cy / h))]
    return " ".join(p for p in (row, col) if p) or "center"


def generate_scene(seed: int, cfg: SceneConfig | None = None, *, image_id: str | None = None) -> AnnotatedImage:
    """One procedural scene, fully determined by ``seed`` and ``cfg``.

    Parameters
    ----------
    seed : int
        Any non-negative integer; the same seed gives identical pixels, masks and expressions.
    cfg : SceneConfig, optional
    image_id : str, optional
        Defaults to ``"scene-<seed>"``.

    Returns
    -------
    AnnotatedImage
        ``image`` ``(H, W, 3)`` uint8; ``objects`` in z-order (later ones occlude earlier ones), each with
        its visible ``mask`` ``(H, W)`` bool, ``attributes`` (``shape``, ``color``, ``size``, ``position``,
        ``center`` (x, y) pixels, ``area`` pixels, ``full_area``, ``z``, ``expression_types``) and
        ``expressions``; ``meta``: ``label_map`` ``(H, W)`` int32, ``group_expressions``, ``seed``,
        ``scene_config``, ``background``.
    """
    import cv2

    cfg = cfg or SceneConfig()
    if int(seed) < 0:
        raise ConfigError(f"scene seed must be >= 0, got {seed}")
    rng = np.random.default_rng(int(seed))
    h, w = cfg.size
    side = min(h, w)
    bg_kind = cfg.background if cfg.background != "mixed" else BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    canvas = background_canvas(bg_kind, cfg.size, cfg.noise_std, rng)
    n_target = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))

    label = np.zeros((h, w), dtype=np.int32)
    full_areas: list[int] = []
    placed: list[dict] = []
    for _ in range(n_target):
        shape = cfg.shapes[int(rng.integers(len(cfg.shapes)))]
        color = cfg.colors[int(rng.integers(len(cfg.colors)))]
        size_cls = cfg.sizes[int(rng.integers(len(cfg.sizes)))]
        lo, hi = SIZE_CLASSES[size_cls]
        r = float(rng.uniform(lo, hi)) * side
        angle = 0.0 if shape in ("circle", "ring") else float(rng.uniform(0, 2 * np.pi))
        want_overlap = bool(placed) and rng.random() < cfg.overlap_prob
        ok = None
        for _attempt in range(12):
            if want_overlap:
                other = placed[int(rng.integers(len(placed)))]
                d = (other["r"] + r) * float(rng.uniform(0.55, 0.95))
                t = float(rng.uniform(0, 2 * np.pi))
                cx = float(np.clip(other["cx"] + d * math.cos(t), r, w - r))
                cy = float(np.clip(other["cy"] + d * math.sin(t), r, h - r))
            else:
                cx = float(rng.uniform(r, w - r))
                cy = float(rng.uniform(r, h - r))
            m = shape_mask(shape, cx, cy, r, angle, cfg.size, rng)
            area = int(m.sum())
            if area < cfg.min_pixels:
                continue
            if not want_overlap and (label[m] > 0).any() and _attempt < 8:
                continue
            # objects of one colour must not touch: their boundary would be invisible
            touched = np.unique(label[cv2.dilate(m.view(np.uint8), _KERNEL3) > 0])
            if any(placed[t - 1]["color"] == color for t in touched if t > 0):
                continue
            # earlier objects must stay visible enough once this one covers them
            covered = np.bincount(label[m], minlength=len(placed) + 1)[1:]
            if len(placed):
                vis = np.bincount(label.ravel(), minlength=len(placed) + 1)[1:]
                remain = vis - covered
                if (remain < cfg.min_visible * np.asarray(full_areas)).any() or (remain < cfg.min_pixels).any():
                    continue
            ok = m
            break
        if ok is None:
            continue
        k = len(placed)
        label[ok] = k + 1
        full_areas.append(int(ok.sum()))
        placed.append({"shape": shape, "color": color, "size": size_cls, "r": r, "cx": cx, "cy": cy, "angle": angle})
    if not placed:  # pragma: no cover - a single object always fits an empty canvas
        raise DataError(f"scene {seed}: could not place any object")

    # paint back to front (the label map already holds the visible regions)
    for k, p in enumerate(placed):
        canvas[label == k + 1] = PALETTE[p["color"]]
    if bg_kind != "plain" and cfg.noise_std > 0:
        canvas += rng.normal(0.0, cfg.noise_std, size=canvas.shape).astype(np.float32)
    img = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)

    objects: list[AnnotatedObject] = []
    facts: list[_Obj] = []
    for k, p in enumerate(placed):
        m = label == k + 1
        ys, xs = np.nonzero(m)
        cx, cy = float(xs.mean() + 0.5), float(ys.mean() + 0.5)
        attrs = {
            "shape": p["shape"],
            "color": p["color"],
            "size": p["size"],
            "position": _position_word(cx, cy, cfg.size),
            "center": [round(cx, 3), round(cy, 3)],
            "area": int(m.sum()),
            "full_area": full_areas[k],
            "z": k,
            "radius": round(p["r"], 3),
            "angle": round(p["angle"], 4),
        }
        facts.append(_Obj(k, p["shape"], p["color"], p["size"], cx, cy, attrs["area"]))
        objects.append(AnnotatedObject(id=k, category=p["shape"], size=cfg.size, mask=m, attributes=attrs))
    per, groups, absent = _describe(facts, cfg, rng)
    for o in objects:
        o.expressions = [t for t, _ in per[o.id]]
        o.attributes["expression_types"] = [k for _, k in per[o.id]]
    return AnnotatedImage(
        image_id=image_id or f"scene-{int(seed)}",
        size=cfg.size,
        objects=objects,
        image=img,
        no_target_expressions=absent,
        meta={
            "source": "scenes",
            "seed": int(seed),
            "background": bg_kind,
            "label_map": label,
            "group_expressions": groups,
            "scene_config": cfg.to_dict(),
        },
    )


def iter_scenes(n: int, seed: int = 0, cfg: SceneConfig | None = None, *, start: int = 0) -> Iterator[AnnotatedImage]:
    """Scenes ``start .. start + n - 1`` of the series ``seed``, one at a time (ids ``scene-<seed>-<i>``)."""
    if n < 0:
        raise ConfigError(f"number of scenes must be >= 0, got {n}")
    cfg = cfg or SceneConfig()
    for i in range(start, start + n):
        yield generate_scene(scene_seed(seed, i), cfg, image_id=f"scene-{int(seed)}-{i:06d}")


def generate_scenes(n: int, seed: int = 0, cfg: SceneConfig | None = None) -> list[AnnotatedImage]:
    """``n`` scenes of the series ``seed`` (see :func:`iter_scenes`); scene ``i`` does not depend on ``n``."""
    return list(iter_scenes(n, seed, cfg))


def scene_summary(images: Sequence[AnnotatedImage]) -> dict:
    """Counts of objects, shapes and expression types over scenes (for manifests and reports)."""
    shapes: dict[str, int] = {}
    types: dict[str, int] = {}
    n_obj = 0
    for im in images:
        for o in im.objects:
            n_obj += 1
            shapes[o.category] = shapes.get(o.category, 0) + 1
            for t in o.attributes.get("expression_types", []):
                types[t] = types.get(t, 0) + 1
    return {"images": len(images), "objects": n_obj, "shapes": shapes, "expression_types": types}


def label_map_from_objects(image: AnnotatedImage) -> np.ndarray:
    """The ``(H, W)`` int32 label map of a scene: ``meta["label_map"]`` or rebuilt from the object masks.

    ``0`` is background and ``k + 1`` the visible region of ``objects[k]`` (scene masks are disjoint).
    A scene read back from disk (:func:`~getok.data_builders.sources.load_manifest`) has no stored
    label map; this rebuilds it and stores it in ``meta["label_map"]``.
    """
    lm = image.meta.get("label_map")
    if isinstance(lm, np.ndarray):
        return lm
    lm = np.zeros(image.size, dtype=np.int32)
    for k, o in enumerate(image.objects):
        m = o.get_mask()
        if (lm[m] != 0).any():
            raise DataError(f"image {image.image_id}: object masks overlap, so they form no label map")
        lm[m] = k + 1
    image.meta["label_map"] = lm
    return lm


def _scene_chunk(args) -> list[dict]:
    seed, start, count, cfg, tmp = args
    records = []
    for im in iter_scenes(count, seed, cfg, start=start):
        rel = f"images/{safe_name(im.image_id)}.png"
        save_png(im.get_image(), Path(tmp) / rel)
        records.append(manifest_record(im, rel))
    return records


def write_scenes(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    cfg: SceneConfig | None = None,
    *,
    workers: int = 1,
    chunk_size: int = 256,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate ``n`` scenes of series ``seed`` into ``out_dir`` (PNGs + real-dev style ``manifest.json``).

    :func:`~getok.data_builders.sources.load_manifest` reads the directory back (masks, attributes,
    expressions, group and no-target expressions; :func:`label_map_from_objects` rebuilds label maps).
    Chunks are generated in ``workers`` processes; the output does not depend on ``workers``. Atomic.
    """

    if n < 1:
        raise ConfigError(f"number of scenes must be >= 1, got {n}")
    cfg = cfg or SceneConfig()
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        jobs = [(int(seed), s, min(chunk_size, n - s), cfg, str(tmp)) for s in range(0, n, chunk_size)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="scenes", unit="scene")
        records: list[dict] = []
        if workers <= 1 or len(jobs) == 1:
            results = map(_scene_chunk, jobs)
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_scene_chunk, jobs)
        try:
            for job, recs in zip(jobs, results):
                records.extend(recs)
                if bar:
                    bar.update(job[2])
        finally:
            if workers > 1 and len(jobs) > 1:
                pool.shutdown()
            if bar:
                bar.close()
        (tmp / "manifest.json").write_text(json.dumps(records, separators=(",", ":")))
        info = {"generator": "getok.data_builders.scenes", "n": n, "seed": int(seed), "config": cfg.to_dict()}
        (tmp / "scenes.json").write_text(json.dumps(info, indent=1))
    return Path(out_dir)
