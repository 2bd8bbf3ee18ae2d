"""Evaluating a model or a baseline on the demo's held-out sets (tasks with two-turn self-correction,
polygons) and reducing the records to the report's tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .config import POLYGON_DECODER, TASK_DECODER, DemoConfig, sft_config


# ---- evaluation
def _turn1_records(records: Sequence[dict]) -> list[dict]:
    """Each sample's first answer (self-correction records keep it in ``turns[0]``)."""
    out = []
    for r in records:
        t = r.get("turns")
        out.append({**t[0], "task": r.get("task")} if t else r)
    return out


_KEEP = ("n", "gIoU", "cIoU", "Acc@0.5", "invalid_rate", "tokens_per_object", "boundary_F")


def _table_of(records: Sequence[dict]) -> dict:
    """Per-task and overall metrics of first answers (:func:`getok.eval.metrics.summarize`, LISA rule)."""
    from getok.eval.metrics import summarize

    recs = _turn1_records(records)
    groups: dict[str, list] = {}
    for r in recs:
        groups.setdefault(str(r.get("task")), []).append(r)
    out = {t: {k: summarize(g).get(k) for k in _KEEP} for t, g in sorted(groups.items())}
    if recs:
        out["all"] = {k: summarize(recs).get(k) for k in _KEEP}
    return out


def _selfcorrect_of(summary: dict) -> dict | None:
    sc = summary.get("selfcorrect")
    if not sc or not sc.get("turns"):
        return None
    keys = ("n", "gIoU", "Acc@0.5", "improved", "worse", "same", "refine_invalid_rate", "mean_delta")
    turns = {str(t): {k: r.get(k) for k in keys} | {"point_score": (r.get("points") or {}).get("point_score")}
             for t, r in sc["turns"].items()}  # fmt: skip
    oracle = {str(t): {k: r.get(k) for k in keys} | {"point_score": (r.get("points") or {}).get("point_score")}
              for t, r in (sc.get("oracle") or {}).items()}  # fmt: skip
    return {"n": sc.get("n"), "turns": turns, "oracle": oracle, "n_no_proposal": sc.get("n_no_proposal")}


def evaluate_sets(model, processor, sets: dict, out: Path, cfg: DemoConfig, name: str, *, generate_fn=None,
                   progress: bool = True) -> dict:  # fmt: skip
    """Evaluate one model (or baseline) on the task set (self-correction) and the polygon set."""
    from getok.eval.runner import evaluate, read_records

    res = {}
    for key, (data_dir, decoder, turns, max_new) in sets.items():
        run_dir = out / key
        summary = evaluate(
            model, processor, str(data_dir), decoder=decoder, out_dir=str(run_dir), turns=turns, oracle=True,
            batch_size=cfg.eval_batch, max_new_tokens=max_new, resume=False, progress=progress, seed=cfg.seed,
            generate_fn=generate_fn[key] if isinstance(generate_fn, dict) else generate_fn, model_name=name,
        )  # fmt: skip
        recs = read_records(run_dir / "records.jsonl")
        res[key] = {"tables": _table_of(recs), "selfcorrect": _selfcorrect_of(summary), "dir": str(run_dir),
                    "eval_s": summary.get("run", {}).get("elapsed_s")}  # fmt: skip
    return res


def eval_sets(cfg: DemoConfig, out: Path) -> dict:
    d = out / "data"
    return {
        "tasks": (d / "eval-tasks", TASK_DECODER, cfg.turns, 16),
        "polygons": (d / "eval-polygons", POLYGON_DECODER, 1, 48),
    }


def load_model(path: Path):
    from getok.vocab import load_model_and_processor

    return load_model_and_processor(path)


def untrained_model(cfg: DemoConfig, out: Path):
    """The tiny base (built into ``sft/base``, as the SFT run does) with the vocabulary added, untrained."""
    from getok.train.sft import prepare_base, setup_model

    scfg = sft_config(cfg, out)
    base = prepare_base(scfg, scfg.output_dir)
    model, processor, _, _ = setup_model(scfg, base)
    model.eval()
    return model, processor


