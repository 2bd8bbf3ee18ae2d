"""Polygon RL in miniature: summarise GRPO runs on polygon answers (``getok rl train --stage 1
configs/grpo/tiny-cpu-polygon.yaml ...``) as learning curves of held-out mIoU and tokens per object, each
checkpoint paired with the starting (SFT) model on the same questions.

    python benchmarks/diagnostics/polygon_rl.py runs/grpo-polygon-dev-tau0.5 runs/grpo-polygon-dev-tau0.0 \\
        --out benchmarks/results/diagnostics/polygon_rl.json

Each run directory holds ``eval/before``, ``eval/step-N`` and ``eval/after`` (``eval.every_steps``), its
``getok_train.yaml`` (the settings) and ``metrics.jsonl`` (the training reward). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def summarise(run: Path) -> dict:
    import numpy as np
    import yaml

    from getok.eval.run_records import question_ious, read_records
    from getok.eval.stats import paired_comparison

    cfg = yaml.safe_load((run / "getok_train.yaml").read_text())
    before = question_ious(run / "eval" / "before")
    ids = sorted(before)
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "eval").glob("step-*"))
    curve = []
    for name, step in [("before", 0), *((f"step-{s}", s) for s in steps)]:
        d = run / "eval" / name
        q = question_ious(d)
        recs = [r for r in read_records(d / "records.jsonl")]
        toks = [r["n_tokens"] / max(1, r["n_objects"]) for r in recs if r.get("valid") and r.get("n_objects")]
        row = {"step": step, "miou": round(float(np.mean([q[i]["t1"] for i in ids])), 4),
               "tokens_per_object": round(float(np.mean(toks)), 2) if toks else None}  # fmt: skip
        if step:
            c = paired_comparison([before[i]["t1"] for i in ids], [q[i]["t1"] for i in ids])
            row["vs_sft"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()}
        curve.append(row)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    reward = [r["reward"] for r in rows if "reward" in r]
    k = min(20, len(reward))
    return {
        "run": str(run),
        "model": cfg["model"]["path"],
        "eval_dataset": cfg["eval"]["dataset"],
        "questions": len(ids),
        "tau": cfg["reward"]["polygon"]["tau"],
        "seed": cfg["seed"],
        "steps": cfg["train"]["max_steps"],
        "lr": cfg["train"]["lr"],
        "reward_first_last": [round(float(np.mean(reward[:k])), 4), round(float(np.mean(reward[-k:])), 4)],
        "curve": curve,
    }


def markdown(runs: list[dict]) -> str:
    from getok.eval.stats import format_diff, format_p

    steps = sorted({r["step"] for x in runs for r in x["curve"]})
    out = ["| reward (tau) | GRPO seed | held-out set | n | " + " | ".join(f"step {s}" for s in steps)
           + " | last vs SFT [95 % CI] | better / worse | p | tokens / object first → last | train reward first → last |",
           "|---|---|---|---|" + "---|" * len(steps) + "---|---|---|---|---|"]  # fmt: skip
    for x in runs:
        by = {r["step"]: r for r in x["curve"]}
        last = x["curve"][-1]
        c = last.get("vs_sft")
        out.append(f"| IoU thresholded at {x['tau']} | {x['seed']} | `{x['eval_dataset']}` | {x['questions']} | "
                   + " | ".join(f"{by[s]['miou']:.3f}" if s in by else "–" for s in steps)
                   + f" | {format_diff(c) if c else '–'} | {c['improved']} / {c['worse']} | {format_p(c['p'])} | "
                   f"{x['curve'][0]['tokens_per_object']} → {last['tokens_per_object']} | "
                   f"{x['reward_first_last'][0]:.3f} → {x['reward_first_last'][1]:.3f} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    res = {"what": __doc__.splitlines()[0], "runs": [summarise(r) for r in args.runs]}
    print(markdown(res["runs"]))
    if args.out:
        from getok.io import atomic_write_json

        atomic_write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
