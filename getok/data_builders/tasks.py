"""Unified query tasks: annotated images → :class:`~getok.samples.Sample` records for any codec.

Task names are ``"<query>><answer kind>"``:

* ``text>mask``, ``text>box``, ``text>point``, ``text>polyline`` — a referring expression (or the category
  name of an object that is the only one of its category) → the object's answer;
* ``point>mask`` — a point on the object, written in the codec (a grid model sees a cell token, a text
  model numbers) → its mask; ``box>mask`` — its box, written in the codec → its mask;
* ``multi>mask`` / ``multi>box`` / ``multi>point`` — "all the …" (group expressions of the source, or a
  plural category name with two or more instances) → one answer line per instance;
* ``none>mask`` / ``none>box`` / ``none>point`` — an expression that names nothing → ``none``.

Answers are ``codec.encode(geometries, kind)``; the mask answer's geometry comes from ``geometry_fn(image,
obj)`` (default ``obj.geometry()``; the pipeline passes the greedy grid cells there), while box and point
answers always use the true object. A point answer is the object's deepest interior point, moved if
needed so that the codec's rendering of it (a cell centre for grid codecs) still lies on the object; the
polyline answer is the object's outer contour. Ground truth (``Sample.truth``) is always the true
visible mask (RLE), its box and size, never the codec's approximation.

Bad input never stops a build: an unreadable or mis-sized image, an empty or malformed mask, an object
the codec cannot write, a query point that cannot be placed on the object are skipped and listed in
:attr:`SampleList.skipped` with the reason.

This module assembles the samples (:func:`build_tasks`); the task names and settings live in
:mod:`~getok.data_builders.task_config`, the returned :class:`SampleList` and the image naming
(:func:`safe_name`, :func:`image_ref`) in :mod:`~getok.data_builders.sample_list`, and all of them are
importable from here as before.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..answers import wrap_response
from ..codecs.base import Codec, get_codec
from ..errors import ConfigError, DataError, DecodeError, GeometryError, GetokError
from ..geometry import Geometry
from ..ops.boxes import mask_to_box
from ..ops.masks import rle_encode
from ..ops.polygons import mask_to_polygons
from ..records import AnnotatedImage, AnnotatedObject
from ..samples import IMAGE_PLACEHOLDER, Sample, Turn
from . import questions as P
from .sample_list import SampleList, image_ref, safe_name  # also importable from here
from .task_config import TASKS, TaskConfig

__all__ = ["TASKS", "TaskConfig", "SampleList", "build_tasks", "image_ref", "safe_name"]

GeometryFn = Callable[[AnnotatedImage, AnnotatedObject], Geometry]


# ---------------------------------------------------------------------------------------------- helpers
def _fmt_box(box) -> list[float]:
    return [round(float(v), 3) for v in box]


def _deepest_points(mask: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` pixel centres ``(K, 2)`` XY of the mask, deepest (distance to the border) first."""
    from scipy.ndimage import distance_transform_edt

    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros((0, 2))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.pad(mask[y0:y1, x0:x1], 1)
    d = distance_transform_edt(crop)[1:-1, 1:-1][ys - y0, xs - x0]
    order = np.lexsort((xs, ys, -d))[:k]  # deepest first, ties row-major: deterministic
    return np.stack([xs[order] + 0.5, ys[order] + 0.5], axis=1)


def _point_on_object(
    mask: np.ndarray, codec: Codec, size, k: int, others: np.ndarray | None = None
) -> tuple[np.ndarray, str] | None:
    """A point ``(x, y)`` on the mask whose codec rendering (decoded back) lies on the mask only.

    Candidates are the ``k`` deepest pixels of ``mask`` outside ``others`` (the union of the other
    objects' masks, where instances overlap), tried deepest first.
    """
    h, w = size
    own = mask if others is None else mask & ~others
    for p in _deepest_points(own, k):
        text = codec.encode([Geometry(size=size, points=p[None])], "point")
        res = codec.try_decode(text, size, "point")
        if not res.valid or not res.geometries or res.geometries[0].points is None:
            continue
        q = res.geometries[0].points[0]
        j, i = min(int(q[0]), w - 1), min(int(q[1]), h - 1)
        if own[i, j]:
            return p, text
    return None


