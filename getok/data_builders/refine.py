"""Self-correction samples from query tasks: turn 1 = a task's question answered by a noisy proposal,
turn 2 = the refine request answered by one offset token or ``<DELETE>`` per proposed cell.

:func:`getok.data_builders.offsets.offset_sample` asks ``Segment {query}.``; the samples here ask what the
model meets at evaluation and in stage-2 GRPO instead — the ``point>mask`` / ``text>mask`` / ``box>mask``
question of :func:`getok.data_builders.tasks.build_tasks` — and draw the proposal size ``k`` per object
from ``ks``, so a one-cell proposal is refined as often as a six-cell one.

**Anchor** (``anchor=True``, ``point>mask`` questions): the cell the question names is always part of the
proposal, and its label is the question's own offset whenever that move lands on the target (it does
by construction: the query point is a codec-rendered point on the object). A model that answers a point
question by copying its cell then has a refinement to learn that the question spells out: the move to
the point it was given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..codecs.base import get_codec
from ..errors import ConfigError, GetokError
from ..ops.grid import points_to_cells_offsets
from ..ops.masks import rle_decode
from .offsets import OffsetConfig, offset_sample
from .questions import stable_seed
from .tasks import SampleList

__all__ = ["refine_from_tasks", "query_anchor"]


def query_anchor(sample, codec):
    """The ``(cell, offset)`` a ``point>mask`` sample's question names (``None`` for other tasks or a point
    the codec cannot reach)."""

    q = sample.truth.get("query") or {}
    if sample.task != "point>mask" or q.get("type") != "point" or q.get("point") is None:
        return None
    cfg = codec.config
    cells, offs = points_to_cells_offsets(np.asarray(q["point"], dtype=np.float64)[None], cfg.n, cfg.r, cfg.step,
                                          sample.size)  # fmt: skip
    return cells[0], offs[0]


def refine_from_tasks(tasks, scenes, spec: str, ks: Sequence[int], *, anchor: bool = False, seed: int = 0,
                      n_jitter: int = 4, n_distractors: int = 2, inside_steps: float | None = None):  # fmt: skip
    """Two-turn refinement samples, one per single-target mask sample of ``tasks``.

    Parameters
    ----------
    tasks : SampleList
        Mask-task samples (:func:`~getok.data_builders.tasks.build_tasks`) in the ``grid_offset`` codec
        ``spec``; their answers are the true (greedy) cells of the proposal, their question is turn 1.
    scenes : list of AnnotatedImage
        The scenes of ``tasks`` (other objects give the distractor cells).
    spec : str
        A ``grid_offset`` codec.
    ks : sequence of int
        Proposal sizes, chosen per sample by a stable hash (every size about equally frequent).
    anchor : bool
        Point questions: always propose the named cell, labelled with the question's move (module doc).
    seed : int
    n_jitter, n_distractors : int
        :class:`~getok.data_builders.offsets.OffsetConfig` settings of the noise.
    inside_steps : float, optional
        The Inside band's width (:class:`~getok.data_builders.offsets.OffsetConfig`; 0: every point on the
        object is kept as it is).

    Returns
    -------
    SampleList
        ``task="refine"``; ``meta`` records ``k``, the question's task (``ask``) and the anchor.
    """

    c = get_codec(spec)
    if c.name != "grid_offset":
        raise ConfigError(f"refinement samples need a grid_offset codec, got {spec!r}")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks must be proposal sizes >= 1, got {ks}")
    # checked once here: inside the loop a bad setting would only skip every sample
    OffsetConfig(k=max(ks), n_jitter=n_jitter, n_distractors=n_distractors, inside_steps=inside_steps)
    by_id = {im.image_id: im for im in scenes}
    distractors: dict = {}
    out = SampleList(settings={"codec": c.spec, "type": "refine", "ks": ks, "anchor": bool(anchor)})
    out.images.update(getattr(tasks, "images", {}))
    out.skipped.extend(getattr(tasks, "skipped", []))
    for i, s in enumerate(tasks):
        masks = s.truth.get("masks") or []
        if s.kind != "mask" or len(masks) != 1:
            out.skip(s.sample_id, "refinement samples need a single-target mask question")
            continue
        oid = (s.truth.get("object_ids") or [None])[0]
        mask = rle_decode(masks[0])
        key = (s.image_id, oid)
        others = distractors.get(key)
        if others is None:  # the image's other objects (several questions ask about the same object)
            others = distractors[key] = np.zeros(s.size, dtype=bool)
            im = by_id.get(s.image_id)
            for o in im.objects if im is not None else ():
                if o.id != oid:
                    others |= o.get_mask()
        k = ks[stable_seed(seed, s.sample_id, "k") % len(ks)]
        cells = c.decode(s.answer, s.size, "mask")[0].cells
        a = query_anchor(s, c) if anchor else None
        meta = {"k": k, "ask": s.task}
        if a is not None:
            meta["anchor"] = {"cell": a[0].tolist(), "offset": a[1].tolist()}
        try:
            r = offset_sample(
                mask, c, sample_id=f"{s.sample_id}-refine-k{k}", image_id=s.image_id, image=s.image,
                query=s.turns[0].user, ask="{query}", true_cells=cells, distractor_mask=others,
                cfg=OffsetConfig(k=k, n_jitter=n_jitter, n_distractors=n_distractors, inside_steps=inside_steps),
                rng=np.random.default_rng([seed, i]), meta=meta, anchor=a,
            )  # fmt: skip
        except GetokError as exc:
            out.skip(s.sample_id, f"refinement sample: {exc}")
            continue
        out.append(r)
    return out
