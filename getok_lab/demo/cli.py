"""``getok demo`` (registered through the ``getok.commands`` entry point) and ``python -m getok_lab.demo``."""

from __future__ import annotations

import sys
from pathlib import Path

from .config import load_demo_config
from .run import run_demo


# ---- CLI
def _cmd_demo(args) -> int:
    cfg = load_demo_config(args.config, args.overrides, fast=args.fast, seed=args.seed)
    cmd = "getok demo --out " + str(args.out) + (" --fast" if args.fast else "") + f" --seed {cfg.seed}"
    if args.config:
        cmd += f" --config {args.config}"
    if args.overrides:
        cmd += " " + " ".join(args.overrides)
    path = run_demo(cfg, args.out, fast=args.fast, progress=not args.quiet, command=cmd)
    print(f"\nreport: {path.resolve()}", flush=True)
    print(f"per-sample index: {(path.parent / 'viz' / 'tasks' / 'index.html').resolve()}", flush=True)
    return 0


def register(subparsers) -> None:
    """Add ``getok demo`` (wired by :mod:`getok.cli.main`)."""
    p = subparsers.add_parser(
        "demo",
        help="the whole pipeline in miniature: data, SFT, GRPO 1 + 2, evaluation, report (~12.5 min on 2 idle cores)",
        description="Procedural scenes → tiny VLM with grid + offset tokens → SFT → GRPO stage 1 → stage 2 → "
        "evaluation with two-turn self-correction and polygon answers → DIR/summary.md. Re-running skips "
        "finished stages.",
    )
    p.add_argument("--out", required=True, type=Path, help="report / work directory (e.g. runs/demo)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of model, token rows, training and sampling (default 0)"
    )
    p.add_argument(
        "--fast", action="store_true", help="a 1-2 minute smoke run of the same pipeline (numbers mean nothing)"
    )
    p.add_argument("--config", default=None, help="YAML of DemoConfig fields (e.g. configs/demo/tiny-cpu.yaml)")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars (stage banners stay)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="DemoConfig overrides, e.g. sft_steps=300")
    p.set_defaults(func=_cmd_demo)


def main(argv: list[str] | None = None) -> int:
    """``python -m getok_lab.demo --out DIR [...]`` (the same as ``getok demo``)."""
    from getok.cli.main import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)], modules=["getok_lab.demo"])
