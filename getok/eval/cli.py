"""``getok eval`` and ``getok viz``: evaluate a model on a dataset; render a run's overlays and HTML index.

``getok eval`` takes the convention of every configurable command: ``[CONFIG.yaml] [key=value ...]`` over a
config dataclass (:class:`~getok.eval.runner.EvalRunConfig`), before or after all the flags; a flag given
(``--turns 3``) overrides the same setting.

Examples::

    getok eval --model runs/tiny_g32 --data data/scenes_val --out runs/eval_tiny --limit 64
    getok eval configs/eval/selfcorrect.yaml turns=3 --model runs/sft --data data/val --out runs/eval_sft
    getok eval --model runs/sft --data data/refcoco_val --decoder sam:checkpoint=sam_vit_b.pth \\
        --out runs/eval_sft --turns 3 --constrained
    getok viz --run runs/eval_sft --limit 50

torch / transformers are imported inside the command functions.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from ..cli.main import main as cli_main
from ..config import config_to_dict, load_config
from ..errors import ConfigError
from .runner import SUMMARY_MD, EvalRunConfig, evaluate_path
from .viz import render_run

__all__ = ["register", "main", "cmd_eval", "cmd_viz", "eval_config"]


#: ``getok eval`` flags that set the :class:`~getok.eval.runner.EvalRunConfig` field of the same name, and the
#: ``--no-X`` flags that turn field ``X`` off. A flag given on the command line overrides the YAML and the
#: ``key=value`` overrides.
CONFIG_FLAGS = ("codec", "decoder", "turns", "constrained", "limit", "batch_size", "max_new_tokens", "empty",
                "on_invalid", "seed")  # fmt: skip
NEGATED_FLAGS = {"no_oracle": "oracle", "no_boundary": "boundary"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on a dataset (records, summary, optional self-correction)",
        description="getok eval [CONFIG.yaml] [key=value ...] --model M --data D --out O [flags]. Settings: "
        "EvalRunConfig's fields (codec, decoder, turns, constrained, limit, batch_size, max_new_tokens, empty, "
        "boundary, on_invalid, oracle, refine_prompt, seed) from the defaults, then the YAML, then key=value, "
        "then the flags below (a flag given overrides the same setting).",
    )
    p.add_argument("settings", nargs="*", metavar="CONFIG.yaml | key=value",
                   help="an EvalRunConfig YAML and / or key=value overrides (e.g. turns=3 decoder=raster)")  # fmt: skip
    p.add_argument("--model", type=Path, required=True, help="model directory (tiny, Qwen2.5-VL, getok checkpoint)")
    p.add_argument("--data", type=Path, required=True, help="dataset directory (getok build ...)")
    p.add_argument("--out", type=Path, required=True, help="run directory (records.jsonl, summary.json, summary.md)")
    p.add_argument("--codec", default=None, help="codec that decodes the answers (default: each sample's)")
    p.add_argument("--decoder", default=None, help="mask decoder spec (raster, point_masks:proposer=..., sam:checkpoint=...)")
    p.add_argument("--turns", type=int, default=None, help="K > 1: propose, then K-1 refinement turns (grid_offset)")
    p.add_argument("--constrained", action="store_true", default=None, help="grammar-constrained decoding (every output parses)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N samples")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--empty", default=None, choices=("lisa", "rela", "exclude"), help="empty-target convention")
    p.add_argument("--on-invalid", default=None, choices=("keep", "zero"), help="scoring of a refinement that does not parse")
    p.add_argument("--no-oracle", action="store_true", default=None, help="skip the oracle refinement baseline")
    p.add_argument("--no-boundary", action="store_true", default=None, help="skip the boundary F-score")
    p.add_argument("--no-resume", action="store_true", help="start over instead of skipping recorded samples")
    p.add_argument("--dtype", default=None, help="model dtype (default: the checkpoint's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dry-run", action="store_true", help="validate and print the resolved settings; no compute")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    v = subparsers.add_parser("viz", help="render a run's per-sample overlays (PNG) and an index.html (sortable, filterable by task and IoU change)")
    v.add_argument("--run", type=Path, required=True, help="run directory of getok eval")
    v.add_argument("--out", type=Path, default=None, help="output directory (default RUN/viz)")
    v.add_argument("--limit", type=int, default=None, help="render the first N records")
    v.add_argument("--ids", default=None, help="comma-separated sample ids to render")
    v.add_argument("--dpi", type=int, default=100)
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_viz)


def eval_config(args):
    """The :class:`~getok.eval.runner.EvalRunConfig` of a ``getok eval`` invocation: defaults, the YAML, the
    ``key=value`` overrides, then the flags given (:data:`CONFIG_FLAGS`, :data:`NEGATED_FLAGS`)."""

    path, overrides = None, []
    for item in args.settings:
        if "=" in item:
            overrides.append(item)
        elif item.endswith((".yaml", ".yml")) and path is None:
            path = item
        else:
            raise ConfigError(f"getok eval: {item!r} is neither a CONFIG.yaml (one at most) nor a key=value override")
    flags = {f: getattr(args, f) for f in CONFIG_FLAGS if getattr(args, f) is not None}
    flags.update({field: not getattr(args, flag) for flag, field in NEGATED_FLAGS.items() if getattr(args, flag) is not None})
    cfg = load_config(EvalRunConfig, path, overrides)
    return dataclasses.replace(cfg, **flags) if flags else cfg  # validated again


def cmd_eval(args) -> int:
    cfg = eval_config(args)  # a bad setting fails here, before the model loads
    if args.dry_run:
        print(json.dumps({"model": str(args.model), "data": str(args.data), "out": str(args.out), **config_to_dict(cfg)}, indent=1))
        return 0
    summary = evaluate_path(
        args.model, args.data, out_dir=args.out, resume=not args.no_resume, progress=not args.quiet,
        dtype=args.dtype, device=args.device, **config_to_dict(cfg),
    )  # fmt: skip
    print((Path(args.out) / SUMMARY_MD).read_text())
    o = summary["overall"]
    print(json.dumps({"out": str(args.out), "n": o["n"], "gIoU": o["gIoU"], "cIoU": o["cIoU"], "invalid_rate": o["invalid_rate"]}))
    return 0


def cmd_viz(args) -> int:
    ids = [s for s in args.ids.split(",") if s] if args.ids else None
    res = render_run(args.run, args.out, limit=args.limit, ids=ids, progress=not args.quiet, dpi=args.dpi)
    print(json.dumps({"out": res["out"], "index": res["index"], "rendered": len(res["pngs"]), "skipped": len(res["skipped"])}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok.eval.cli``): ``eval`` and ``viz``."""

    return cli_main(argv, modules=['getok.eval.cli'])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
