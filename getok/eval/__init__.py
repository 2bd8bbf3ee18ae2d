"""Evaluation: metrics over per-sample records (:mod:`getok.eval.metrics`, :mod:`getok.eval.boundary`)."""

from .boundary import boundary_f_score, mask_boundary, vertex_chamfer
from .metrics import (
    EMPTY_CONVENTIONS,
    batch_records,
    box_ious,
    boxes_from_masks,
    intersection_union,
    markdown_table,
    mask_iou,
    nt_confusion,
    sample_ious,
    sample_record,
    score_samples,
    summarize,
    summarize_groups,
)

__all__ = [
    "EMPTY_CONVENTIONS",
    "intersection_union",
    "mask_iou",
    "boxes_from_masks",
    "box_ious",
    "nt_confusion",
    "score_samples",
    "sample_record",
    "batch_records",
    "sample_ious",
    "summarize",
    "summarize_groups",
    "markdown_table",
    "boundary_f_score",
    "mask_boundary",
    "vertex_chamfer",
]
