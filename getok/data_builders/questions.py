"""Prompt and thought templates of the query tasks, and the seeded choice among them.

Templates are data: a tuple of format strings per (query type, answer kind). Text, multi-instance and
no-target questions share the *same* templates, so the wording never tells the model whether an object
exists. Placeholders: ``{expr}`` (referring expression), ``{point}`` / ``{box}`` (the query written in
the codec), ``{kind}`` (what the answer is: ``mask``, ``box``, ``point``, ``outline``).

>>> choose(TEXT_TEMPLATES["mask"], "sample-1", seed=0) in TEXT_TEMPLATES["mask"]
True
>>> pluralize("person"), pluralize("bus"), pluralize("wine glass"), pluralize("L-shape")
('people', 'buses', 'wine glasses', 'L-shapes')
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = [
    "TEXT_TEMPLATES",
    "POINT_TEMPLATES",
    "MULTI_TEMPLATES",
    "ANSWER_PHRASES",
    "BOX_TEMPLATES",
    "NONE_HINT",
    "THOUGHTS",
    "KIND_WORDS",
    "choose",
    "stable_seed",
    "pluralize",
    "definite",
]

#: What each answer kind is called in prompts and thoughts.
KIND_WORDS = {"mask": "mask", "box": "bounding box", "point": "point", "polyline": "outline"}

#: Text queries (single target, multi-instance and no-target alike), per answer kind.
TEXT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "mask": (
        "Segment {expr}.",
        "Give the mask of {expr}.",
        'Please segment "{expr}" in this image.',
        "Which region of the image is {expr}? Answer with its mask.",
        "Find {expr} and output its segmentation.",
    ),
    "box": (
        "Give the bounding box of {expr}.",
        "Locate {expr} with a box.",
        'Where is "{expr}"? Answer with a bounding box.',
        "Draw a box around {expr}.",
    ),
    "point": (
        "Point to {expr}.",
        "Give one point that lies on {expr}.",
        'Where is "{expr}"? Answer with a point on it.',
        "Click on {expr}.",
    ),
    "polyline": (
        "Trace the outline of {expr}.",
        "Give the contour of {expr} as a polyline.",
        'Outline "{expr}" with a sequence of points.',
    ),
}

#: Point queries: the point is written in the codec (a cell token for grid codecs).
POINT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "mask": (
        "Segment the object at {point}.",
        "Which object is at {point}? Give its mask.",
        "Give the mask of the object under the point {point}.",
        "A point {point} lies on an object. Segment that object.",
    ),
}

#: Box queries: the box is written in the codec.
BOX_TEMPLATES: dict[str, tuple[str, ...]] = {
    "mask": (
        "Segment the object in the box {box}.",
        "Give the mask of the object inside {box}.",
        "The box {box} frames one object. Segment it.",
    ),
}

#: Appended to text questions when ``TaskConfig.none_hint`` is on.
NONE_HINT = " Answer none if there is no such object."

#: Multi-instance queries ("all the …"), per answer kind: one answer line per instance.
MULTI_TEMPLATES: dict[str, tuple[str, ...]] = {
    "mask": (
        "Segment {expr}.",
        "Give a mask for each of {expr}.",
        "Find {expr} and segment every one of them.",
        "Output one mask per object for {expr}.",
    ),
    "box": (
        "Give the bounding boxes of {expr}.",
        "Draw a box around each of {expr}.",
        "Locate {expr}, one box per object.",
    ),
    "point": (
        "Point to {expr}.",
        "Give one point on each of {expr}.",
        "Click on each of {expr}.",
    ),
    "polyline": (
        "Trace the outlines of {expr}.",
        "Give the contour of each of {expr}.",
    ),
}

#: What the thought says it writes, per answer kind: (one object, each of several).
ANSWER_PHRASES = {
    "mask": ("its mask", "one mask each"),
    "box": ("its bounding box", "one box each"),
    "point": ("a point on it", "one point on each"),
    "polyline": ("its outline", "one outline each"),
}

#: Short templated thoughts for ``think=True`` (``{n}``: number of targets, ``{what}``: answer phrase).
THOUGHTS: dict[str, tuple[str, ...]] = {
    "single": (
        "The question asks for {expr}. I find it in the image and give {what}.",
        "I look for {expr}. It is there, so I write {what}.",
    ),
    "multi": (
        "The question asks for {expr}. I find {n} of them and give {what}.",
        "I look for {expr}. There are {n}, so I write {n} answers, {what}.",
    ),
    "none": (
        "The question asks for {expr}. Nothing in the image matches, so the answer is none.",
        "I look for {expr} but no object fits the description, so I answer none.",
    ),
    "point": (
        "The point {point} lies on one object. I give the {kind} of that object.",
        "I find the object under {point} and write {what}.",
    ),
    "box": (
        "The box {box} frames one object. I give {what}.",
        "I look inside {box}, find the object it frames and write {what}.",
    ),
}


def stable_seed(*parts) -> int:
    """A 32-bit seed from strings / ints, the same in every process and Python run (unlike ``hash``)."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


def choose(options: Sequence, key: str, seed: int = 0):
    """Pick one of ``options`` by a stable hash of ``key`` and ``seed`` (order- and process-independent)."""
    if not options:
        raise ValueError("choose() needs at least one option")
    return options[stable_seed(seed, key) % len(options)]


_IRREGULAR = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "glasses": "glasses",
}


def pluralize(noun: str) -> str:
    """English plural of a category name (last word inflected; COCO's names are covered)."""
    words = noun.strip().split(" ")
    last = words[-1]
    low = last.lower()
    if low in _IRREGULAR:
        plural = _IRREGULAR[low]
    elif low.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return " ".join([*words[:-1], plural])


def definite(category: str) -> str:
    """``"dog"`` → ``"the dog"`` (a category used as a referring expression)."""
    return f"the {category.strip()}"
