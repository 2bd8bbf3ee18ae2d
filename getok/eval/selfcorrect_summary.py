"""Self-correction results: per-turn deltas, per-point counters, the run's summary and its markdown
(:mod:`getok.eval.selfcorrect` runs the protocol; its module docstring defines every counter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import sample_ious, summarize
from .stats import CHANGE_TOL

__all__ = ["POINT_KEYS", "turn_deltas", "summarize_selfcorrect", "selfcorrect_markdown", "sum_points"]

#: Per-point counters of one refinement turn.
POINT_KEYS = (
    "points",
    "into",
    "out_of",
    "moved_inside",
    "moved_outside",
    "kept_inside",
    "kept_outside",
    "valid_delete",
    "invalid_delete",
    "revive_ignored",
)


# ------------------------------------------------------------------------------------------------ summaries
def turn_deltas(prev: Sequence[dict], cur: Sequence[dict], empty: str = "lisa", tol: float = CHANGE_TOL) -> dict:
    """How many samples improved / got worse / stayed between two turns (IoU under ``empty``).

    Samples the convention does not score (``nan``) are left out.
    """
    a = sample_ious(list(prev), empty)
    b = sample_ious(list(cur), empty)
    ok = ~np.isnan(a) & ~np.isnan(b)
    d = b[ok] - a[ok]
    return {
        "improved": int(np.count_nonzero(d > tol)),
        "worse": int(np.count_nonzero(d < -tol)),
        "same": int(np.count_nonzero(np.abs(d) <= tol)),
        "mean_delta": float(d.mean()) if d.size else None,
    }


def sum_points(rows: Sequence[dict]) -> dict:
    tot = dict.fromkeys(POINT_KEYS, 0)
    score = 0.0
    for p in rows:
        for k in POINT_KEYS:
            tot[k] += int(p.get(k, 0))
        score += float(p.get("point_score_sum", 0.0))
    tot["point_score"] = score / tot["points"] if tot["points"] else None
    return tot


_TURN_KEYS = ("n", "gIoU", "cIoU", "Acc@0.5", "Pr@0.5", "invalid_rate", "tokens_per_sample")


def summarize_selfcorrect(records: Sequence[dict], empty: str = "lisa") -> dict:
    """Per-turn metrics of self-correction records (those with ``turns``), and the oracle baseline.

    Returns
    -------
    dict
        ``turns``: ``{t: {n, gIoU, cIoU, Acc@0.5, Pr@0.5, invalid_rate, refine_invalid,
        refine_invalid_rate, improved, worse, same, mean_delta, points}}`` (turn 1 is the no-refinement
        baseline; it has no deltas / points); ``oracle``: the same for the oracle turns 2..K (deltas vs
        the oracle's previous turn, turn 1 for turn 2); ``n_no_proposal``; ``empty``, ``empty_rule``.
    """
    recs = [r for r in records if r.get("turns")]
    out: dict = {"n": len(recs), "turns": {}, "oracle": {}, "empty": empty}
    if not recs:
        return out
    k = min(len(r["turns"]) for r in recs)
    per_turn = [[r["turns"][t] for r in recs] for t in range(k)]
    for t in range(k):
        s = summarize(per_turn[t], empty=empty)
        row = {key: s.get(key) for key in _TURN_KEYS}
        out["empty_rule"] = s["empty_rule"]
        if t > 0:
            asked = [x for x in per_turn[t] if x.get("skipped") is None]
            bad = sum(1 for x in asked if x.get("refine_valid") is False)
            row["refine_invalid"] = bad
            row["refine_invalid_rate"] = bad / len(asked) if asked else None
            row.update(turn_deltas(per_turn[t - 1], per_turn[t], empty))
            row["points"] = sum_points([p for r in recs for p in r["points"] if p["turn"] == t + 1])
        out["turns"][t + 1] = row
    oracle = [r for r in recs if r.get("oracle")]
    if oracle:
        # every self-correction sample, so the rows compare with the model's: without a proposal the oracle
        # has nothing to refine and the sample keeps its turn-1 record
        prev = [r["turns"][0] for r in recs]
        for t in range(min(len(r["oracle"]) for r in oracle)):
            cur = [r["oracle"][t] if r.get("oracle") else r["turns"][0] for r in recs]
            s = summarize(cur, empty=empty)
            row = {key: s.get(key) for key in _TURN_KEYS}
            row.update(turn_deltas(prev, cur, empty))
            row["points"] = sum_points([p for r in oracle for p in r["oracle_points"] if p["turn"] == t + 2])
            out["oracle"][t + 2] = row
            prev = cur
        out["n_oracle"] = len(oracle)
    out["n_no_proposal"] = sum(1 for r in recs if len(r["turns"]) > 1 and r["turns"][1].get("skipped") == "no_proposal")
    return out


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def selfcorrect_markdown(sc: dict) -> str:
    """Markdown tables of :func:`summarize_selfcorrect`: per turn (model and oracle) and per point."""
    if not sc.get("turns"):
        return ""
    lines = [
        "| run | n | mIoU (%) | cIoU (%) | Acc@0.5 (%) | improved | worse | same | refine invalid (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name, r):
        lines.append(
            f"| {name} | {r.get('n')} | {_pct(r.get('gIoU'))} | {_pct(r.get('cIoU'))} | {_pct(r.get('Acc@0.5'))} | "
            f"{r.get('improved', '–')} | {r.get('worse', '–')} | {r.get('same', '–')} | {_pct(r.get('refine_invalid_rate'))} |"
        )

    for t, r in sc["turns"].items():
        row("turn 1 (no refinement)" if int(t) == 1 else f"turn {t}", r)
    for t, r in sc.get("oracle", {}).items():
        row(f"oracle turn {t}", r)
    lines += ["", "| turn | points | into | out of | moved inside | moved outside | kept inside | kept outside | "
              "valid delete | invalid delete | revive ignored | point score |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def prow(name, p):
        lines.append(
            f"| {name} | " + " | ".join(str(p[k]) for k in POINT_KEYS) + " | "
            + ("–" if p.get("point_score") is None else f"{p['point_score']:+.3f}") + " |"
        )

    for t, r in sc["turns"].items():
        if "points" in r:
            prow(f"turn {t}", r["points"])
    for t, r in sc.get("oracle", {}).items():
        prow(f"oracle turn {t}", r["points"])
    lines += ["", f"Empty targets: {sc.get('empty_rule', '')}",
              "Improved / worse / same: per-sample IoU vs the previous turn (oracle: vs its previous turn). "
              "Points: counted against the matched target instance, over points alive before the turn."]  # fmt: skip
    return "\n".join(lines)
