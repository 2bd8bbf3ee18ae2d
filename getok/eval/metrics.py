"""Segmentation and grounding metrics: per-sample records, then one vectorised summary.

Pure numpy; the mask and box maths are :mod:`getok.ops.masks` / :mod:`getok.ops.boxes`. Masks are ``(H, W)`` (or batches ``(N, H, W)``) bool, boxes XYXY pixels.

Flow: one :func:`sample_record` per evaluated sample (a JSON-safe dict: intersection, union, areas,
validity, box IoU, boundary F, Chamfer, token counts), written as JSONL by the evaluation runner;
:func:`summarize` turns a list of records into a dict of metrics, :func:`markdown_table` into a table.

Empty targets (no-target samples, gRES) — ``empty=`` selects the convention and the summary states it:

``"lisa"`` (LISA's ``validate``: ``acc_iou[union == 0] += 1``)
    Every sample is scored by its masks. An empty prediction on an empty target has IoU 1, a
    non-empty one IoU 0. gIoU = mean IoU over all samples; cIoU = sum I / sum U over all samples (a
    false mask on a no-target sample adds its area to U); Pr@t over all samples.

``"rela"`` (ReLA / gRefCOCO, ``gres_model/evaluation/refer_evaluation.py``)
    Each sample also has a *no-target prediction* flag (``pred_none``; for a VLM: the answer is
    ``none`` or decodes to an empty mask). No-target samples: IoU 1 when the model says no target
    (TP; adds nothing to cIoU), else IoU 0 with its mask area added to U (FN). Target samples whose
    prediction says no target (FP) get I = 0. gIoU = mean over **all** samples, cIoU = sum I / sum U over
    all samples, **Pr@t over target samples only**. With ``pred_none`` equal to "mask empty" (the
    default) gIoU / cIoU coincide with ``"lisa"``; Pr@t differs (denominator).

``"exclude"``
    No-target samples are scored only by N-acc / T-acc and left out of gIoU, cIoU, Pr@t and Acc@t.

N-acc / T-acc (gRES, as in the gRefCOCO paper; positives = "no target"): TP = no-target sample with a
valid no-target prediction, FN = other no-target samples, TN = target sample with a valid non-empty
prediction, FP = other target samples (a no-target claim **or an invalid output**);
N-acc = TP / (TP + FN), T-acc = TN / (TN + FP). (ReLA's released code divides by ``TP + FN + 1`` and
writes ``TP`` for T-acc's numerator; we follow the paper's definition.) ``nan`` when undefined.

Invalid outputs (answers that did not parse) are never raised: their prediction is empty, they score
IoU 0 on every sample (also on no-target ones: an unparseable answer is not a correct "none"), miss
Acc@t, and are counted in ``invalid_rate`` with their reasons.

REC Acc@t: box IoU >= t, boxes from the answers' boxes or from the masks by min / max
(:func:`getok.ops.boxes.masks_to_boxes`). Target samples only, plus no-target samples under ``"lisa"`` (a hit when the
prediction is empty). Pr@t: IoU >= t (ReLA's ``>=``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, GeometryError
from ..ops.boxes import box_iou_pairs, masks_to_boxes
from ..ops.masks import as_mask, as_masks, mask_counts
from .boundary import DAVIS_TOL, boundary_f_score, vertex_chamfer

__all__ = [
    "EMPTY_CONVENTIONS",
    "nt_confusion",
    "score_samples",
    "sample_record",
    "batch_records",
    "sample_ious",
    "summarize",
    "summarize_groups",
    "markdown_table",
]

#: The empty-target conventions and the one-line statement each summary carries.
EMPTY_CONVENTIONS: dict[str, str] = {
    "lisa": "LISA: empty prediction on empty target = IoU 1; all samples in gIoU, cIoU, Pr@t and Acc@t",
    "rela": (
        "ReLA/gRefCOCO: no-target samples IoU 1 if predicted no-target else 0 (FN adds its area to cIoU's U); "
        "no-target claims on target samples get I = 0; gIoU/cIoU over all samples, Pr@t and Acc@t over target samples"
    ),
    "exclude": "no-target samples scored only by N-acc/T-acc; gIoU, cIoU, Pr@t and Acc@t over target samples",
}

PR_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
ACC_THRESHOLDS = (0.5, 0.8)


# ---------------------------------------------------------------------------------------- scoring
def _check_convention(empty: str) -> None:
    if empty not in EMPTY_CONVENTIONS:
        raise ConfigError(f"empty must be one of {sorted(EMPTY_CONVENTIONS)}, got {empty!r}")


def nt_confusion(pred_nt, gt_nt, valid=None) -> dict[str, int]:
    """gRES no-target confusion counts (positives = "no target"): ``TP, FN, FP, TN``.

    ``pred_nt`` must already be ``False`` for invalid outputs; an invalid output on a target sample
    counts as FP (see the module docstring).

    >>> nt_confusion([True, False, True, False], [True, True, False, False])
    {'TP': 1, 'FN': 1, 'FP': 1, 'TN': 1}
    """
    p = np.asarray(pred_nt, dtype=bool)
    g = np.asarray(gt_nt, dtype=bool)
    v = np.ones_like(p) if valid is None else np.asarray(valid, dtype=bool)
    tp = int(np.count_nonzero(g & p & v))
    fn = int(np.count_nonzero(g)) - tp
    tn = int(np.count_nonzero(~g & ~p & v))
    fp = int(np.count_nonzero(~g)) - tn
    return {"TP": tp, "FN": fn, "FP": fp, "TN": tn}


def score_samples(inter, union, pred_area, gt_area, *, valid=None, pred_none=None, empty: str = "lisa"):
    """Per-sample I, U, IoU and whether the sample is scored, under an empty-target convention.

    Parameters
    ----------
    inter, union, pred_area, gt_area : (N,) int
        Pixel counts of the predicted and ground-truth masks.
    valid : (N,) bool, optional
        False for outputs that did not parse (default: all valid).
    pred_none : (N,) bool, optional
        The prediction says "no target" (default: ``pred_area == 0``). Ignored for invalid outputs.
    empty : {"lisa", "rela", "exclude"}

    Returns
    -------
    dict with ``I, U`` (N,) float, ``iou`` (N,) float, ``scored`` (N,) bool (counts in gIoU / cIoU),
    ``pr_scored`` (N,) bool (counts in Pr@t / Acc@t), ``pred_nt``, ``gt_nt`` (N,) bool.

    Examples
    --------
    Empty target and empty prediction, then a false mask of 4 pixels on an empty target:

    >>> s = score_samples([0, 0], [0, 4], [0, 4], [0, 0], empty="lisa")
    >>> s["iou"].tolist(), s["U"].tolist()
    ([1.0, 0.0], [0.0, 4.0])
    >>> score_samples([0, 0], [0, 4], [0, 4], [0, 0], empty="exclude")["scored"].tolist()
    [False, False]
    """
    _check_convention(empty)
    inter = np.asarray(inter, dtype=np.float64).reshape(-1)
    union = np.asarray(union, dtype=np.float64).reshape(-1)
    pred_area = np.asarray(pred_area, dtype=np.float64).reshape(-1)
    gt_area = np.asarray(gt_area, dtype=np.float64).reshape(-1)
    n = len(inter)
    if not (len(union) == len(pred_area) == len(gt_area) == n):
        raise GeometryError("inter, union, pred_area and gt_area must have the same length")
    v = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).reshape(-1)
    pn = (pred_area == 0) if pred_none is None else np.asarray(pred_none, dtype=bool).reshape(-1)
    pred_nt = pn & v
    gt_nt = gt_area == 0
    if empty == "lisa":
        i = np.where(v, inter, 0.0)
        u = union
        iou = np.where(u > 0, i / np.where(u > 0, u, 1.0), np.where(v, 1.0, 0.0))
        scored = np.ones(n, dtype=bool)
        pr_scored = scored
    else:
        i = np.where(gt_nt | pred_nt | ~v, 0.0, inter)
        u = np.where(gt_nt & pred_nt, 0.0, union)
        iou = np.where(gt_nt, pred_nt.astype(np.float64), i / np.where(u > 0, u, 1.0))
        scored = np.ones(n, dtype=bool) if empty == "rela" else ~gt_nt
        pr_scored = ~gt_nt
    return {"I": i, "U": u, "iou": iou, "scored": scored, "pr_scored": pr_scored, "pred_nt": pred_nt, "gt_nt": gt_nt}


# ---------------------------------------------------------------------------------------- records
def _num(x):
    """JSON-safe scalar: python int / float, ``None`` for nan / None."""
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    f = float(x)
    return None if math.isnan(f) else f


def sample_record(
    pred_mask,
    gt_mask,
    *,
    valid: bool = True,
    invalid_reason: str | None = None,
    pred_none: bool | None = None,
    pred_box=None,
    gt_box=None,
    pred_polygons=None,
    gt_polygons=None,
    n_tokens: int | None = None,
    n_objects: int | None = None,
    boundary: bool = True,
    boundary_tol: float = DAVIS_TOL,
    **extra,
) -> dict:
    """Everything the summary needs about one sample, as a JSON-safe dict.

    Parameters
    ----------
    pred_mask : (H, W) bool or None
        The decoded prediction (union of the answer's instances); ``None`` for an invalid output.
    gt_mask : (H, W) bool
        The ground truth (union of the target instances; empty for a no-target sample).
    valid : bool
        False when the answer did not parse; its prediction is taken as empty.
    invalid_reason : str, optional
        The :class:`~getok.errors.DecodeError` reason, counted in the summary.
    pred_none : bool, optional
        The answer says "no target" (``none``); default: the predicted mask is empty.
    pred_box, gt_box : (4,) XYXY, optional
        Boxes for REC Acc@t; default: boxes of the masks (min / max).
    pred_polygons, gt_polygons : sequence of (V, 2), optional
        For the vertex Chamfer distance (pixels; ``chamfer_norm`` divides by the image diagonal).
    n_tokens : int, optional
        Tokens in the answer; ``n_objects``: instances in the answer (tokens per object).
    boundary : bool
        Compute the boundary F-score (target samples only; ~1 ms on 640 x 480).
    boundary_tol : float
        Boundary tolerance, pixels when >= 1, else a fraction of the diagonal (DAVIS 0.008).
    **extra
        Carried through unchanged (``id``, ``turn``, ...).

    Returns
    -------
    dict
        ``inter``, ``union``, ``pred_area``, ``gt_area`` (pixels); ``iou`` (LISA convention, for reading;
        :func:`summarize` rescores under the convention asked for); ``valid``, ``invalid_reason``,
        ``pred_none``, ``gt_none``; ``box_iou`` (``None`` when either box is missing); ``boundary_f``
        (``None`` on no-target samples); ``chamfer`` (pixels), ``chamfer_norm`` (by the image diagonal);
        ``n_tokens``, ``n_objects``; then ``extra``.

    Examples
    --------
    >>> gt = np.zeros((4, 4), bool); gt[:2, :2] = True
    >>> r = sample_record(gt, gt, id=7)
    >>> r["iou"], r["box_iou"], r["boundary_f"], r["id"]
    (1.0, 1.0, 1.0, 7)
    """
    g = as_mask(gt_mask, name="gt_mask")
    if pred_mask is None or not valid:
        p = np.zeros_like(g)
    else:
        p = as_mask(pred_mask, g.shape, name="pred_mask")
    inter = int(np.count_nonzero(p & g))
    union = int(np.count_nonzero(p | g))
    pred_area = int(np.count_nonzero(p))
    gt_area = int(np.count_nonzero(g))
    pn = bool(valid) and (pred_area == 0 if pred_none is None else bool(pred_none))
    pb = np.asarray(pred_box, dtype=np.float64) if pred_box is not None and valid else masks_to_boxes(p)[0]
    gb = np.asarray(gt_box, dtype=np.float64) if gt_box is not None else masks_to_boxes(g)[0]
    biou = box_iou_pairs(pb, gb)[0]
    rec = {
        "inter": inter,
        "union": union,
        "pred_area": pred_area,
        "gt_area": gt_area,
        "iou": (inter / union) if union else (1.0 if valid else 0.0),
        "valid": bool(valid),
        "invalid_reason": None if valid else (invalid_reason or "invalid"),
        "pred_none": pn,
        "gt_none": gt_area == 0,
        "box_iou": _num(biou),
        "boundary_f": _num(boundary_f_score(p, g, boundary_tol)) if boundary and gt_area else None,
        "chamfer": None,
        "chamfer_norm": None,
        "n_tokens": None if n_tokens is None else int(n_tokens),
        "n_objects": None if n_objects is None else int(n_objects),
    }
    if pred_polygons is not None and gt_polygons is not None and valid:
        c = vertex_chamfer(pred_polygons, gt_polygons)
        rec["chamfer"] = _num(c)
        rec["chamfer_norm"] = _num(c / math.hypot(*g.shape))
    rec.update(extra)
    return rec


def batch_records(pred, gt, *, valid=None, boundary: bool = False, boundary_tol: float = DAVIS_TOL) -> list[dict]:
    """:func:`sample_record` for a batch ``(N, H, W)`` at once (vectorised counts and boxes)."""
    p, g = as_masks(pred, "pred"), as_masks(gt, "gt")
    if p.shape != g.shape:
        raise GeometryError(f"pred and gt differ in shape: {p.shape} vs {g.shape}")
    n = len(p)
    v = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).reshape(-1)
    if len(v) != n:
        raise GeometryError(f"valid has {len(v)} entries for {n} samples")
    inter, pa, ga = mask_counts(p, g)
    inter[~v] = 0  # an invalid output's prediction is empty
    pa[~v] = 0
    union = pa + ga - inter
    pboxes = masks_to_boxes(p)
    pboxes[~v] = np.nan
    bi = box_iou_pairs(pboxes, masks_to_boxes(g))
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.where(v, 1.0, 0.0))
    bf = [None] * n
    if boundary:
        for k in np.flatnonzero(ga > 0):
            bf[k] = _num(boundary_f_score(p[k] & v[k], g[k], boundary_tol))
    cols = zip(inter.tolist(), union.tolist(), pa.tolist(), ga.tolist(), iou.tolist(), v.tolist(),
               [None if np.isnan(x) else x for x in bi.tolist()], bf)
    return [
        {
            "inter": i, "union": u, "pred_area": a, "gt_area": b, "iou": x, "valid": ok,
            "invalid_reason": None if ok else "invalid", "pred_none": ok and a == 0, "gt_none": b == 0,
            "box_iou": bx, "boundary_f": f, "chamfer": None, "chamfer_norm": None,
            "n_tokens": None, "n_objects": None,
        }
        for i, u, a, b, x, ok, bx, f in cols
    ]


def _column(records: Sequence[Mapping], key: str, dtype, default) -> np.ndarray:
    return np.fromiter(
        ((default if (x := r.get(key)) is None else x) for r in records), dtype=dtype, count=len(records)
    )


def sample_ious(records: Sequence[Mapping], empty: str = "lisa") -> np.ndarray:
    """Per-sample IoU ``(N,)`` under a convention (``nan`` where the convention does not score a sample)."""
    s = _score_records(records, empty)
    return np.where(s["scored"], s["iou"], np.nan)


def _score_records(records: Sequence[Mapping], empty: str) -> dict:
    _check_convention(empty)
    for k in ("inter", "union", "pred_area", "gt_area"):
        if records and k not in records[0]:
            raise ConfigError(f"records need {k!r} (make them with sample_record)")
    pn = [r.get("pred_none") for r in records]
    return score_samples(
        _column(records, "inter", np.int64, 0),
        _column(records, "union", np.int64, 0),
        _column(records, "pred_area", np.int64, 0),
        _column(records, "gt_area", np.int64, 0),
        valid=_column(records, "valid", bool, True),
        pred_none=None if any(x is None for x in pn) else np.asarray(pn, dtype=bool),
        empty=empty,
    )


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


# ---------------------------------------------------------------------------------------- summary
def summarize(
    records: Sequence[Mapping],
    *,
    empty: str = "lisa",
    pr_thresholds: Iterable[float] = PR_THRESHOLDS,
    acc_thresholds: Iterable[float] = ACC_THRESHOLDS,
) -> dict:
    """Aggregate per-sample records into metrics (fractions in [0, 1]; ``None`` where undefined).

    Keys: ``n``, ``n_target``, ``n_no_target``, ``empty`` (the convention) and ``empty_rule`` (its
    statement), ``gIoU``, ``cIoU``, ``Pr@t``, ``Acc@t``, ``N-acc``, ``T-acc``, ``nt`` (TP / FN / FP / TN),
    ``invalid_rate``, ``invalid_reasons``, ``tokens_per_object``, ``tokens_per_sample``,
    ``boundary_F`` (mean over target samples that have one), ``chamfer_px``, ``chamfer_norm``.

    Examples
    --------
    >>> gt = np.zeros((4, 4), bool); gt[:2] = True
    >>> recs = [sample_record(gt, gt), sample_record(None, np.zeros((4, 4), bool), valid=False)]
    >>> s = summarize(recs)
    >>> s["gIoU"], s["cIoU"], s["invalid_rate"], s["N-acc"], s["T-acc"]
    (0.5, 1.0, 0.5, 0.0, 1.0)
    """
    records = list(records)
    pr_thresholds = tuple(float(t) for t in pr_thresholds)
    acc_thresholds = tuple(float(t) for t in acc_thresholds)
    n = len(records)
    s = _score_records(records, empty)
    scored, pr_scored = s["scored"], s["pr_scored"]
    gt_nt, pred_nt = s["gt_nt"], s["pred_nt"]
    valid = _column(records, "valid", bool, True)
    out: dict = {
        "n": n,
        "n_target": int(np.count_nonzero(~gt_nt)),
        "n_no_target": int(np.count_nonzero(gt_nt)),
        "empty": empty,
        "empty_rule": EMPTY_CONVENTIONS[empty],
        "gIoU": _mean(s["iou"][scored]),
        "cIoU": _ratio(s["I"][scored].sum(), s["U"][scored].sum()),
    }
    iou_pr = s["iou"][pr_scored]
    for t in pr_thresholds:
        out[f"Pr@{t:g}"] = _mean(iou_pr >= t)
    # REC accuracy on boxes
    biou = _column(records, "box_iou", np.float64, np.nan)
    hit_box = np.where(np.isnan(biou), 0.0, biou)
    hit_box[~valid] = 0.0
    acc_rows = ~gt_nt if empty != "lisa" else np.ones(n, dtype=bool)
    for t in acc_thresholds:
        hits = np.where(gt_nt, pred_nt, hit_box >= t)
        out[f"Acc@{t:g}"] = _mean(hits[acc_rows])
    conf = nt_confusion(pred_nt, gt_nt, valid)
    out["N-acc"] = _ratio(conf["TP"], conf["TP"] + conf["FN"])
    out["T-acc"] = _ratio(conf["TN"], conf["TN"] + conf["FP"])
    out["nt"] = conf
    out["invalid_rate"] = _ratio(int(np.count_nonzero(~valid)), n)
    out["invalid_reasons"] = dict(Counter(str(r.get("invalid_reason") or "invalid") for r in records if not r.get("valid", True)))
    ntok = _column(records, "n_tokens", np.float64, np.nan)
    nobj = _column(records, "n_objects", np.float64, np.nan)
    both = ~np.isnan(ntok) & ~np.isnan(nobj)
    out["tokens_per_object"] = _ratio(ntok[both].sum(), nobj[both].sum())
    out["tokens_per_sample"] = _mean(ntok[~np.isnan(ntok)])
    bf = _column(records, "boundary_f", np.float64, np.nan)
    bf_rows = ~gt_nt & ~np.isnan(bf)
    out["boundary_F"] = _mean(bf[bf_rows])
    ch = _column(records, "chamfer", np.float64, np.nan)
    chn = _column(records, "chamfer_norm", np.float64, np.nan)
    out["chamfer_px"] = _mean(ch[~np.isnan(ch)])
    out["chamfer_norm"] = _mean(chn[~np.isnan(chn)])
    out["chamfer_n"] = int(np.count_nonzero(~np.isnan(ch)))
    return out


def summarize_groups(records: Sequence[Mapping], key: str, **kwargs) -> dict:
    """:func:`summarize` per value of ``record[key]`` (e.g. ``"turn"``, ``"codec"``), in sorted order."""
    groups: dict = {}
    for r in records:
        groups.setdefault(r.get(key), []).append(r)
    return {k: summarize(v, **kwargs) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


_PERCENT = ("gIoU", "cIoU", "N-acc", "T-acc", "invalid_rate", "boundary_F")
DEFAULT_COLUMNS = (
    "n", "gIoU", "cIoU", "Pr@0.5", "Pr@0.7", "Pr@0.9", "Acc@0.5", "Acc@0.8", "N-acc", "T-acc",
    "invalid_rate", "tokens_per_object", "boundary_F", "chamfer_px",
)


def _fmt(key: str, v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    if key in _PERCENT or key.startswith(("Pr@", "Acc@")):
        return f"{100.0 * float(v):.2f}"
    return f"{float(v):.2f}"


def markdown_table(summaries: Mapping | Mapping[str, Mapping], columns: Sequence[str] = DEFAULT_COLUMNS) -> str:
    """A markdown table of one summary or of ``{name: summary}`` (one row each).

    Ratios are shown in percent; a last line states the empty-target convention(s).

    >>> gt = np.ones((2, 2), bool)
    >>> print(markdown_table(summarize([sample_record(gt, gt)]), columns=("n", "gIoU")))
    | run | n | gIoU (%) |
    |---|---|---|
    | all | 1 | 100.00 |
    <BLANKLINE>
    Empty targets: LISA: empty prediction on empty target = IoU 1; all samples in gIoU, cIoU, Pr@t and Acc@t
    """
    rows = {"all": summaries} if "gIoU" in summaries else dict(summaries)
    head = [c + (" (%)" if (c in _PERCENT or c.startswith(("Pr@", "Acc@"))) else "") for c in columns]
    lines = ["| run | " + " | ".join(head) + " |", "|" + "---|" * (len(columns) + 1)]
    for name, s in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(c, s.get(c)) for c in columns) + " |")
    rules = sorted({s.get("empty_rule", "") for s in rows.values()} - {""})
    lines.append("")
    lines.extend(f"Empty targets: {r}" for r in rules)
    return "\n".join(lines)
