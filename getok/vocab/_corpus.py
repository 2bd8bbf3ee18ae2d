"""Built-in text corpus for the tiny model's tokenizer (private).

A few hundred deterministic sentences: referring expressions, task prompts, reasoning tags, numbers in the
formats the text codecs write (``0.512``, ``[512, 250]``, ``(0.375, 0.125)``, ``move (+0.016, -0.016)``) and
punctuation, so that a byte-level BPE trained on it splits every prompt and answer of the package into
reasonable pieces. Nothing here is random: the corpus, and so the tokenizer, are the same on every machine.
"""

from __future__ import annotations

__all__ = ["tokenizer_corpus"]

_OBJECTS = [
    "person", "man", "woman", "child", "boy", "girl", "dog", "cat", "horse", "sheep", "cow", "bird",
    "car", "bus", "truck", "bicycle", "motorcycle", "train", "boat", "airplane", "chair", "couch", "table",
    "bed", "bottle", "cup", "bowl", "banana", "apple", "orange", "pizza", "cake", "laptop", "phone",
    "book", "clock", "vase", "umbrella", "bag", "kite", "ball", "plate", "tree", "window", "door",
    "circle", "square", "triangle", "ellipse", "star", "ring", "blob", "shape", "object", "region",
]
_COLORS = ["red", "green", "blue", "yellow", "black", "white", "gray", "brown", "purple", "orange", "pink"]
_SIZES = ["small", "large", "big", "tiny", "tall", "short", "long", "wide", "thin"]
_WHERE = [
    "on the left", "on the right", "at the top", "at the bottom", "in the middle", "in the center",
    "near the edge", "next to the door", "behind the table", "in front of the car", "under the tree",
    "above the bed", "closest to the camera", "farthest from the camera", "in the top left corner",
    "in the bottom right corner", "between the two chairs", "second from the left", "third from the right",
]
_PROMPTS = [
    "Please segment the {o}.",
    "Find the {c} {o} {w}.",
    "Where is the {s} {o}?",
    "Point to the {c} {o}.",
    "Give the bounding box of the {s} {c} {o} {w}.",
    "Output the mask of every {o} in the image.",
    "Which {o} is {w}? Answer with grid tokens.",
    "Segment all {c} objects, or answer none if there is no match.",
    "Refine the proposal: move each point or delete it.",
    "The {s} {o} {w} is partly hidden by a {c} {o}.",
    "Describe the image and locate the {o}.",
    "Is there a {c} {o}? If not, answer none.",
]
_REASONING = [
    "<think>The {c} {o} is {w}, so I select the cells that cover it.</think><answer>{a}</answer>",
    "<think>There are two {o}s; the {s} one is {w}.</think><answer>{a}</answer>",
    "<think>No {c} {o} appears in the image.</think><answer>none</answer>",
    "<think>I check each proposed point: one lies outside the object and moves right.</think><answer>{a}</answer>",
]
_PLAIN = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you today?",
    "You are a helpful assistant.",
    "A picture is worth a thousand words.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 16 20 25 32 50 64 100 128 224 256 448 512 1000 1024.",
    "Punctuation: , . ; : ! ? ' \" ( ) [ ] { } < > / \\ - + = * _ # % & @ | ~ ^ $",
    "Coordinates are normalized to the range from 0 to 1; x is the column and y is the row.",
    "The answer has one line per instance.",
    "user: what is in the image? assistant: a cat sitting on a red couch.",
    "JSON: {\"box\": [10, 20, 110, 220], \"label\": \"dog\", \"score\": 0.93}",
    "def f(x): return x * 2 + 1",
    "It's a dog's life; they're here, we've seen it, I'm sure, you'll see, he'd go.",
]


def _numbers(k: int) -> list[str]:
    """Deterministic number strings in the formats the text codecs write."""
    out = []
    for i in range(k):
        a = (i * 37 + 11) % 1000
        b = (i * 91 + 503) % 1000
        c = (i * 53 + 7) % 1000
        d = (i * 29 + 301) % 1000
        out.append(f"[{a}, {b}, {c}, {d}]")
        out.append(f"({a / 1000:.3f}, {b / 1000:.3f})")
        out.append(f"[[{a / 1000:.3f}, {b / 1000:.3f}], [{c / 1000:.3f}, {d / 1000:.3f}]]")
        out.append(f"move ({(a - 500) / 8000:+.3f}, {(b - 500) / 8000:+.3f})")
        out.append(f"{a / 1000:.3f} {b} {c}-{d}")
    return out


def tokenizer_corpus() -> list[str]:
    """The built-in corpus (a list of ~700 short strings, same on every call)."""
    lines: list[str] = list(_PLAIN)
    n_o, n_c, n_s, n_w = len(_OBJECTS), len(_COLORS), len(_SIZES), len(_WHERE)
    for i in range(240):
        fill = {
            "o": _OBJECTS[i % n_o],
            "c": _COLORS[(i * 7) % n_c],
            "s": _SIZES[(i * 5) % n_s],
            "w": _WHERE[(i * 3) % n_w],
            "a": f"[{(i * 37) % 1000}, {(i * 91) % 1000}, {(i * 53) % 1000}, {(i * 29) % 1000}]",
        }
        lines.append(_PROMPTS[i % len(_PROMPTS)].format(**fill))
        if i % 2 == 0:
            lines.append(_REASONING[(i // 2) % len(_REASONING)].format(**fill))
    for o in _OBJECTS:
        lines.append(f"the {o}, a {o}, two {o}s, every {o}; {o.capitalize()}!")
    lines.extend(_numbers(80))
    return lines
