"""``summary.md``: :func:`report_context` reads the numbers off the collected results (no prose), and
``templates/summary.md.j2`` (Jinja2) says what they mean. Edit the wording in the template; add a number
in :func:`report_context`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from getok.errors import require
from getok.eval.stats import format_diff, format_p

from .config import BASELINES, EVAL_SERIES, GRID_CODEC, MODELS, POLYGON_DECODER, STAGES, TASK_DECODER

__all__ = ["summary_markdown", "report_context", "task_columns", "metric"]

TEMPLATES = Path(__file__).with_name("templates")
TASK_ORDER = ("text>mask", "point>mask", "box>mask", "box>polygon")


# ---- reading the results
def task_columns(results: dict) -> list[str]:
    """Every task of any model or baseline, in :data:`TASK_ORDER` then alphabetically."""
    seen: list[str] = []
    for group in (results["models"], results["baselines"]):
        for r in group.values():
            for set_key in ("tasks", "polygons"):
                for t in (r.get(set_key) or {}).get("tables", {}):
                    if t != "all" and t not in seen:
                        seen.append(t)
    return sorted(seen, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))


def metric(res: dict | None, task: str, key: str):
    """``key`` of ``task``'s table in a model's or baseline's result (tasks or polygons set), or None."""
    for set_key in ("tasks", "polygons"):
        tab = ((res or {}).get(set_key) or {}).get("tables", {})
        if task in tab:
            return tab[task].get(key)
    return None


def _n_of(results: dict, task: str) -> int | None:
    for group in (results["models"], results["baselines"]):
        for r in group.values():
            for set_key in ("tasks", "polygons"):
                tab = (r.get(set_key) or {}).get("tables", {})
                if task in tab:
                    return tab[task].get("n")
    return None


def _invalid_rate(res: dict):
    vals = [(r.get("tables", {}).get("all") or {}) for r in (res.get("tasks"), res.get("polygons")) if r]
    n = sum(v.get("n") or 0 for v in vals)
    bad = sum((v.get("invalid_rate") or 0) * (v.get("n") or 0) for v in vals)
    return bad / n if n else None


def _turn2(sc: dict) -> dict:
    """Turn 1, turn 2 and the oracle's turn 2 of a self-correction summary, with the gains (None where a
    gIoU is missing)."""
    t1, t2, o2 = sc["turns"].get("1", {}), sc["turns"].get("2", {}), sc["oracle"].get("2", {})

    def diff(a, b):
        return None if a.get("gIoU") is None or b.get("gIoU") is None else b["gIoU"] - a["gIoU"]

    return {"n": sc["n"], "t1": t1, "t2": t2, "oracle": o2, "gain": diff(t1, t2), "oracle_gain": diff(t1, o2)}


def _train_loadavg(info: dict):
    """The load average at the start of the invocation that ran SFT (a re-render runs nothing)."""
    for inv in reversed(info.get("invocations") or []):
        if "sft" in (inv.get("ran") or []):
            return inv.get("loadavg_start")
    return info["machine"].get("loadavg_start")


def _tiny_name(info: dict) -> str:
    tiny = ((info.get("sft") or {}).get("config") or {}).get("model", {}).get("tiny") or {}
    fam = tiny.get("family", "qwen3_vl")
    return {"qwen3_vl": "Qwen3-VL", "qwen2_5_vl": "Qwen2.5-VL"}.get(fam, fam)


def _label(key: str) -> str:
    if key.startswith("baseline:"):
        return key.split(":", 1)[1].replace("_", " ")
    return {k: lab for k, lab, _ in MODELS}.get(key, key)


def _kinds(comp: dict) -> dict | None:
    """text>mask by expression kind: header ``[(kind, n)]`` and rows ``(model key, {kind: stats})``."""
    if not comp.get("kinds"):
        return None
    kinds = sorted({k for v in comp["kinds"].values() for k in v})
    head = [(k, next(v[k]["n"] for v in comp["kinds"].values() if k in v)) for k in kinds]
    return {"head": head, "rows": list(comp["kinds"].items())}


