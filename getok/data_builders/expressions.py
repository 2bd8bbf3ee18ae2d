"""The scene vocabulary and its referring expressions: shapes, colours and sizes with the words for them;
the facts of a scene (:func:`_facts`), the expressions that name its objects uniquely (:func:`_describe`:
colour, shape, size, superlatives, relations, plurals) and their resolution back to objects
(:func:`resolve_expression`, :func:`expression_kind`). :mod:`getok.data_builders.scenes` draws the scenes
and calls these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..records import AnnotatedImage

if TYPE_CHECKING:  # annotations only: scenes imports this module
    from .scenes import SceneConfig

__all__ = [
    "SHAPES",
    "PALETTE",
    "SIZE_CLASSES",
    "plural",
    "resolve_expression",
    "expression_kind",
    "EXPRESSION_KINDS",
]

#: Shape names (also the object categories).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "ring", "cross", "L-shape", "star", "ellipse", "bar")

#: Named colours (RGB). The background is always a grey, so no colour is confused with it.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (45, 85, 220),
    "yellow": (235, 210, 40),
    "orange": (245, 135, 30),
    "purple": (135, 55, 185),
    "cyan": (40, 200, 215),
    "pink": (240, 125, 185),
}

#: Size classes → range of the half-extent as a fraction of ``min(H, W)``.
SIZE_CLASSES: dict[str, tuple[float, float]] = {
    "small": (0.07, 0.095),
    "medium": (0.12, 0.15),
    "large": (0.19, 0.24),
}
_SIZE_WORD = {"small": "small", "medium": "medium-sized", "large": "large"}
_WORD_SIZE = {v: k for k, v in _SIZE_WORD.items()}


_PLURALS = {"cross": "crosses", "object": "objects"}
_SUPERLATIVES = ("largest", "smallest", "leftmost", "rightmost", "topmost", "bottommost")
_RELATIONS = ("left of", "right of", "above", "below")


def plural(noun: str) -> str:
    """English plural of a shape noun (``"cross"`` → ``"crosses"``)."""
    return _PLURALS.get(noun, noun + "s")



# ---------------------------------------------------------------------------------------------- facts
@dataclass
class _Obj:
    """What the expression grammar knows of one drawn object."""

    id: int
    shape: str
    color: str
    size: str
    cx: float
    cy: float
    area: int


def _facts(image: AnnotatedImage) -> list[_Obj]:
    out = []
    for o in image.objects:
        a = o.attributes
        try:
            cx, cy = a["center"]
            out.append(_Obj(o.id, a["shape"], a["color"], a["size"], float(cx), float(cy), int(a["area"])))
        except KeyError as exc:
            raise DataError(f"image {image.image_id}: object {o.id} lacks scene attribute {exc}") from exc
    return out


def _matches(o: _Obj, np_: tuple[str | None, str | None, str | None]) -> bool:
    size, color, shape = np_
    return (
        (size is None or o.size == size) and (color is None or o.color == color) and (shape is None or o.shape == shape)
    )


def _np_text(np_: tuple[str | None, str | None, str | None], plural_form: bool = False) -> str:
    size, color, shape = np_
    noun = shape or "object"
    words = [w for w in (_SIZE_WORD.get(size) if size else None, color, plural(noun) if plural_form else noun) if w]
    return " ".join(words)


def _superlative(cands: list[_Obj], word: str, size: tuple[int, int], margin: float, ratio: float) -> list[_Obj]:
    """Candidates that are (near-)extreme for ``word``: one object iff the extreme is clear."""
    h, w = size
    if not cands:
        return []
    if word in ("largest", "smallest"):
        areas = np.array([c.area for c in cands], dtype=np.float64)
        if word == "largest":
            best = areas.max()
            return [c for c in cands if c.area * ratio > best]
        best = areas.min()
        return [c for c in cands if c.area < best * ratio]
    f, side = {
        "leftmost": (lambda c: c.cx, w),
        "rightmost": (lambda c: -c.cx, w),
        "topmost": (lambda c: c.cy, h),
        "bottommost": (lambda c: -c.cy, h),
    }[word]
    vals = np.array([f(c) for c in cands])
    best = vals.min()
    return [c for c, v in zip(cands, vals) if v < best + margin * side]


def _relation(a: _Obj, b: _Obj, rel: str, size: tuple[int, int], margin: float) -> bool:
    """Whether ``a`` is ``rel`` ``b`` (centroids), by at least ``margin`` (fraction of the side)."""
    h, w = size
    if rel == "left of":
        return a.cx < b.cx - margin * w
    if rel == "right of":
        return a.cx > b.cx + margin * w
    if rel == "above":
        return a.cy < b.cy - margin * h
    if rel == "below":
        return a.cy > b.cy + margin * h
    raise DataError(f"unknown relation {rel!r}")  # pragma: no cover


# ---------------------------------------------------------------------------------------------- parsing
#: lower-case noun (singular or plural) → shape name ("object" for any shape)
_NOUNS = {w.lower(): s for s in (*SHAPES, "object") for w in (s, plural(s))}


def _parse_np(words: list[str]) -> tuple[str | None, str | None, str | None] | None:
    """``["small", "red", "circle"]`` → ``("small", "red", "circle")``; ``None`` if not a noun phrase."""
    size = color = None
    i = 0
    if i < len(words) and words[i] in _WORD_SIZE:
        size = _WORD_SIZE[words[i]]
        i += 1
    if i < len(words) and words[i] in PALETTE:
        color = words[i]
        i += 1
    if i != len(words) - 1:
        return None
    noun = _NOUNS.get(words[i], "")
    if not noun:
        return None
    return size, color, (None if noun == "object" else noun)


#: What :func:`expression_kind` returns.
EXPRESSION_KINDS: tuple[str, ...] = ("colour", "shape", "superlative", "relation", "plural", "other")


def expression_kind(text: str) -> str:
    """The kind of a scene expression, for per-kind scores: ``relation`` (``the <np> left of the <np>``),
    ``superlative`` (``the largest <np>``), ``plural`` (``all the <np>``), or an attribute phrase that names a
    ``colour`` (``the [small] red [circle|object]``) or only a ``shape`` (``the [small] circle``); ``other``
    for text outside the grammar.

    >>> [expression_kind(t) for t in ("the red circle", "the small star", "the leftmost red object",
    ...                               "the circle left of the blue square", "all the circles", "a dog")]
    ['colour', 'shape', 'superlative', 'relation', 'plural', 'other']
    """
    words = text.strip().lower().split()
    if words[:2] == ["all", "the"]:
        return "plural"
    if words[:1] != ["the"]:
        return "other"
    words = words[1:]
    for rel in _RELATIONS:
        rw = rel.split()
        if any(words[i : i + len(rw)] == rw and words[i + len(rw)] == "the" for i in range(1, len(words) - len(rw))):
            return "relation"
    if words and words[0] in _SUPERLATIVES:
        return "superlative"
    np_ = _parse_np(words)
    if np_ is None:
        return "other"
    return "colour" if np_[1] else ("shape" if np_[2] else "other")


def resolve_expression(
    image: AnnotatedImage, text: str, *, margin: float | None = None, size_ratio: float | None = None
) -> list[int]:
    """Sorted ids of the objects a scene expression refers to (empty for an absent object).

    Reads the grammar of this module (see the module docstring) against the objects' ``attributes``.
    Relations are tested without a margin: every object on that side of the anchor counts, and an
    anchor that is not unique names nothing. Superlatives return every candidate within ``margin``
    (fraction of the image side; default the scene's ``rel_margin``) of the extreme position, or within
    a factor ``size_ratio`` (default the scene's) of the extreme area, so a near tie resolves to several
    objects, i.e. is ambiguous.

    Raises :class:`DataError` for text outside the grammar.
    """
    facts = _facts(image)
    cfg = image.meta.get("scene_config", {})
    ratio = float(size_ratio if size_ratio is not None else cfg.get("size_ratio", 1.3))
    sup_margin = float(margin if margin is not None else cfg.get("rel_margin", 0.08))
    ids = _resolve(facts, text, image.size, 0.0, sup_margin, ratio)
    return sorted(o.id for o in ids)


def _resolve(facts, text, size, rel_margin, sup_margin, ratio) -> list[_Obj]:
    words = text.strip().lower().split()
    if len(words) >= 3 and words[:2] == ["all", "the"]:
        np_ = _parse_np(words[2:])
        if np_ is None:
            raise DataError(f"not a scene expression: {text!r}")
        return [o for o in facts if _matches(o, np_)]
    if not words or words[0] != "the":
        raise DataError(f"not a scene expression: {text!r}")
    words = words[1:]
    for rel in _RELATIONS:
        rw = rel.split()
        for i in range(1, len(words) - len(rw)):
            if words[i : i + len(rw)] == rw and words[i + len(rw)] == "the":
                np_ = _parse_np(words[:i])
                if np_ is None:
                    continue
                anchors = _resolve(facts, " ".join(words[i + len(rw) :]), size, rel_margin, sup_margin, ratio)
                if len(anchors) != 1:
                    return []  # no (unique) anchor: the phrase names nothing definite
                a = anchors[0]
                return [
                    o for o in facts if o.id != a.id and _matches(o, np_) and _relation(o, a, rel, size, rel_margin)
                ]
    if words and words[0] in _SUPERLATIVES:
        np_ = _parse_np(words[1:])
        if np_ is None:
            raise DataError(f"not a scene expression: {text!r}")
        cands = [o for o in facts if _matches(o, np_)]
        return _superlative(cands, words[0], size, sup_margin, ratio)
    np_ = _parse_np(words)
    if np_ is None:
        raise DataError(f"not a scene expression: {text!r}")
    return [o for o in facts if _matches(o, np_)]


# ---------------------------------------------------------------------------------------------- expressions
_ATTR_SUBSETS = (
    (False, False, True),  # shape
    (False, True, True),  # colour shape
    (True, False, True),  # size shape
    (False, True, False),  # colour object
    (True, True, True),  # size colour shape
    (True, True, False),  # size colour object
)


def _np_of(o: _Obj, pick: tuple[bool, bool, bool]) -> tuple[str | None, str | None, str | None]:
    return (o.size if pick[0] else None, o.color if pick[1] else None, o.shape if pick[2] else None)


def _unique_np(o: _Obj, facts: list[_Obj]) -> list[tuple]:
    """Attribute noun phrases that match ``o`` only, shortest first."""
    out = []
    for pick in _ATTR_SUBSETS:
        np_ = _np_of(o, pick)
        if sum(_matches(f, np_) for f in facts) == 1:
            out.append(np_)
    return out


def _describe(facts: list[_Obj], cfg: SceneConfig, rng: np.random.Generator) -> tuple[dict[int, list], list, list]:
    """Expressions per object (text, type), group expressions and absent-object expressions."""
    size = cfg.size
    per: dict[int, list[tuple[str, str]]] = {o.id: [] for o in facts}
    unique = {o.id: _unique_np(o, facts) for o in facts}
    for o in facts:
        cands: list[tuple[str, str]] = [(f"the {_np_text(np_)}", "attribute") for np_ in unique[o.id][:2]]
        # superlatives over a noun phrase that names >= 2 objects
        sups = []
        for pick in ((False, False, False), (False, False, True), (False, True, False)):
            np_ = _np_of(o, pick)
            group = [f for f in facts if _matches(f, np_)]
            if len(group) < 2:
                continue
            for word in _SUPERLATIVES:
                if [g.id for g in _superlative(group, word, size, cfg.rel_margin, cfg.size_ratio)] == [o.id]:
                    sups.append((f"the {word} {_np_text(np_)}", "superlative"))
        # relations: a noun phrase that is ambiguous alone, made unique by an anchor
        rels = []
        for pick in ((False, False, True), (False, True, False), (False, False, False)):
            np_ = _np_of(o, pick)
            group = [f for f in facts if _matches(f, np_)]
            if len(group) < 2:
                continue
            for a in facts:
                if a.id == o.id or not unique[a.id]:
                    continue
                others = [f for f in group if f.id not in (o.id, a.id)]
                for rel in _RELATIONS:
                    if not _relation(o, a, rel, size, cfg.rel_margin):
                        continue
                    if any(_relation(f, a, rel, size, 0.0) for f in others):
                        continue
                    rels.append((f"the {_np_text(np_)} {rel} the {_np_text(unique[a.id][0])}", "relation"))
        for extra in (sups, rels):
            if extra:
                cands.append(extra[int(rng.integers(len(extra)))])
        rest = [c for c in sups + rels if c not in cands]
        rng.shuffle(rest)
        cands.extend(rest)
        per[o.id] = cands[: cfg.max_expressions]
    # plurals: noun phrases that name two or more objects
    groups, seen = [], set()
    for o in facts:
        for pick in ((False, False, True), (False, True, False), (False, True, True), (True, False, False)):
            np_ = _np_of(o, pick)
            ids = tuple(f.id for f in facts if _matches(f, np_))
            if len(ids) >= 2 and np_ not in seen:
                seen.add(np_)
                groups.append({"text": f"all the {_np_text(np_, plural_form=True)}", "object_ids": list(ids)})
    # absent objects: colour + shape combinations that do not occur
    present = {(f.color, f.shape) for f in facts}
    absent_pool = [(c, s) for c in cfg.colors for s in cfg.shapes if (c, s) not in present]
    absent = []
    if absent_pool and cfg.n_absent:
        idx = rng.choice(len(absent_pool), size=min(cfg.n_absent, len(absent_pool)), replace=False)
        absent = [f"the {absent_pool[i][0]} {absent_pool[i][1]}" for i in sorted(idx)]
    return per, groups, absent