def _outline(mask: np.ndarray, size, eps: float) -> Geometry:
    outers, _ = mask_to_polygons(mask, eps)
    if not outers:
        raise GeometryError("empty mask has no outline")
    return Geometry(size=size, points=outers[0])


@dataclass
class _Target:
    obj: AnnotatedObject
    mask: np.ndarray
    box: np.ndarray
    rle: dict
    geometry: Geometry | None = None  # the mask answer's geometry (geometry_fn), made on first use
    point: tuple[np.ndarray, str] | None = None
    point_done: bool = False


class _Builder:
    """Builds the samples of one image (state shared by its tasks)."""

    def __init__(self, image, codec, query_codec, cfg, geometry_fn, out: SampleList, all_categories):
        self.im = image
        self.codec = codec
        self.qcodec = query_codec
        self.cfg = cfg
        self.geometry_fn = geometry_fn
        self.fn_takes_prefer = geometry_fn is not None and _takes_prefer(geometry_fn)
        self.out = out
        self.all_categories = all_categories
        self.size = image.size
        self.ref, self.needs_write = image_ref(image)

    # ------------------------------------------------------------------ objects
    def targets(self) -> dict[int, _Target]:
        out: dict[int, _Target] = {}
        for o in self.im.objects:
            where = f"{self.im.image_id} object {o.id}"
            try:
                m = o.get_mask()
            except GetokError as exc:
                self.out.skip(where, f"mask: {exc}")
                continue
            area = int(np.count_nonzero(m))
            if area == 0:
                self.out.skip(where, "empty mask")
                continue
            if area < self.cfg.min_area:
                self.out.skip(where, f"mask smaller than min_area: {area} < {self.cfg.min_area} pixels")
                continue
            out[o.id] = _Target(o, m, mask_to_box(m), rle_encode(m))
        return out

    def mask_geometry(self, t: _Target, prefer=None) -> Geometry:
        """The mask answer's geometry; ``prefer``: the point a question names (a ``geometry_fn`` that takes
        ``prefer``, as the greedy one does, represents the object by the cell at that point when that cell
        decodes to the same mask)."""
        if prefer is not None and self.fn_takes_prefer:
            return self.geometry_fn(self.im, t.obj, prefer=prefer)
        if t.geometry is None:
            t.geometry = self.geometry_fn(self.im, t.obj) if self.geometry_fn else t.obj.geometry()
        return t.geometry

    def point_of(self, t: _Target) -> tuple[np.ndarray, str] | None:
        if not t.point_done:
            others = None
            for o in self.im.objects:
                if o.id != t.obj.id and o.mask is not None and o.mask.shape == t.mask.shape:
                    m = o.mask & t.mask
                    if m.any():
                        others = m if others is None else others | m
            t.point = _point_on_object(t.mask, self.qcodec, self.size, self.cfg.point_candidates, others)
            t.point_done = True
        return t.point

    def answer_geometries(self, ts: list[_Target], kind: str, prefer=None) -> list[Geometry]:
        if kind == "mask":
            return [self.mask_geometry(t, prefer) for t in ts]
        if kind == "box":
            return [Geometry(size=self.size, box=t.box) for t in ts]
        if kind == "point":
            out = []
            for t in ts:
                p = self.point_of(t) if self.qcodec is self.codec else None
                pt = p[0] if p is not None else _deepest_points(t.mask, 1)[0]
                out.append(Geometry(size=self.size, points=pt[None]))
            return out
        if kind == "polyline":
            return [_outline(t.mask, self.size, self.cfg.polyline_eps) for t in ts]
        raise ConfigError(f"unknown answer kind {kind!r}")  # pragma: no cover

    # ------------------------------------------------------------------ samples
    def truth(self, ts: list[_Target], kind: str, geoms: list[Geometry], query: dict) -> dict:
        tr = {
            "size": list(self.size),
            "masks": [t.rle for t in ts],
            "boxes": [_fmt_box(t.box) for t in ts],
            "object_ids": [t.obj.id for t in ts],
            "categories": [t.obj.category for t in ts],
            "query": query,
        }
        if kind == "point":
            tr["points"] = [[round(float(v), 3) for v in g.points[0]] for g in geoms]
        if "ignore_rle" in self.im.meta:
            tr["ignore"] = self.im.meta["ignore_rle"]
        return tr

    def add(self, task: str, key: str, question: str, ts: list[_Target], query: dict, thought_kind: str, **fmt):
        kind = task.split(">")[1]
        prefer = query.get("point") if query.get("type") == "point" and len(ts) == 1 else None
        sid = f"{safe_name(self.im.image_id)}-{task.replace('>', '2')}-{key}"
        where = f"{self.im.image_id} {task} {key}"
        try:
            ts = sorted(ts, key=lambda t: (t.box[1], t.box[0], t.obj.id))
            geoms = self.answer_geometries(ts, kind, prefer)
            answer = self.codec.encode(geoms, kind)
        except (GetokError, DecodeError) as exc:
            self.out.skip(where, f"codec cannot write the answer: {self.codec.name}: {exc}")
            return
        if self.cfg.think:
            thought = P.choose(P.THOUGHTS[thought_kind], sid + "/think", self.cfg.seed)
            what = P.ANSWER_PHRASES[kind][thought_kind == "multi"]
            answer = wrap_response(answer, thought.format(kind=P.KIND_WORDS[kind], what=what, n=len(ts), **fmt))
        meta = {"source": self.im.meta.get("source"), **{k: v for k, v in fmt.items() if k == "expr"}}
        if len(ts) == 1:
            meta["category"] = ts[0].obj.category
        self.out.append(
            Sample(
                sample_id=sid,
                image_id=self.im.image_id,
                image=self.ref,
                size=self.size,
                task=task,
                kind=kind,
                codec=self.codec.spec,
                turns=[Turn(user=f"{IMAGE_PLACEHOLDER}\n{question}", assistant=answer)],
                truth=self.truth(ts, kind, geoms, query),
                meta=meta,
            )
        )

    def text_question(self, kind: str, expr: str, key: str, multi: bool = False) -> str:
        templates = P.MULTI_TEMPLATES[kind] if multi else P.TEXT_TEMPLATES[kind]
        q = P.choose(templates, key, self.cfg.seed).format(expr=expr)
        return q + (P.NONE_HINT if self.cfg.none_hint else "")

    def object_expressions(self, t: _Target, category_counts: Counter) -> list[str]:
        exprs = list(dict.fromkeys(t.obj.expressions))
        if not exprs and self.cfg.category_fallback and t.obj.attributes.get("referable_by_category", True):
            unique = t.obj.attributes.get("category_unique_in_image")
            if unique is None:
                unique = category_counts[t.obj.category] == 1
            if unique and category_counts[t.obj.category] == 1:
                exprs = [P.definite(t.obj.category)]
        return exprs

    def build(self) -> None:
        cfg = self.cfg
        ts = self.targets()
        cats = Counter(self.im.objects[i].category for i in range(len(self.im.objects)))
        kinds_of = {}
        for task in cfg.tasks:
            q, k = task.split(">")
            kinds_of.setdefault(q, []).append(k)
        # single-object text queries
        for t in ts.values():
            exprs = self.object_expressions(t, cats)
            for kind in kinds_of.get("text", []):
                if not exprs:
                    self.out.skip(f"{self.im.image_id} object {t.obj.id} text>{kind}", "no unambiguous expression")
                    continue
                start = P.stable_seed(cfg.seed, self.im.image_id, t.obj.id, kind) % len(exprs)
                for j in range(min(cfg.expressions_per_object, len(exprs))):
                    expr = exprs[(start + j) % len(exprs)]
                    key = f"o{t.obj.id}-e{j}"
                    q = self.text_question(kind, expr, f"{self.im.image_id}/{key}/{kind}")
                    self.add(f"text>{kind}", key, q, [t], {"type": "text", "text": expr}, "single", expr=expr)
            if "point" in kinds_of and "mask" in kinds_of["point"]:
                p = self.point_of(t)
                if p is None:
                    self.out.skip(
                        f"{self.im.image_id} object {t.obj.id} point>mask",
                        f"no query point on the object: none of codec {self.qcodec.name} lands inside it",
                    )
                else:
                    pt, ptext = p
                    key = f"o{t.obj.id}"
                    q = P.choose(P.POINT_TEMPLATES["mask"], f"{self.im.image_id}/{key}/point", cfg.seed)
                    self.add(
                        "point>mask", key, q.format(point=ptext), [t],
                        {"type": "point", "point": [round(float(v), 3) for v in pt], "text": ptext},
                        "point", point=ptext,
                    )  # fmt: skip
            if "box" in kinds_of and "mask" in kinds_of["box"]:
                self.box_query(t, ts)
        # multi-instance
        if "multi" in kinds_of and cfg.max_multi_per_image:
            groups = self.groups(ts)
            for kind in kinds_of["multi"]:
                order = sorted(groups, key=lambda g: P.stable_seed(cfg.seed, self.im.image_id, kind, g[0]))
                for j, (text, ids) in enumerate(order[: cfg.max_multi_per_image]):
                    key = f"g{j}"
                    q = self.text_question(kind, text, f"{self.im.image_id}/{key}/{kind}/multi", multi=True)
                    self.add(
                        f"multi>{kind}",
                        key,
                        q,
                        [ts[i] for i in ids],
                        {"type": "text", "text": text},
                        "multi",
                        expr=text,
                    )
        # no target
        if "none" in kinds_of and cfg.max_none_per_image:
            absent = list(dict.fromkeys(self.im.no_target_expressions))
            if not absent and cfg.absent_categories and self.all_categories:
                present = {o.category for o in self.im.objects}
                absent = [P.definite(c) for c in sorted(self.all_categories - present)]
            for kind in kinds_of["none"]:
                order = sorted(absent, key=lambda e: P.stable_seed(cfg.seed, self.im.image_id, kind, e))
                for j, text in enumerate(order[: cfg.max_none_per_image]):
                    key = f"n{j}"
                    q = self.text_question(kind, text, f"{self.im.image_id}/{key}/{kind}/none")
                    self.add(f"none>{kind}", key, q, [], {"type": "text", "text": text}, "none", expr=text)

    def box_query(self, t: _Target, ts: dict[int, _Target]) -> None:
        where = f"{self.im.image_id} object {t.obj.id} box>mask"
        x1, y1, x2, y2 = (int(v) for v in t.box)
        area = int(np.count_nonzero(t.mask))
        for o in ts.values():  # another object inside the box, about as large: the box is ambiguous
            if o is t:
                continue
            inside = int(np.count_nonzero(o.mask[y1:y2, x1:x2]))
            total = int(np.count_nonzero(o.mask))
            if inside >= 0.9 * total and total >= 0.5 * area:
                self.out.skip(where, f"ambiguous query box: object {o.obj.id} lies inside it too")
                return
        try:
            btext = self.qcodec.encode([Geometry(size=self.size, box=t.box)], "box")
        except GetokError as exc:
            self.out.skip(where, f"codec cannot write the query box: {exc}")
            return
        key = f"o{t.obj.id}"
        q = P.choose(P.BOX_TEMPLATES["mask"], f"{self.im.image_id}/{key}/box", self.cfg.seed).format(box=btext)
        self.add("box>mask", key, q, [t], {"type": "box", "box": _fmt_box(t.box), "text": btext}, "box", box=btext)

    def groups(self, ts: dict[int, _Target]) -> list[tuple[str, list[int]]]:
        out: dict[str, list[int]] = {}
        for g in self.im.meta.get("group_expressions", []):
            ids = [int(i) for i in g.get("object_ids", [])]
            if len(ids) >= 2 and all(i in ts for i in ids):
                out.setdefault(str(g["text"]), ids)
            elif len(ids) >= 2:
                self.out.skip(
                    f"{self.im.image_id} group {g.get('text')!r}", "group member skipped: a member object was skipped"
                )
        if self.cfg.multi_from_categories:
            by_cat: dict[str, list[int]] = {}
            for o in self.im.objects:
                by_cat.setdefault(o.category, []).append(o.id)
            for cat, ids in sorted(by_cat.items()):
                if len(ids) >= 2 and all(i in ts for i in ids):
                    out.setdefault(f"all the {P.pluralize(cat)}", ids)
        return sorted(out.items())


