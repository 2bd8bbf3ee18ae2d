"""GRPO's held-out evaluation and reward plot (:mod:`getok.rl.grpo` calls them): the policy scored on the
held-out questions before / during / after training (stage 2: the two-turn self-correction protocol; polygon
answers: one turn, with tokens per object) and the reward curve with the evaluation points."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..eval.runner import evaluate
from ..train.callbacks import (
    read_metrics,
)
from .grpo_config import GRPORunConfig

__all__ = ["TOKEN_KEYS", "eval_headline", "fork_torch_rng", "evaluate_policy", "plot_reward_curve"]

log = logging.getLogger("getok.rl.grpo")


# ---------------------------------------------------------------------------------------------- eval
def _turn(table: dict, t: int) -> dict:
    return table.get(t) or table.get(str(t)) or {}


#: Token counts of the evaluation summary a polygon run reports (:func:`getok.eval.metrics.summarize`:
#: answer tokens over decoded objects, and per answer).
TOKEN_KEYS = ("tokens_per_object", "tokens_per_sample")


def eval_headline(summary: dict, stage: int, task: str | None = None) -> dict:
    """The numbers worth a line: mIoU (gIoU), cIoU, invalid rate; stage 2: per-turn mIoU, the gain of the
    refinement turn, the oracle's, improved / worse counts; ``task="polygon"``: tokens per object and per
    answer (:data:`TOKEN_KEYS`, also per task)."""
    ov = summary.get("overall", {})
    out = {"n": ov.get("n"), "mIoU": ov.get("gIoU"), "cIoU": ov.get("cIoU"), "invalid_rate": ov.get("invalid_rate")}
    tok = TOKEN_KEYS if task == "polygon" else ()
    out.update({k: ov.get(k) for k in tok})
    per_task = summary.get("per_task") or {}
    if stage == 1 and len(per_task) > 1:
        out["per_task"] = {t: {"n": s.get("n"), "mIoU": s.get("gIoU"), **{k: s.get(k) for k in tok}}
                           for t, s in per_task.items()}  # fmt: skip
    sc = summary.get("selfcorrect")
    if stage == 2 and sc and sc.get("turns"):
        t1, t2 = _turn(sc["turns"], 1), _turn(sc["turns"], 2)
        o2 = _turn(sc.get("oracle", {}), 2)
        out.update(
            mIoU_turn1=t1.get("gIoU"), mIoU_turn2=t2.get("gIoU"),
            gain=None if t1.get("gIoU") is None or t2.get("gIoU") is None else t2["gIoU"] - t1["gIoU"],
            oracle_mIoU_turn2=o2.get("gIoU"),
            oracle_gain=None if t1.get("gIoU") is None or o2.get("gIoU") is None else o2["gIoU"] - t1["gIoU"],
            improved=t2.get("improved"), worse=t2.get("worse"), same=t2.get("same"),
            refine_invalid_rate=t2.get("refine_invalid_rate"), n_no_proposal=sc.get("n_no_proposal"),
            point_score=(t2.get("points") or {}).get("point_score"),
        )  # fmt: skip
    return out


def fork_torch_rng():
    """``torch.random.fork_rng`` over the CPU and every visible CUDA device: greedy generation
    (:func:`~getok.eval.generate.generate_answers`) seeds torch before each batch, and a held-out evaluation
    or a stage-2 proposal in the middle of training must not change the rollouts' random stream (a run with
    evaluations every 50 steps trains exactly as one without; tested)."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return torch.random.fork_rng(devices=devices)


def evaluate_policy(model, processor, eval_dir, cfg: GRPORunConfig, out_dir, *, progress: bool = False) -> dict:
    """Held-out evaluation (:func:`getok.eval.runner.evaluate`); stage 2 with two self-correction turns, a
    polygon run in one turn with tokens per object.

    Returns :func:`eval_headline` of the summary (records and tables are written under ``out_dir``).
    """

    ev = cfg.eval
    was = model.training
    model.eval()
    try:
        with fork_torch_rng():  # generation re-seeds torch per batch: keep the training stream untouched
            summary = evaluate(
                model, processor, str(eval_dir), decoder=ev.decoder, out_dir=str(out_dir), limit=ev.limit,
                batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens, resume=False, progress=progress,
                seed=cfg.seed, turns=2 if cfg.rl.stage == 2 else 1, oracle=True,
                model_name=f"{cfg.output_dir} ({Path(out_dir).name})",
            )  # fmt: skip
    finally:
        model.train(was)
    return eval_headline(summary, cfg.rl.stage, cfg.reward_task)


def _periodic_eval_callback(processor, eval_dir, cfg: GRPORunConfig, out: Path):
    from transformers import TrainerCallback

    class PeriodicEval(TrainerCallback):
        """Evaluate every ``eval.every_steps`` steps; one JSON row per evaluation in ``eval_curve.jsonl``."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            n = cfg.eval.every_steps
            if not n or state.global_step % n or not state.is_world_process_zero:
                return
            t0 = time.perf_counter()
            head = evaluate_policy(model, processor, eval_dir, cfg, out / "eval" / f"step-{state.global_step}")
            row = {"step": int(state.global_step), **head, "eval_s": round(time.perf_counter() - t0, 1)}
            with open(out / "eval_curve.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    return PeriodicEval()


# ---------------------------------------------------------------------------------------------- plots
def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) < 2 or k <= 1:
        return x
    k = min(k, len(x))
    c = np.cumsum(np.insert(x, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_reward_curve(metrics_path: str | Path, out_png: str | Path, *, eval_rows: list[dict] | None = None,
                      title: str = "", window: int = 10) -> Path | None:  # fmt: skip
    """Mean reward per step (and its moving average) from ``metrics.jsonl``; held-out mIoU points when
    given. Returns the PNG path (``None`` when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in read_metrics(metrics_path) if "reward" in r]
    if not recs:
        return None
    steps = np.array([r["step"] for r in recs])
    reward = np.array([r["reward"] for r in recs], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, reward, color="0.75", lw=0.8, label="mean reward (per step)")
    ax.plot(steps, _moving_average(reward, window), color="C0", lw=2, label=f"moving average ({window})")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    if eval_rows:
        key = "mIoU_turn2" if any("mIoU_turn2" in r for r in eval_rows) else "mIoU"
        es = [r["step"] for r in eval_rows if r.get(key) is not None]
        ev = [r[key] for r in eval_rows if r.get(key) is not None]
        ax2 = ax.twinx()
        ax2.plot(es, ev, "o-", color="C3", label=f"held-out {key}")
        ax2.set_ylabel(f"held-out {key}")
        ax2.legend(loc="lower right")
    ax.legend(loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