def _findings(results: dict, info: dict) -> dict:
    """The numbers the closing statements of the report are about (the template words them)."""
    m, b = results["models"], results["baselines"]
    comp = info.get("comparisons") or {}

    def pair(after, before, task):
        return next((c for c in comp.get("stages", []) if (c["model"], c["vs"], c["task"]) == (after, before, task)),
                    None)  # fmt: skip

    un, final = m.get("untrained"), m.get("grpo2") or m.get("grpo1") or m.get("sft")
    t = "text>mask"
    out = {
        "invalid_untrained": ((un or {}).get("tasks") or {}).get("tables", {}).get("all", {}).get("invalid_rate"),
        "invalid_final": ((final or {}).get("tasks") or {}).get("tables", {}).get("all", {}).get("invalid_rate"),
        "text": None,
        "carried": [],
        "selfcorrect": [c for c in comp.get("selfcorrect", []) if c["model"] == ("grpo2" if m.get("grpo2") else "sft")],
    }
    sft = metric(m.get("sft"), t, "gIoU")
    if sft is not None:
        vc, vr = pair("sft", "baseline:centre", t), pair("sft", "baseline:random_object", t)
        out["text"] = {
            "sft": sft, "centre": metric(b.get("centre"), t, "gIoU"), "random": metric(b.get("random_object"), t, "gIoU"),
            "ceiling": metric(b.get("reference"), t, "gIoU"), "vs_centre": vc, "vs_random": vr,
            "above_random": bool(vr and vr["significant"] and vr["diff"] > 0),
            "above_centre": bool(vc and vc["significant"] and vc["diff"] > 0),
            "grpo1": pair("grpo1", "sft", t),
        }  # fmt: skip
    for task in ("point>mask", "box>mask", "box>polygon"):
        s_ = metric(m.get("sft"), task, "gIoU")
        if s_ is None:
            continue
        c, q = metric(b.get("centre"), task, "gIoU"), metric(b.get("query"), task, "gIoU")
        out["carried"].append({"task": task, "sft": s_, "centre": c, "query": q, "final": metric(final, task, "gIoU"),
                               "above_centre": c is not None and s_ > c + 0.1,
                               "above_query": q is not None and s_ > q})  # fmt: skip
    return out


def report_context(results: dict, info: dict) -> dict:
    """Everything ``templates/summary.md.j2`` prints, read off ``results`` / ``info`` (``run.json``)."""
    tasks = task_columns(results)
    models = [(k, lab) for k, lab, _ in MODELS if k in results["models"]]
    base = [(k, lab) for k, lab in BASELINES if k in results["baselines"]]
    rows = [{"name": f"**{lab}**", "cells": [metric(results["models"][k], t, "gIoU") for t in tasks],
             "invalid": _invalid_rate(results["models"][k])} for k, lab in models]  # fmt: skip
    rows += [{"name": f"baseline: {lab}", "cells": [metric(results["baselines"][k], t, "gIoU") for t in tasks],
              "invalid": _invalid_rate(results["baselines"][k])} for k, lab in base]  # fmt: skip
    selfcorrect = []
    for k, lab in models:
        sc = (results["models"][k].get("tasks") or {}).get("selfcorrect")
        if sc:
            selfcorrect.append({"label": lab, **_turn2(sc)})
    polygons = []
    for group, rows_ in (("models", models), ("baselines", base)):
        for k, lab in rows_:
            p = (results[group][k].get("polygons") or {}).get("tables", {}).get("box>polygon")
            if p:
                polygons.append({"name": f"**{lab}**" if group == "models" else f"baseline: {lab.split(' (')[0]}", **p})
    stages, tw, tc = [], 0.0, 0.0
    for st in STAGES:
        mk = info["stages"].get(st)
        stages.append({"name": st, **(mk or {})})
        if mk:
            tw, tc = tw + mk["wall_s"], tc + mk["cpu_s"]
    comp = info.get("comparisons") or {}
    return {
        "info": info, "cfg": info["config"], "versions": info["versions"], "tiny_name": _tiny_name(info),
        "lock_diff": info.get("versions_vs_lock"), "grid_codec": GRID_CODEC, "task_decoder": TASK_DECODER,
        "polygon_decoder": POLYGON_DECODER,
        "eval_series": ((info.get("seeds") or {}).get("scene_series") or {}).get("held_out", EVAL_SERIES),
        "tasks": [(t, _n_of(results, t)) for t in tasks], "rows": rows,
        "stage_comparisons": comp.get("stages") or [], "kinds": _kinds(comp), "selfcorrect": selfcorrect,
        "selfcorrect_pairs": comp.get("selfcorrect") or [], "polygons": polygons, "training": info["training"],
        "stages": stages, "total_wall": tw, "total_cpu": tc, "target_met": tw <= 15 * 60,
        "train_loadavg": _train_loadavg(info), "findings": _findings(results, info),
    }  # fmt: skip


# ---- formatting (Jinja filters)
def _f(v, pct: bool = False, signed: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not np.isfinite(v):
        return "nan"
    if pct:
        return f"{100 * v:.0f} %"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _fmt_s(s) -> str:
    if s is None:
        return "–"
    s = float(s)
    return f"{s:.0f} s" if s < 90 else f"{int(s // 60)} min {s % 60:02.0f} s"


def _said(c) -> str:
    if not c:
        return "not compared"
    return f"{format_diff(c)}, {c['improved']} better / {c['worse']} worse, p {format_p(c['p'], eq=True)}"


def _environment():
    jinja2 = require("jinja2", "train", "the demo's report")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )  # fmt: skip
    env.filters.update(
        f=_f, pct=lambda v: _f(v, pct=True), signed=lambda v: _f(v, signed=True), secs=_fmt_s, label=_label,
        diff=format_diff, p=format_p, said=_said, dash=lambda v: "–" if v is None else v,
    )  # fmt: skip
    return env


def summary_markdown(results: dict, info: dict) -> str:
    """``summary.md`` of a demo run: ``templates/summary.md.j2`` over :func:`report_context`."""
    return _environment().get_template("summary.md.j2").render(**report_context(results, info))
