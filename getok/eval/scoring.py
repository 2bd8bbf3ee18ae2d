"""One generated answer → one JSON-safe evaluation record (shared by the runner and self-correction).

Steps for a sample: the answer is taken out of the envelope (:func:`getok.answers.extract_answer`,
lenient: a bare answer is fine), decoded by the codec (``decode``; for a refinement, ``decode_refinement``
against the proposal), turned into one mask per instance by the mask decoder, and the union of the
instance masks is compared with the union of the ground-truth instance masks (``Sample.truth["masks"]``,
empty for a no-target sample) by :func:`getok.eval.metrics.sample_record`.

An answer that does not decode is **invalid**: it is recorded with ``valid=False`` and the codec's
reason (``stray_text``, ``unknown_token``, ``count_mismatch``, ...), never raised; its prediction is empty.
A geometry the mask decoder rejects is invalid too (reason ``mask_decoder``).

Boxes for REC Acc@t: the answer's box when it has exactly one instance with a box, else the box of the
decoded mask; the truth box when there is exactly one target, else the box of the truth mask. Point
answers (and polylines) also get ``point_hit``: the fraction of predicted points on the truth mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..answers import extract_answer
from ..codecs.base import NO_TARGET, Codec, DecodeResult
from ..codecs.count import qwen_style_count
from ..decoding import decode_instances
from ..errors import DecodeError, GetokError
from ..geometry import Geometry
from ..ops.masks import rle_decode, rle_encode
from ..ops.points import points_in_mask
from ..ops.polygons import mask_to_polygons
from ..samples import Sample
from .metrics import sample_record

__all__ = [
    "truth_masks",
    "truth_union",
    "decode_answer",
    "instance_masks",
    "geometry_json",
    "score_answer",
    "describe_sample",
]


def truth_masks(sample: Sample) -> np.ndarray:
    """The sample's target instance masks, ``(G, H, W)`` bool (``G = 0`` for a no-target sample)."""
    h, w = sample.size
    rles = sample.truth.get("masks") or []
    if not rles:
        return np.zeros((0, h, w), dtype=bool)
    masks = np.stack([rle_decode(r) for r in rles], axis=0)
    if masks.shape[1:] != (h, w):
        raise GetokError(f"sample {sample.sample_id}: truth masks are {masks.shape[1:]}, the sample is {(h, w)}")
    return masks


def truth_union(sample: Sample, masks: np.ndarray | None = None) -> np.ndarray:
    """Union of the target masks, ``(H, W)`` bool."""
    m = truth_masks(sample) if masks is None else masks
    return m.any(axis=0) if len(m) else np.zeros(tuple(sample.size), dtype=bool)


def decode_answer(text: str, sample: Sample, codec: Codec, proposal: Sequence[Geometry] | None = None) -> tuple[str, DecodeResult]:
    """``(answer, result)``: the extracted answer and its decode (a refinement when ``proposal`` is given)."""
    try:
        answer = extract_answer(text)
    except DecodeError as exc:
        return "", DecodeResult([], exc)
    if proposal is not None:
        return answer, codec.try_decode_refinement(answer, proposal)
    return answer, codec.try_decode(answer, sample.size, sample.kind)


def instance_masks(decoder, geometries: Sequence[Geometry], size) -> np.ndarray:
    """Masks of the instances, ``(K, H, W)`` bool, from a decoder that already holds the image."""

    return decode_instances(decoder, geometries, size)


def _round(a, nd: int = 2) -> list:
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def geometry_json(geometries: Sequence[Geometry]) -> list[dict]:
    """What the reports draw of each instance: cells, offsets, deleted, points, box, polygons (JSON-safe)."""
    out = []
    for g in geometries:
        d: dict = {}
        if g.cells is not None:
            d["cells"] = np.asarray(g.cells).tolist()
            d["grid_n"] = int(g.grid_n)
            if g.offsets is not None:
                d["offsets"] = np.asarray(g.offsets).tolist()
                d["offset_step"] = float(g.offset_step)
            if g.deleted is not None:
                d["deleted"] = np.asarray(g.deleted).astype(bool).tolist()
        if g.points is not None and len(g.points):
            d["points"] = _round(g.points)
        if g.box is not None:
            d["box"] = _round(g.box)
        if g.polygons:
            d["polygons"] = [_round(p) for p in g.polygons]
        out.append(d)
    return out


def _one_box(geometries: Sequence[Geometry]):
    if len(geometries) == 1 and geometries[0].box is not None:
        return geometries[0].box
    return None


