"""``getok eval`` and ``getok viz``: evaluate a model on a dataset; render a run's overlays and HTML index.

Examples::

    getok eval --model runs/tiny_g32 --data data/scenes_val --out runs/eval_tiny --limit 64
    getok eval --model runs/sft --data data/refcoco_val --decoder sam:checkpoint=sam_vit_b.pth \\
        --out runs/eval_sft --turns 3 --constrained
    getok viz --run runs/eval_sft --limit 50

torch / transformers are imported inside the command functions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["register", "main", "cmd_eval", "cmd_viz"]


def register(subparsers) -> None:
    """Add ``eval`` and ``viz`` to the ``getok`` command line."""
    p = subparsers.add_parser("eval", help="evaluate a model on a dataset (records, summary, optional self-correction)")
    p.add_argument("--model", type=Path, required=True, help="model directory (tiny, Qwen2.5-VL, getok checkpoint)")
    p.add_argument("--data", type=Path, required=True, help="dataset directory (getok build ...)")
    p.add_argument("--out", type=Path, required=True, help="run directory (records.jsonl, summary.json, summary.md)")
    p.add_argument("--codec", default=None, help="codec that decodes the answers (default: each sample's)")
    p.add_argument("--decoder", default="raster", help="mask decoder spec (raster, proposals:proposer=..., sam:checkpoint=...)")
    p.add_argument("--turns", type=int, default=1, help="K > 1: propose, then K-1 refinement turns (grid_offset)")
    p.add_argument("--constrained", action="store_true", help="grammar-constrained decoding (every output parses)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N samples")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--empty", default="lisa", choices=("lisa", "rela", "exclude"), help="empty-target convention")
    p.add_argument("--on-invalid", default="keep", choices=("keep", "zero"), help="scoring of a refinement that does not parse")
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle refinement baseline")
    p.add_argument("--no-boundary", action="store_true", help="skip the boundary F-score")
    p.add_argument("--no-resume", action="store_true", help="start over instead of skipping recorded samples")
    p.add_argument("--dtype", default=None, help="model dtype (default: the checkpoint's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument("--seed", type=int, default=0)
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


def cmd_eval(args) -> int:
    from .runner import SUMMARY_MD, evaluate_path

    summary = evaluate_path(
        args.model, args.data, out_dir=args.out, codec=args.codec, decoder=args.decoder, turns=args.turns,
        constrained=args.constrained, limit=args.limit, batch_size=args.batch_size, empty=args.empty,
        resume=not args.no_resume, progress=not args.quiet, max_new_tokens=args.max_new_tokens,
        boundary=not args.no_boundary, on_invalid=args.on_invalid, oracle=not args.no_oracle,
        seed=args.seed, dtype=args.dtype, device=args.device,
    )  # fmt: skip
    print((Path(args.out) / SUMMARY_MD).read_text())
    o = summary["overall"]
    print(json.dumps({"out": str(args.out), "n": o["n"], "gIoU": o["gIoU"], "cIoU": o["cIoU"], "invalid_rate": o["invalid_rate"]}))
    return 0


def cmd_viz(args) -> int:
    from .viz import render_run

    ids = [s for s in args.ids.split(",") if s] if args.ids else None
    res = render_run(args.run, args.out, limit=args.limit, ids=ids, progress=not args.quiet, dpi=args.dpi)
    print(json.dumps({"out": res["out"], "index": res["index"], "rendered": len(res["pngs"]), "skipped": len(res["skipped"])}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok.eval.cli``): ``eval`` and ``viz``."""
    from ..cli.main import main as cli_main

    return cli_main(argv, modules=['getok.eval.cli'])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
