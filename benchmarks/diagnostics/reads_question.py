"""Diagnostic: does a trained model read the question, or answer the same object whatever is asked?

A model that finds *an* object but ignores the sentence scores like the random-object baseline on text>mask,
and so does a model that reads the question but misreads it. The two differ on **pairs of questions about
the same image that name different objects**: a model that ignores the question gives both the same answer.
From an evaluation run's ``records.jsonl`` (turn 1) and its question set's ``samples.jsonl`` this reports, over
every such pair (A, B):

* ``same_answer``: the share of pairs answered with the identical token string (the reference: 0);
* ``follows``: the share of answers A that overlap A's object more than B's (IoU), ``swapped`` the reverse —
  a model that ignores the question follows and swaps about equally often, whatever its mIoU;
* per expression kind of A, and the same numbers for the reference answers and for an always-one-object
  answer (the largest object of the image) as anchors.

    python benchmarks/diagnostics/reads_question.py --records runs/demo/eval/sft \\
        --data runs/demo/data/eval-tasks [--out FILE.json]

It runs no model: seconds, on any finished ``getok eval`` / demo evaluation.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

TASK = "text>mask"


def _pairs(samples: list[dict]) -> list[tuple[dict, dict]]:
    by_image: dict[str, list[dict]] = {}
    for s in samples:
        if s["task"] == TASK and len(s["truth"]["object_ids"]) == 1:
            by_image.setdefault(s["image_id"], []).append(s)
    out = []
    for group in by_image.values():
        for a, b in itertools.permutations(group, 2):
            if a["truth"]["object_ids"] != b["truth"]["object_ids"]:
                out.append((a, b))
    return out


def analyse(records: dict[str, dict], samples: list[dict]) -> dict:
    """The pair statistics of one run's turn-1 answers (``records``: sample id → record)."""
    from getok.data_builders.expressions import expression_kind
    from getok.ops.masks import mask_iou, rle_decode

    masks: dict[str, np.ndarray] = {}

    def truth(s):
        if s["sample_id"] not in masks:
            masks[s["sample_id"]] = rle_decode(s["truth"]["masks"][0]).astype(bool)
        return masks[s["sample_id"]]

    pairs = [(a, b) for a, b in _pairs(samples) if a["sample_id"] in records and b["sample_id"] in records]
    if not pairs:
        raise SystemExit("no pair of text>mask questions about different objects of one image in these records")
    rows = []
    for a, b in pairs:
        ra, rb = records[a["sample_id"]], records[b["sample_id"]]
        ra, rb = (ra.get("turns") or [ra])[0], (rb.get("turns") or [rb])[0]
        pred = rle_decode(ra["pred_rle"]).astype(bool) if ra.get("pred_rle") else None
        ia = float(mask_iou(pred, truth(a))) if pred is not None else 0.0
        ib = float(mask_iou(pred, truth(b))) if pred is not None else 0.0
        rows.append({"kind": expression_kind(a["meta"]["expr"]), "same": ra.get("answer") == rb.get("answer"),
                     "follows": ia > ib, "swapped": ib > ia, "iou_own": ia, "iou_other": ib})  # fmt: skip

    def summary(rs):
        return {"pairs": len(rs), **{k: round(float(np.mean([r[k] for r in rs])), 4)
                                     for k in ("same", "follows", "swapped", "iou_own", "iou_other")}}  # fmt: skip

    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r)
    return {"all": summary(rows), "by_kind": {k: summary(v) for k, v in sorted(by_kind.items())}}


def read_records(path: Path) -> dict[str, dict]:
    from getok.eval.run_records import read_records as _read

    p = path / "records.jsonl" if path.is_dir() else path
    return {r["id"]: r for r in _read(p)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=Path, nargs="+", required=True, help="evaluation run dirs (or records.jsonl)")
    ap.add_argument("--data", type=Path, required=True, help="the question set they answered (samples.jsonl's dir)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    samples = [json.loads(x) for x in (args.data / "samples.jsonl").read_text().splitlines() if x.strip()]
    res = {"data": str(args.data), "runs": {}}
    for p in args.records:
        res["runs"][str(p)] = r = analyse(read_records(p), samples)
        a = r["all"]
        print(f"{p}: {a['pairs']} pairs, same answer {a['same']:.3f}, follows {a['follows']:.3f}, "
              f"swapped {a['swapped']:.3f}, IoU own {a['iou_own']:.3f} / other {a['iou_other']:.3f}")
        for k, v in r["by_kind"].items():
            print(f"    {k:12s} {v['pairs']:4d} pairs  same {v['same']:.3f}  follows {v['follows']:.3f}  "
                  f"swapped {v['swapped']:.3f}")
    if args.out:
        from getok.io import atomic_write_json

        atomic_write_json(args.out, res)  # makes the parent directory
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
