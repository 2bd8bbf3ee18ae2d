"""``getok train …``: supervised fine-tuning and checkpoint merging on the command line.

::

    getok train sft configs/sft/tiny-cpu.yaml                       # the embedded CPU recipe
    getok train sft configs/sft/tiny-cpu.yaml train.max_steps=50 output_dir=runs/try
    getok train sft configs/sft/qwen2_5_vl_7b.yaml --dry-run         # validate + print the config, no compute
    getok train merge runs/sft-tiny/final --out runs/sft-tiny/merged

Multi-GPU / multi-node: the same command under ``accelerate launch`` (see ``docs/training.md``).

:func:`add_train_command` builds the standard ``NAME CONFIG.yaml [k=v ...]`` parser (``--dry-run`` included)
around a ``run(config_path, overrides, args) -> int`` function; GRPO's ``getok rl train`` uses it too.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

from ..cli.main import main as cli_main
from .config import config_yaml, load_sft_config
from .merge import merge_checkpoint
from .sft import is_rank_zero, run_sft

__all__ = ["register", "add_train_command", "main", "cmd_sft", "cmd_merge"]

log = logging.getLogger("getok.train.cli")

def add_train_command(
    train_subparsers, name: str, run: Callable[[str | None, list[str], argparse.Namespace], int], *, help: str = ""
) -> argparse.ArgumentParser:
    """Add ``getok train NAME [CONFIG.yaml] [k=v ...] [--dry-run] [--quiet]``.

    ``run(config_path, overrides, args)`` is called with the YAML path (``None`` = the defaults), the
    ``a.b=c`` overrides and the parsed arguments; it returns the exit status. Returns the parser so the
    caller can add options.
    """
    p = train_subparsers.add_parser(name, help=help, description=help)
    p.add_argument("config", nargs="?", help="YAML config (default: the built-in defaults)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="overrides a.b=c (e.g. train.max_steps=50)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the resolved config; no compute")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    flags = {"--dry-run": "dry_run", "--quiet": "quiet"}

    def func(args) -> int:
        cfg, ov = args.config, []
        for item in args.overrides:  # flags may also follow the config / the overrides
            if item in flags:
                setattr(args, flags[item], True)
            elif item.startswith("--"):
                p.error(f"unknown option {item!r} (options: {', '.join(flags)})")
            else:
                ov.append(item)
        if cfg is not None and "=" in cfg and not cfg.endswith((".yaml", ".yml")):
            cfg, ov = None, [cfg, *ov]  # no YAML given: the first positional is an override
        return run(cfg, ov, args)

    p.set_defaults(func=func)
    return p


def _run_sft(config: str | None, overrides: list[str], args) -> int:
    cfg = load_sft_config(config, overrides)  # ConfigError before anything heavy is imported
    if args.dry_run:
        print(config_yaml(cfg), end="")
        return 0

    summary = run_sft(cfg, progress=not args.quiet)
    if not is_rank_zero():  # several processes: rank 0 reports
        return 0
    tr = summary.get("train", {})
    print(f"trained {tr.get('steps')} steps in {tr.get('train_wall_s')} s (CPU {tr.get('train_cpu_s')} s); "
          f"loss {tr.get('first_loss')} -> {tr.get('last_loss')}")  # fmt: skip
    print(f"final: {summary.get('final')}")
    for key in ("eval_before", "eval_after"):
        if key in summary:
            print(f"{key}: {json.dumps(summary[key])}")
    print(f"summary: {cfg.output_dir}/summary.json")
    return 0


cmd_sft = _run_sft


def cmd_merge(args) -> int:
    out = merge_checkpoint(args.checkpoint, args.out, base=args.base, overwrite=args.overwrite)
    print(f"merged {args.checkpoint} into {out}")
    return 0


def register(subparsers) -> None:
    """Add ``train`` (``sft``, ``merge`` and the extensions' commands) to the ``getok`` CLI."""
    train = subparsers.add_parser("train", help="fine-tune a VLM on the spatial vocabulary (SFT, merge, ...)")
    tsub = train.add_subparsers(dest="train_command", metavar="WHAT")
    train.set_defaults(func=lambda args: (train.print_help(), 1)[1])

    add_train_command(tsub, "sft", _run_sft, help="supervised fine-tuning: getok train sft CONFIG.yaml [k=v ...]")

    p = tsub.add_parser("merge", help="merge a LoRA / full checkpoint into a standalone model directory")
    p.add_argument("checkpoint", help="OUTPUT/final or OUTPUT/checkpoint-N of 'getok train sft'")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--base", help="base model directory (default: the one the checkpoint records)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_merge)



def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok.train.cli``) with just these commands."""

    return cli_main(argv, modules=['getok.train.cli'])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
