"""An evaluation run's records and summary: reading ``records.jsonl`` (:func:`read_records`), per-question
IoUs by sample id (:func:`question_ious`), the run's summary per task (:func:`summarize_run`) and its markdown
(:func:`summary_markdown`). :mod:`getok.eval.runner` writes them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .metrics import EMPTY_CONVENTIONS, markdown_table, summarize
from .selfcorrect_summary import POINT_KEYS, selfcorrect_markdown, sum_points, summarize_selfcorrect

__all__ = ["RECORDS_FILE", "read_records", "question_ious", "summarize_run", "summary_markdown"]

log = logging.getLogger("getok.eval.runner")

RECORDS_FILE = "records.jsonl"


def read_records(path: str | Path) -> list[dict]:
    """Records of a ``records.jsonl`` (a torn last line is dropped with a warning; a bad line elsewhere raises)."""
    p = Path(path)
    if not p.is_file():
        return []
    lines = p.read_text().splitlines()
    out = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if k == len(lines) - 1:
                log.warning("%s: dropping a torn last line (an interrupted run)", p)
                continue
            raise DataError(f"{p}:{k + 1}: not JSON: {exc}") from exc
    return out




def question_ious(path: str | Path) -> dict[str, dict]:
    """Per-question IoUs of a run's ``records.jsonl`` (or its directory), for paired comparisons:
    ``{sample id: {"task", "t1", "t2", "oracle"}}``. An invalid answer scores 0; ``t2`` / ``oracle`` are the
    turn-2 and oracle turn-2 IoUs of a self-correction run, else None."""
    p = Path(path)
    if p.is_dir():
        p = p / RECORDS_FILE

    def iou(r):
        return float(r.get("iou") or 0.0) if r else 0.0

    out = {}
    for r in read_records(p):
        turns = r.get("turns") or [r]
        orc = r.get("oracle") or []
        out[r["id"]] = {"task": r["task"], "t1": iou(turns[0]), "t2": iou(turns[1]) if len(turns) > 1 else None,
                        "oracle": iou(orc[0]) if orc else None}  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------ summary
def _point_acc(records) -> float | None:
    hits = [r["point_hit"] for r in records if r.get("point_hit") is not None]
    return float(np.mean(hits)) if hits else None


def summarize_run(records: Sequence[dict], empty: str = "lisa") -> dict:
    """Overall and per-task summaries (+ ``Acc@point``), self-correction tables and refinement points."""

    records = list(records)
    out: dict = {"empty": empty, "empty_rule": EMPTY_CONVENTIONS[empty]}
    overall = summarize(records, empty=empty)
    overall["Acc@point"] = _point_acc(records)
    out["overall"] = overall
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(str(r.get("task")), []).append(r)
    out["per_task"] = {}
    for task, recs in sorted(groups.items()):
        s = summarize(recs, empty=empty)
        s["Acc@point"] = _point_acc(recs)
        out["per_task"][task] = s
    if any(r.get("turns") for r in records):
        out["selfcorrect"] = summarize_selfcorrect(records, empty)
    refine = [p for r in records if not r.get("turns") for p in (r.get("points") or [])]
    if refine:
        out["refine_points"] = sum_points(refine)
    return out


_TABLE_COLUMNS = (
    "n", "gIoU", "cIoU", "Pr@0.5", "Pr@0.9", "Acc@0.5", "Acc@0.8", "Acc@point", "N-acc", "T-acc", "invalid_rate",
    "tokens_per_object", "boundary_F",
)


def summary_markdown(summary: dict) -> str:
    """The run's summary as markdown: settings, per-task table, self-correction tables, conventions."""

    run = summary.get("run", {})
    lines = ["# getok eval", ""]
    for k in ("model", "data", "codec", "decoder", "turns", "constrained", "n_samples", "elapsed_s"):
        if k in run:
            lines.append(f"- {k}: {run[k]}")
    lines += ["", "## Metrics", ""]
    rows = dict(summary.get("per_task", {}))
    rows["all"] = summary["overall"]
    lines.append(markdown_table(rows, columns=_TABLE_COLUMNS))
    reasons = summary["overall"].get("invalid_reasons") or {}
    if reasons:
        lines += ["", "Invalid outputs by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))]
    lines.append("Acc@point: predicted points on the target mask (point / polyline answers).")
    sc = summary.get("selfcorrect")
    if sc and sc.get("turns"):
        lines += ["", "## Self-correction", "", selfcorrect_markdown(sc)]
    rp = summary.get("refine_points")
    if rp:
        lines += [
            "", "## Refinement samples (one turn, the dataset's proposal): points", "",
            "| " + " | ".join(POINT_KEYS) + " | point score |", "|" + "---|" * (len(POINT_KEYS) + 1),
            "| " + " | ".join(str(rp[k]) for k in POINT_KEYS) + " | "
            + ("–" if rp.get("point_score") is None else f"{rp['point_score']:+.3f}") + " |",
        ]  # fmt: skip
    return "\n".join(lines) + "\n"
