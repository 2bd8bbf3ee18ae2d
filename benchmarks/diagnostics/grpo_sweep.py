"""Table of GRPO stage-1 curves (issue 14): one row per ``grpo_curve.py`` result, beside its training log.

Each row: the setting (the curve's overrides), the steps, held-out (development series) text>mask mIoU per
checkpoint, the best checkpoint's paired comparison with the SFT model (difference [95 % CI], sign-test p),
and from the run's ``metrics.jsonl``: the training reward (mean of the first / last 30 steps, and an ordinary
least-squares slope per 100 steps with its p), the within-group reward std, the fraction of groups whose 8
(or 16) rewards are all equal (zero advantage), the KL to the start policy and the entropy (first / last 30
steps), and the share of invalid answers.

    python benchmarks/diagnostics/grpo_sweep.py benchmarks/results/diagnostics/grpo_curve-*.json \\
        --work runs/diag-grpo --out benchmarks/results/diagnostics/grpo_sweep.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def log_stats(metrics: Path, window: int = 30) -> dict:
    """Reward / advantage / drift diagnostics of one GRPO run's metrics log."""
    from scipy.stats import linregress

    rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "reward" in r]
    first, last = rows[:window], rows[-window:]

    def fl(key):
        return [_mean(r.get(key) for r in first), _mean(r.get(key) for r in last)]

    lr = linregress([r["step"] for r in rows], [r["reward"] for r in rows])
    return {
        "steps_logged": len(rows),
        "reward": fl("reward"),
        "reward_slope_per_100": round(100 * lr.slope, 4),
        "reward_slope_p": round(float(lr.pvalue), 4),
        "reward_std": fl("reward_std"),
        "frac_reward_zero_std": fl("frac_reward_zero_std"),
        "kl": fl("kl"),
        "entropy": fl("entropy"),
        "mask_iou_sampled": fl("getok_stage1/mask_iou"),
        "invalid": fl("getok_stage1/invalid"),
        "mean_length": fl("completions/mean_length"),
        "s_per_step": round(rows[-1]["time_s"] / len(rows), 2) if "time_s" in rows[-1] else None,
    }


def row(path: Path, work: Path) -> dict:
    r = json.loads(path.read_text())
    name = path.stem.removeprefix("grpo_curve-") if path.stem != "grpo_curve" else "stage1-demo"
    ckpts = [c for c in r["curve"] if c["step"] > 0]
    best = max(ckpts, key=lambda c: c["vs_sft"]["diff"])
    out = {
        "name": name,
        "file": str(path),
        "run": r["what"].split(" from ")[1].split("/sft")[0],
        "overrides": r["overrides"],
        "steps": r["steps"],
        "curve": [[c["step"], c["miou"]] for c in r["curve"]],
        "best": {
            "step": best["step"],
            **{k: best["vs_sft"][k] for k in ("diff", "lo", "hi", "p", "improved", "worse")},
        },
        "significant": [
            [c["step"], round(c["vs_sft"]["diff"], 4), round(c["vs_sft"]["p"], 4)]
            for c in ckpts
            if c["vs_sft"]["significant"]
        ],
        "any_significant_gain": any(c["vs_sft"]["significant"] and c["vs_sft"]["diff"] > 0 for c in ckpts),
        "baselines": {k: v["miou"] for k, v in r["baselines"].items()},
    }
    m = work / name / "grpo1" / "metrics.jsonl"
    if m.exists():
        out["train"] = log_stats(m)
    return out


def markdown(rows: list[dict]) -> str:
    lines = [
        "| setting | run | steps | dev text>mask: SFT → checkpoints | best Δ vs SFT [95 % CI] | p | significant (p < 0.05) Δ @ step | reward first → last (slope /100 steps, p) | reward std | zero-std groups | KL last | entropy first → last |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, t = r["best"], r.get("train", {})
        ov = " ".join(o for o in r["overrides"] if "torch_threads" not in o) or "(demo settings)"
        curve = " → ".join(f"{m:.3f}" for _, m in r["curve"])
        rew = (f"{t['reward'][0]:.3f} → {t['reward'][1]:.3f} ({t['reward_slope_per_100']:+.3f}, p {t['reward_slope_p']:.2g})"
               if t else "–")  # fmt: skip
        lines.append(
            f"| `{ov}` | {r['run']} | {r['steps']} | {curve} | {b['diff']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}] @ {b['step']} "
            f"| {b['p']:.2g} | {', '.join(f'{d:+.3f} @ {st}' for st, d, _ in r['significant']) or 'none'} | {rew} | {t.get('reward_std', ['–'])[-1]} | {t.get('frac_reward_zero_std', ['–'])[-1]} "
            f"| {(t.get('kl') or ['–'])[-1] if (t.get('kl') or [None])[-1] is not None else 'not logged'} | {' → '.join(str(x) for x in t.get('entropy', []))} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, default=Path("runs/diag-grpo"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--doc", type=Path, help="replace the table between <!-- grpo_sweep:begin/end --> in this file")
    args = ap.parse_args(argv)
    rows = [row(p, args.work) for p in args.results]
    md = markdown(rows)
    print(md)
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "markdown": md}, indent=1) + "\n")
    if args.doc:
        text = args.doc.read_text()
        a, b = "<!-- grpo_sweep:begin -->", "<!-- grpo_sweep:end -->"
        head, rest = text.split(a, 1)
        args.doc.write_text(head + a + "\n" + md + "\n" + b + rest.split(b, 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
