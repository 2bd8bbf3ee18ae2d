"""Diagnostic: does GRPO stage 1 raise held-out text>mask over SFT, and after how many steps?

Starts from a finished demo run's SFT model (``--run``, e.g. ``runs/demo``) and trains GRPO stage 1 with that
demo's own stage-1 settings (``getok_lab.demo.grpo_config``) for ``--steps`` steps, a checkpoint every
``--every``; the SFT model and every checkpoint answer the same text>mask questions of a *development*
series (scene series 20000 by default — not the demo's reported ``test`` series 30000, so a decision taken from this
curve does not tune the reported numbers). Each checkpoint is compared with the SFT model on the same
questions (paired bootstrap interval + sign test, :func:`getok.eval.stats.paired_comparison`), beside the
always-centre and random-object baselines and the reference ceiling.

    python benchmarks/diagnostics/grpo_curve.py --run runs/demo --steps 240 --every 60
    python benchmarks/diagnostics/grpo_curve.py --run runs/demo --name lr3e-4 --set train.lr=3e-4

~2 s a step (32 completions) plus ~15 s per checkpoint evaluation on 2 cores; the GRPO run is kept under
``--work/NAME`` and reused.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _grounding import TASK, question_set, score, summarise  # noqa: E402  (the diagnostics' shared parts)

from getok_lab.series import SERIES  # noqa: E402

DEV_SERIES = SERIES["grpo_dev"]  # 20000


def score_dir(path: Path, data: Path, out: Path) -> dict:
    """Per-question IoU of a model directory."""
    from getok.vocab import load_model_and_processor

    model, proc = load_model_and_processor(path)
    model.eval()
    return score(model, proc, data, out)


def main(argv=None) -> int:
    from _cli import report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished demo run (its sft/final and run.json)")
    ap.add_argument("--name", default="stage1", help="this curve's name (its directory under --work)")
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--every", type=int, default=60)
    ap.add_argument("--eval-scenes", type=int, default=150)
    ap.add_argument("--series", type=int, default=DEV_SERIES, help="development scene series of the questions")
    ap.add_argument("--set", nargs="*", default=[], metavar="A.B=C", help="overrides of the GRPO stage-1 config")
    ap.add_argument("--work", type=Path, default=Path("runs/diag-grpo"))
    ap.add_argument("--out", help="write the result JSON here too")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    from getok.data_builders.dataset import read_dataset
    from getok.eval.baselines import BaselineGenerator
    from getok.eval.stats import paired_comparison
    from getok.rl.grpo import run_grpo
    from getok_lab.demo import DemoConfig, grpo_config

    info = json.loads((args.run / "run.json").read_text())
    import dataclasses

    demo = DemoConfig(**{f.name: info["config"][f.name] for f in dataclasses.fields(DemoConfig) if f.name in info["config"]})
    work = args.work / args.name
    data = question_set(args.work / f"dev-{args.series}-{args.eval_scenes}", args.eval_scenes, args.series)
    samples = list(read_dataset(data, check_images=False))
    ids = [s.sample_id for s in samples]
    baselines = {}
    for b in ("centre", "random_object", "reference"):
        gen = BaselineGenerator(b, demo.polygon_codec, samples=samples, seed=demo.seed)
        out = args.work / f"dev-{args.series}-baseline-{b}"
        baselines[b] = summarise(score(None, None, data, out, generate_fn=gen), ids)
    sft = score_dir(args.run / "sft" / "final", data, work / "eval" / "sft")

    # the demo's own stage-1 run config (as the demo wrote it), redirected: our output dir, budget, checkpoints
    from getok.config import save_config
    from getok.rl.grpo_config import load_grpo_config

    work.mkdir(parents=True, exist_ok=True)
    demo_cfg = save_config(grpo_config(demo, args.run, 1), work / "demo_stage1.yaml")
    ov = [f"output_dir={json.dumps(str(work / 'grpo1'))}", f"train.max_steps={args.steps}",
          f"train.save_steps={args.every}", "train.save_total_limit=1000", *args.set]  # fmt: skip
    gcfg = load_grpo_config(demo_cfg, ov)
    t0 = time.perf_counter()
    s = run_grpo(gcfg, progress=not args.quiet)
    train_s = round(time.perf_counter() - t0, 1)

    curve = [{"step": 0, **summarise(sft, ids)}]
    for step in range(args.every, args.steps + 1, args.every):
        ious = score_dir(work / "grpo1" / f"checkpoint-{step}", data, work / "eval" / f"step-{step}")
        cmp = paired_comparison([sft[i] for i in ids], [ious[i] for i in ids])
        row = {"step": step, **summarise(ious, ids), "vs_sft": cmp}
        curve.append(row)
        print(f"  {args.name} step {step}: mIoU {row['miou']:.3f} {row['ci']}, vs SFT {cmp}", flush=True)
    rewards = [json.loads(x) for x in (work / "grpo1" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rewards = [r["reward"] for r in rewards if "reward" in r]
    k = max(1, len(rewards) // 8)
    result = {
        "what": f"GRPO stage 1 from {args.run}/sft/final with the demo's stage-1 settings"
        + (f" and {args.set}" if args.set else ""),
        "task": TASK,
        "questions": len(ids),
        "dev_series": args.series,
        "eval_scenes": args.eval_scenes,
        "steps": args.steps,
        "completions_per_step": gcfg.per_device_batch,
        "overrides": args.set,
        "baselines": baselines,
        "curve": curve,
        "reward_curve": [round(sum(rewards[i:i + k]) / len(rewards[i:i + k]), 4) for i in range(0, len(rewards), k)],
        "train_wall_s": train_s,
        "final": s.get("final"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    return report(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
