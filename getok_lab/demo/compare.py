"""Is each difference real? Paired comparisons of the demo's stages and baselines on the same held-out
questions (bootstrap intervals, sign tests), self-correction per task, text>mask by expression type."""

from __future__ import annotations

from pathlib import Path

from .config import BASELINES, MODELS

# ---- statistics
#: Paired comparisons of the report: (after, before) model / baseline keys, on the first answers.
COMPARISONS = (("sft", "baseline:centre"), ("sft", "baseline:random_object"), ("grpo1", "sft"), ("grpo2", "grpo1"),
               ("grpo2", "sft"))  # fmt: skip


def compare_runs(results: dict, kinds: dict[str, str] | None = None) -> dict:
    """Paired statistics over the same held-out questions (:func:`getok.eval.stats.paired_comparison`).

    Returns ``{"stages": [...], "selfcorrect": [...], "kinds": {...}}``: each stage of :data:`COMPARISONS`
    against the one before per task; each model's turn 2 against its turn 1 (and the oracle's turn 2) per mask
    task; and text>mask per expression kind (``kinds``: sample id → kind) with bootstrap intervals.
    """
    from getok.eval.runner import question_ious
    from getok.eval.stats import bootstrap_mean, paired_comparison

    def runs(key):
        group, name = ("baselines", key.split(":", 1)[1]) if key.startswith("baseline:") else ("models", key)
        r = results[group].get(name)
        if not r:
            return None
        q = {}
        for part in ("tasks", "polygons"):
            d = (r.get(part) or {}).get("dir")
            if d and Path(d, "records.jsonl").is_file():
                q.update(question_ious(d))
        return q

    cache: dict = {}

    def get(key):  # each run's records are read once
        if key not in cache:
            cache[key] = runs(key)
        return cache[key]

    def rnd(d):
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

    out: dict = {"stages": [], "selfcorrect": [], "kinds": {}}
    for after, before in COMPARISONS:
        a = get(after)
        b = get(before)
        if not a or not b:
            continue
        for task in sorted({v["task"] for v in a.values()}):
            ids = sorted(i for i in a if a[i]["task"] == task and i in b)
            if before.startswith("baseline:") and task != "text>mask":
                continue
            c = paired_comparison([b[i]["t1"] for i in ids], [a[i]["t1"] for i in ids])
            out["stages"].append({"model": after, "vs": before, "task": task, **rnd(c)})
    for name in (k for k, _, _ in MODELS if k != "untrained"):
        q = get(name)
        if not q:
            continue
        for task in sorted({v["task"] for v in q.values() if v["t2"] is not None}):
            ids = sorted(i for i in q if q[i]["task"] == task and q[i]["t2"] is not None)
            c = paired_comparison([q[i]["t1"] for i in ids], [q[i]["t2"] for i in ids])
            o = paired_comparison([q[i]["t1"] for i in ids], [q[i]["oracle"] or 0.0 for i in ids])
            out["selfcorrect"].append({"model": name, "task": task, **rnd(c), "oracle": round(o["after"], 4),
                                       "oracle_diff": round(o["diff"], 4)})  # fmt: skip
    if kinds:
        for key in [k for k, _, _ in MODELS] + [f"baseline:{b}" for b, _ in BASELINES]:
            q = get(key)
            if not q:
                continue
            by: dict[str, list] = {}
            for i, v in q.items():
                if v["task"] == "text>mask" and i in kinds:
                    by.setdefault(kinds[i], []).append(v["t1"])
            out["kinds"][key] = {k: rnd(bootstrap_mean(v)) for k, v in sorted(by.items())}
    return out


def expression_kinds(data_dir: Path) -> dict[str, str]:
    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.scenes import expression_kind

    return {s.sample_id: expression_kind(s.truth["query"]["text"]) for s in read_dataset(data_dir, check_images=False)
            if s.task == "text>mask" and (s.truth or {}).get("query", {}).get("type") == "text"}  # fmt: skip


