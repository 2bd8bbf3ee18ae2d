"""Evaluation: generation (:mod:`~getok.eval.generate`), the runner (:mod:`~getok.eval.runner`), multi-turn
self-correction (:mod:`~getok.eval.selfcorrect`), constrained decoding (:mod:`~getok.eval.constrained`),
metrics over per-sample records (:mod:`~getok.eval.metrics`, :mod:`~getok.eval.boundary`) and reports
(:mod:`~getok.eval.viz`, :mod:`~getok.eval.report`). torch loads only when a model is run.
"""

from .boundary import boundary_f_score, mask_boundary, vertex_chamfer
from .generate import generate_answers
from .metrics import (
    EMPTY_CONVENTIONS,
    batch_records,
    markdown_table,
    nt_confusion,
    sample_ious,
    sample_record,
    score_samples,
    summarize,
    summarize_groups,
)
from .runner import evaluate, evaluate_path

__all__ = [
    "evaluate",
    "evaluate_path",
    "generate_answers",
    "EMPTY_CONVENTIONS",
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
