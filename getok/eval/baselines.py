"""Trivial answers, evaluated like a model: the floor every learned number is read against.

* ``centre`` — the centre cell of the grid for mask tasks (for polygons, the outline of a central square a
  quarter of the image's side);
* ``query`` — what the question alone gives: a point query's cell, the cell at a box query's centre, a box
  query's rectangle as the polygon (text queries fall back to ``centre``);
* ``random_object`` — the reference answer of a random object of the same image (any of the image's
  samples of the same task, the sample itself included): what a model scores that finds *an* object but
  does not read which one the sentence names;
* ``reference`` — the sample's own reference answer (the codec + decoder ceiling).

:class:`BaselineGenerator` is a ``generate_fn`` for :func:`getok.eval.runner.evaluate`.

>>> from getok.data_builders.scenes import generate_scenes
>>> from getok.data_builders.tasks import TaskConfig, build_tasks
>>> samples = build_tasks(generate_scenes(2, 10_000), "grid:n=8", TaskConfig(tasks=("text>mask",)))
>>> gen = BaselineGenerator("random_object", samples=samples, seed=0)
>>> all(a in {p.answer for p in samples if p.image == s.image} for s, a in zip(samples, gen(samples)))
True
>>> BaselineGenerator("centre")(samples[:1])
['<g8_r4_c4>']
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ..codecs.base import get_codec
from ..codecs.token_names import grid_token
from ..errors import ConfigError
from ..geometry import Geometry
from ..ops.grid import points_to_cells

__all__ = ["BASELINES", "baseline_answer", "BaselineGenerator"]

#: The baselines, with the label reports print beside them.
BASELINES = {
    "centre": "always the centre cell (a fixed central square for polygons)",
    "query": "the query's own geometry (point → its cell; box → its centre cell / its outline)",
    "random_object": "a random object of the image (finds an object, ignores which one is named)",
    "reference": "the reference answer (the encoded target: the codec + decoder ceiling)",
}


def _grid_n(sample) -> int:
    n = getattr(get_codec(sample.codec).config, "n", None)
    return int(n) if n else 8


def _cell_token(x: float, y: float, size, n: int) -> str:
    """The grid token of the cell holding pixel point ``(x, y)`` (:func:`getok.ops.grid.points_to_cells`)."""

    (cx, cy), = points_to_cells(np.array([[x, y]], dtype=float), n, (int(size[0]), int(size[1])))
    return grid_token(int(cx), int(cy), n)


def _pick(key: str, seed: int, k: int) -> int:
    """A uniform index in ``range(k)`` fixed by ``key`` and ``seed`` (independent of sample order)."""
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "little") % k


def baseline_answer(name: str, sample, polygon_codec: str | None = None, *, peers: Sequence | None = None,
                    seed: int = 0) -> str:  # fmt: skip
    """The answer of baseline ``name`` (:data:`BASELINES`) to one mask sample, in the sample's codec.

    ``polygon_codec`` encodes the polygon answers of ``box>polygon`` samples; ``peers`` are the samples of
    the same image and task that ``random_object`` chooses from (default: the sample alone).
    """
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if sample.kind != "mask":
        raise ConfigError(f"baselines answer mask samples, not {sample.kind!r} ({sample.sample_id})")
    if name == "reference":
        return sample.answer
    if name == "random_object":
        peers = sorted(peers or [sample], key=lambda p: str(p.sample_id))
        return peers[_pick(str(sample.sample_id), seed, len(peers))].answer

    h, w = (int(v) for v in sample.size)
    q = (sample.truth or {}).get("query") or {}
    if sample.task == "box>polygon":
        if polygon_codec is None:
            raise ConfigError("box>polygon baselines need the polygon codec")
        if name == "query" and q.get("type") == "box":
            x1, y1, x2, y2 = (float(v) for v in q["box"])
        else:
            s = min(h, w) / 8.0
            x1, y1, x2, y2 = w / 2 - s, h / 2 - s, w / 2 + s, h / 2 + s
        ring = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=float)
        return get_codec(polygon_codec).encode([Geometry(size=(h, w), polygons=[ring])], "mask")
    n = _grid_n(sample)
    if name == "query" and q.get("type") == "point":
        return _cell_token(*q["point"], (h, w), n)
    if name == "query" and q.get("type") == "box":
        x1, y1, x2, y2 = (float(v) for v in q["box"])
        return _cell_token((x1 + x2) / 2, (y1 + y2) / 2, (h, w), n)
    return _cell_token(w / 2, h / 2, (h, w), n)


class BaselineGenerator:
    """A ``generate_fn`` for :func:`getok.eval.runner.evaluate` answering with :func:`baseline_answer`.

    ``samples`` (the whole evaluation set) are what ``random_object`` draws from, grouped by image and task.
    """

    def __init__(self, name: str, polygon_codec: str | None = None, *, samples: Sequence = (), seed: int = 0):
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
        self.name, self.polygon_codec, self.seed = name, polygon_codec, int(seed)
        self._peers: dict = defaultdict(list)
        for s in samples:
            if s.kind == "mask":
                self._peers[(s.image, s.task)].append(s)

    def __call__(self, samples, *, turns_context=None, constrained=None, max_new_tokens: int = 128, **kw) -> list[str]:
        return [baseline_answer(self.name, s, self.polygon_codec, peers=self._peers.get((s.image, s.task)),
                                seed=self.seed) for s in samples]  # fmt: skip
