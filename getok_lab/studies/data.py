"""Samples of the studies: query tasks in a representation, point answers, and refinement samples.

* :func:`task_samples` — ``text>mask`` / ``point>mask`` / ``box>mask`` samples whose query (point, box)
  is written in the same codec as the answer (:func:`getok.data_builders.tasks.build_tasks`), with the
  answer written the codec's own way (``answer="native"``: grid cells — greedy over the scene's exact
  regions —, or outline polygons) or as **one point on the object** (``answer="point"``: what a text /
  bin coordinate model hands to a plug-in mask decoder; GETok's grid cells are such points too).
* :func:`refine_samples` — two-turn refinement samples (:func:`getok.data_builders.offsets.offset_sample`)
  whose first turn is a *point* (or text) question and whose noisy proposals have a varying number of
  cells ``k`` (e.g. 1, 2, 3, 4, 6): the first turn then looks like the questions and proposals the model
  meets at evaluation, and the model learns to refine a one-cell proposal as well as a six-cell one.
* :func:`write_pool` — a dataset directory whose manifest names the scene series (so the exact decoder
  can rebuild each scene's label map).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from getok.codecs.base import get_codec
from getok.errors import ConfigError
from getok.geometry import Geometry

__all__ = ["ANSWER_FORMS", "grid_n", "task_samples", "point_on_mask", "refine_samples", "write_pool"]

#: How a mask answer is written: the codec's own way, or one point on the object (decoder makes the mask).
ANSWER_FORMS = ("native", "point")


def grid_n(spec: str) -> int | None:
    """The grid size of a ``grid`` / ``grid_offset`` codec (``None`` for other codecs)."""
    c = get_codec(spec)
    return int(c.config.n) if c.name in ("grid", "grid_offset") else None


def _geometry_fn(spec: str):
    n = grid_n(spec)
    if n is None:
        return None
    from getok.data_builders.greedy import GreedyGeometryFn

    return GreedyGeometryFn("exact", n=n)


def point_on_mask(mask: np.ndarray, codec, candidates: int = 64) -> np.ndarray | None:
    """A point ``(x, y)`` (pixels) on ``mask`` whose rendering by ``codec`` decodes back onto the mask.

    Candidates are the mask's pixel centres, deepest (distance to the border) first; ``None`` when none of
    the first ``candidates`` survives the codec's quantisation.
    """
    from scipy.ndimage import distance_transform_edt

    m = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return None
    d = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1][ys, xs]
    order = np.lexsort((xs, ys, -d))[:candidates]
    h, w = m.shape
    for i in order:
        p = np.array([xs[i] + 0.5, ys[i] + 0.5])
        text = codec.encode([Geometry(size=(h, w), points=p[None])], "point")
        res = codec.try_decode(text, (h, w), "point")
        if res.valid and res.geometries and res.geometries[0].points is not None:
            q = res.geometries[0].points[0]
            if m[min(int(q[1]), h - 1), min(int(q[0]), w - 1)]:
                return p
    return None


def task_samples(scenes, spec: str, tasks: Sequence[str], *, answer: str = "native", seed: int = 0):
    """Query-task samples of ``scenes`` in the codec ``spec`` (see the module docstring).

    Parameters
    ----------
    scenes : list of AnnotatedImage
    spec : str
        The codec: answers and point / box queries are written with it (codecs without point / box kinds,
        such as ``polygon``, get ``text_coords`` queries: pass ``text_coords`` / ``bins`` for outlines whose
        query is written the same way).
    tasks : subset of ``text>mask``, ``point>mask``, ``box>mask``
    answer : {"native", "point"}
        ``point``: every mask answer becomes ``codec.encode([point], "point")`` for a point on the target
        (:func:`point_on_mask`), ``kind="point"``; the truth stays the mask.
    seed : int
        Template and expression choices.

    Returns
    -------
    SampleList
        With ``images`` (the scenes to write) and ``skipped``.
    """
    from getok.data_builders.tasks import SampleList, TaskConfig, build_tasks
    from getok.ops.masks import rle_decode

    if answer not in ANSWER_FORMS:
        raise ConfigError(f"answer must be one of {ANSWER_FORMS}, got {answer!r}")
    bad = [t for t in tasks if t.split(">")[1] != "mask"]
    if bad:
        raise ConfigError(f"study tasks must be mask tasks (text>mask, point>mask, box>mask), got {bad}")
    res = build_tasks(scenes, spec, TaskConfig(tasks=tuple(tasks), seed=seed), geometry_fn=_geometry_fn(spec))
    if answer == "native":
        return res
    codec = get_codec(spec)
    if "point" not in codec.kinds:
        raise ConfigError(f"answer=point needs a codec with point answers, not {spec!r}")
    out = SampleList(settings={**res.settings, "answer": "point"})
    out.skipped.extend(res.skipped)
    out.images.update(res.images)
    for s in res:
        masks = s.truth.get("masks") or []
        q = (s.truth.get("query") or {}).get("point") if s.task == "point>mask" else None
        p = (
            np.asarray(q, dtype=np.float64)
            if q is not None
            else (point_on_mask(rle_decode(masks[0]), codec) if len(masks) == 1 else None)
        )
        if p is None:
            out.skip(f"{s.sample_id}", "no point on the object survives the codec's quantisation")
            continue
        t = copy.deepcopy(s)
        t.kind = "point"
        t.turns[-1].assistant = codec.encode([Geometry(size=s.size, points=np.asarray(p)[None])], "point")
        t.truth["points"] = [[round(float(v), 3) for v in p]]
        out.append(t)
    return out


def refine_samples(scenes, spec: str, ks: Sequence[int], *, ask: str = "point", seed: int = 0, n_jitter: int = 4,
                   n_distractors: int = 2, anchor: bool = False):  # fmt: skip
    """Two-turn refinement samples, one per object, with ``k`` drawn from ``ks`` per object.

    Turn 1 is the ``ask`` question of the object (``point``: the ``point>mask`` question with the point
    written in ``spec``; ``text``: its ``text>mask`` question) answered by a noisy proposal of ``k`` cells
    (true greedy cells, jittered cells, cells on other objects; :func:`getok.data_builders.offsets.noisy_proposal`);
    turn 2 is the refine request answered by one offset token or ``<DELETE>`` per proposed cell.

    Parameters
    ----------
    scenes : list of AnnotatedImage
    spec : str
        A ``grid_offset`` codec.
    ks : sequence of int
        Proposal sizes, chosen per object by a stable hash (so every size is about equally frequent).
    ask : {"point", "text"}
    seed : int
    n_jitter, n_distractors : int
        :class:`~getok.data_builders.offsets.OffsetConfig` settings of the noise.
    anchor : bool
        Point questions: always propose the named cell, refined by the question's move
        (:mod:`getok.data_builders.refine`).

    Returns
    -------
    SampleList
    """
    from getok.data_builders.refine import refine_from_tasks

    if ask not in ("point", "text"):
        raise ConfigError(f"ask must be 'point' or 'text', got {ask!r}")
    if get_codec(spec).name != "grid_offset":
        raise ConfigError(f"refinement samples need a grid_offset codec, got {spec!r}")
    base = task_samples(scenes, spec, [f"{ask}>mask"], seed=seed)
    out = refine_from_tasks(base, scenes, spec, ks, anchor=anchor, seed=seed, n_jitter=n_jitter,
                            n_distractors=n_distractors)  # fmt: skip
    out.settings["ask"] = ask
    return out


def write_pool(samples, path: str | Path, sources: list[dict]) -> Path:
    """Write ``samples`` as a dataset directory at ``path`` (replaced if present); ``sources`` go to the manifest."""
    from getok.data_builders.dataset import write_dataset

    if not len(samples):
        raise ConfigError(f"no samples to write to {path} (skipped: {len(getattr(samples, 'skipped', []))})")
    return write_dataset(samples, path, {"sources": list(sources)}, overwrite=True)
