"""The demo's figures: training curves (SFT loss, GRPO rewards) and held-out mIoU by model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import MODELS
from .report import metric, task_columns


# ---- figures
def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _moving(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) < 2:
        return x
    k = max(1, min(k, len(x)))
    c = np.cumsum(np.insert(x.astype(float), 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_training_curves(out: Path, png: Path) -> Path:
    """SFT loss and GRPO stage-1 / stage-2 mean reward per step (with a moving average), one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("sft", "loss", "SFT: training loss"), ("grpo1", "reward", "GRPO stage 1: mean reward"),
              ("grpo2", "reward", "GRPO stage 2: mean reward")]  # fmt: skip
    for ax, (stage, key, title) in zip(axes, panels):
        recs = [r for r in read_jsonl(out / stage / "metrics.jsonl") if key in r and "step" in r]
        if recs:
            s = np.array([r["step"] for r in recs])
            v = np.array([r[key] for r in recs], dtype=float)
            ax.plot(s, v, color="0.7", lw=0.8, marker="." if len(s) < 30 else None, label="per log step")
            ax.plot(s, _moving(v, 10), color="C0", lw=2, label="moving average (10)")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def plot_miou(results: dict, png: Path) -> Path:
    """Held-out mIoU per task (first answers) for every model, baselines as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = task_columns(results)
    models = [(k, lab) for k, lab, _ in MODELS if k in results["models"]]
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(tasks), 4))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(tasks))
    for i, (k, lab) in enumerate(models):
        vals = [metric(results["models"][k], t, "gIoU") or 0.0 for t in tasks]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, vals, width, label=lab.split(" (")[0])
    styles = {"centre": ("k", "--"), "query": ("C3", ":")}
    for b, (color, ls) in styles.items():
        if b in results["baselines"]:
            for j, t in enumerate(tasks):
                v = metric(results["baselines"][b], t, "gIoU")
                if v is not None:
                    ax.hlines(
                        v, j - 0.45, j + 0.45, colors=color, linestyles=ls, label=f"baseline: {b}" if j == 0 else None
                    )
    ax.set_xticks(x, tasks)
    ax.set_ylabel("held-out mIoU (first answer)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