def _verify_image(image: AnnotatedImage) -> None:
    had = image.image is not None
    img = image.get_image()
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"image {image.image_id}: pixels must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if not had and image.image_path:
        image.image = None  # verified; do not keep every decoded file in memory


def _takes_prefer(fn) -> bool:
    try:
        return "prefer" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def build_tasks(
    images: Iterable[AnnotatedImage],
    codec_spec: str | Codec,
    cfg: TaskConfig | None = None,
    *,
    geometry_fn: GeometryFn | None = None,
    progress: bool = False,
) -> SampleList:
    """Samples of every configured task for every usable object of ``images``.

    Parameters
    ----------
    images : iterable of AnnotatedImage
        From any source (scenes, manifest, COCO, refer, ReasonSeg).
    codec_spec : str or Codec
        The answer codec (``"grid:n=32"``, ...). Queries (point / box in the prompt) are written in the
        same codec; a codec without point / box kinds writes them with ``text_coords``.
    cfg : TaskConfig, optional
    geometry_fn : callable, optional
        ``geometry_fn(image, obj) -> Geometry`` for mask answers (e.g. greedy grid cells); default
        ``obj.geometry()``. Must be picklable for parallel builds.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    SampleList
        The samples (image order, then object, then task), with ``skipped`` and pending ``images``.
    """
    cfg = cfg or TaskConfig()
    codec = get_codec(codec_spec)
    out = SampleList(settings={"codec": codec.spec, "tasks": cfg.to_dict()})
    query_codec = codec if {"point", "box"} <= set(codec.kinds) else get_codec("text_coords")
    unsupported = sorted({t for t in cfg.tasks if t.split(">")[1] not in codec.kinds})
    if unsupported:
        for t in unsupported:
            out.skip(f"task {t}", f"codec lacks the answer kind: {codec.name} has no {t.split('>')[1]!r} answers")
        cfg = (
            TaskConfig(**{**cfg.to_dict(), "tasks": tuple(t for t in cfg.tasks if t not in unsupported)})
            if len(unsupported) < len(cfg.tasks)
            else None
        )
        if cfg is None:
            return out
    images = list(images) if cfg.absent_categories else images
    all_categories = {o.category for im in images for o in im.objects} if cfg.absent_categories else set()
    it = images
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(images, desc=f"tasks ({codec.name})", unit="img")
    for im in it:
        if cfg.verify_images:
            try:
                _verify_image(im)
            except GetokError as exc:
                if cfg.strict:
                    raise
                out.skip(f"image {im.image_id}", f"unusable image: {exc}")
                continue
        b = _Builder(im, codec, query_codec, cfg, geometry_fn, out, all_categories)
        n0 = len(out)
        b.build()
        if b.needs_write and len(out) > n0:
            out.images[im.image_id] = im
    return out