def score_answer(
    sample: Sample,
    text: str,
    *,
    codec: Codec,
    decoder,
    gt_masks: np.ndarray,
    proposal: Sequence[Geometry] | None = None,
    geometries: Sequence[Geometry] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    boundary: bool = True,
    valid_override: tuple[bool, str | None] | None = None,
    **extra,
) -> tuple[dict, list[Geometry], np.ndarray | None]:
    """Score one generated answer.

    Parameters
    ----------
    sample : Sample
    text : str
        The generated text (envelope optional).
    codec : Codec
        Decodes the answer.
    decoder : MaskDecoder
        Already holding the sample's image (``set_image``).
    gt_masks : (G, H, W) bool
        Target instance masks.
    proposal : sequence of Geometry, optional
        Decode ``text`` as a refinement of this proposal.
    geometries : sequence of Geometry, optional
        Score these instead of decoding ``text`` (self-correction: the accumulated state).
    count_tokens : callable, optional
        Tokens of the answer (default: Qwen-style count).
    boundary : bool
        Compute the boundary F-score.
    valid_override : (bool, str or None), optional
        Force validity and reason (self-correction's ``on_invalid="zero"``).
    **extra
        Added to the record.

    Returns
    -------
    (record, geometries, mask)
        The JSON-safe record, the decoded instances (``[]`` when invalid), the predicted union mask
        ``(H, W)`` (``None`` when invalid).
    """

    h, w = sample.size
    answer = extract_answer(text) if isinstance(text, str) else ""
    error = None
    if geometries is None:
        answer, res = decode_answer(text, sample, codec, proposal)
        geoms = list(res.geometries)
        error = res.error
    else:
        geoms = list(geometries)
    valid = error is None
    reason = None if valid else (error.reason or "invalid")
    pred = None
    if valid:
        try:
            masks = instance_masks(decoder, geoms, (h, w))
            pred = masks.any(axis=0) if len(masks) else np.zeros((h, w), dtype=bool)
        except GetokError as exc:
            valid, reason, pred = False, "mask_decoder", None
            extra.setdefault("decoder_error", str(exc)[:200])
    if valid_override is not None:
        valid, reason = valid_override[0], (None if valid_override[0] else (valid_override[1] or "invalid"))
        if not valid:
            pred = None
    gt = truth_union(sample, gt_masks)
    boxes = sample.truth.get("boxes") or []
    gt_box = boxes[0] if len(boxes) == 1 and len(gt_masks) == 1 else None
    counter = count_tokens or qwen_style_count
    n_tok = counter(answer) if isinstance(answer, str) and answer else 0
    pred_polys = gt_polys = None
    if valid and sample.kind == "mask" and geoms and all(g.polygons for g in geoms) and gt.any():
        pred_polys = [p for g in geoms for p in g.polygons]
        gt_polys = mask_to_polygons(gt, float(getattr(codec.config, "eps", 0.01)))[0]
    rec = sample_record(
        pred,
        gt,
        valid=valid,
        invalid_reason=reason,
        pred_none=(valid and answer.strip().lower() == NO_TARGET) if geometries is None else None,
        pred_box=_one_box(geoms) if valid else None,
        gt_box=gt_box,
        pred_polygons=pred_polys,
        gt_polygons=gt_polys,
        n_tokens=n_tok,
        n_objects=len(geoms) if valid else 0,
        boundary=boundary,
    )
    hit = None
    if valid and sample.kind in ("point", "polyline"):
        pts = [g.points for g in geoms if g.points is not None and len(g.points)]
        if pts:
            hit = float(points_in_mask(np.concatenate(pts), gt).mean())
        elif gt.any():
            hit = 0.0
    elif not valid and sample.kind in ("point", "polyline"):
        hit = 0.0
    rec["point_hit"] = hit
    rec["answer"] = answer
    rec["instances"] = geometry_json(geoms) if valid else []
    rec["pred_rle"] = rle_encode(pred) if pred is not None else None
    for k, v in list(rec.items()):
        if isinstance(v, float) and math.isnan(v):
            rec[k] = None
    rec.update(extra)
    return rec, (geoms if valid else []), pred


def describe_sample(sample: Sample) -> dict:
    """The identifying fields every record starts with."""
    return {
        "id": sample.sample_id,
        "image_id": sample.image_id,
        "image": sample.image,
        "task": sample.task,
        "kind": sample.kind,
        "codec": sample.codec,
        "target": extract_answer(sample.answer),
    }
