"""``getok build …`` and ``getok export …``: the data builders on the command line.

::

    getok build scenes --n 1000 --seed 0 --out runs/scenes
    getok build tasks --scenes 1000 --codec grid:n=32 --out runs/tasks-grid
    getok build tasks --data ../shared/data/real-dev --codec text_coords --out runs/real-dev-text
    getok build tasks --coco instances_val2017.json --image-root val2017 --codec bins --out runs/coco
    getok export sft --data runs/tasks-grid --out runs/sft-grid

The ``build`` group: scenes, tasks, grid tokens, offsets, polygons (the last three's parsers are in
:mod:`getok.data_builders.cli_builders`). The ``export`` group: one command per trainer format (EasyR1's rows
are RL data: ``getok rl export-easyr1``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..cli.main import check_counts
from ..cli.main import main as cli_main
from ..codecs.base import get_codec
from ..errors import DataError
from . import sources
from .cli_builders import add_build_commands, scene_size
from .dataset import build_dataset
from .export import export_dataset
from .greedy import GreedyGeometryFn
from .scenes import SceneConfig, write_scenes
from .tasks import TaskConfig

__all__ = ["register", "main"]

log = logging.getLogger("getok.data_builders.cli")

def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _add_scene_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("procedural scenes")
    g.add_argument("--size", type=scene_size, default=(112, 112), help="image size N or H,W (default 112)")
    g.add_argument("--min-objects", type=int, default=2)
    g.add_argument("--max-objects", type=int, default=6)
    g.add_argument("--background", default="mixed", choices=["plain", "noise", "texture", "mixed"])


def _scene_config(args):
    return SceneConfig(
        size=args.size, min_objects=args.min_objects, max_objects=args.max_objects, background=args.background
    )


def cmd_build_scenes(args) -> int:
    check_counts(args, "--n", "--workers")

    out = write_scenes(
        args.out, args.n, args.seed, _scene_config(args), workers=args.workers, overwrite=args.overwrite,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"wrote {args.n} scenes to {out}")
    return 0


def _load_images(args):
    if args.data:
        root = Path(args.data)
        mp = root / "manifest.json"
        if mp.is_file() and mp.read_text(errors="replace").lstrip().startswith("{"):
            raise DataError(
                f"{mp} is not an image manifest (a JSON list): is {root} a task dataset already? "
                "--data takes a source such as the output of 'getok build scenes' or ../shared/data/real-dev"
            )
        return sources.load_manifest(root, include_crowd=args.include_crowd, strict=args.strict)
    if args.coco:
        if not args.image_root:
            raise DataError("--coco needs --image-root")
        return sources.load_coco(args.coco, args.image_root, include_crowd=args.include_crowd, strict=args.strict)
    if args.refs:
        if not (args.instances and args.image_root):
            raise DataError("--refs needs --instances and --image-root")
        return sources.load_refer(
            args.refs, args.instances, args.image_root, split=args.split, include_crowd=args.include_crowd,
            strict=args.strict,
        )  # fmt: skip
    if args.reasonseg:
        return sources.load_reasonseg(args.reasonseg, strict=args.strict)
    return None


def cmd_build_tasks(args) -> int:
    check_counts(args, "--scenes", "--workers", "--expressions-per-object")

    cfg_kwargs = {"seed": args.seed, "think": args.think, "expressions_per_object": args.expressions_per_object,
                  "strict": bool(getattr(args, "strict", False))}  # fmt: skip
    if args.tasks:  # "text>mask" or, without shell quoting, "text2mask"
        cfg_kwargs["tasks"] = tuple(t if ">" in t else t.replace("2", ">", 1) for t in _csv(args.tasks))
    if args.absent_categories:
        cfg_kwargs["absent_categories"] = True
    cfg = TaskConfig(**cfg_kwargs)
    geometry_fn = None
    if args.proposer:
        n = getattr(get_codec(args.codec).config, "n", None)
        if n is None:
            raise DataError(f"--proposer needs a grid codec (with n), got {args.codec!r}")
        geometry_fn = GreedyGeometryFn(args.proposer, n=n, cache_dir=args.cache)
    common = {
        "cfg": cfg,
        "geometry_fn": geometry_fn,
        "workers": args.workers,
        "copy_images": args.copy_images,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
    }
    if args.scenes is not None:
        out = build_dataset(
            args.out, args.codec, scenes=(args.scenes, args.scene_seed), scene_config=_scene_config(args), **common
        )
    else:
        images = _load_images(args)
        if images is None:
            raise DataError("give a source: --scenes N, --data DIR, --coco JSON, --refs JSON or --reasonseg DIR")
        out = build_dataset(args.out, args.codec, images=images, **common)
    man = json.loads((Path(out) / "manifest.json").read_text())
    c = man["counts"]
    print(f"wrote {c['samples']} samples over {c['images']} images to {out} ({c['skipped']} skipped)")
    for task, n in c["per_task"].items():
        print(f"  {task:14s} {n}")
    return 0


def cmd_export(args) -> int:
    check_counts(args, *(["--num-proc"] if hasattr(args, "num_proc") else []))

    kwargs = {"overwrite": args.overwrite}
    if args.format != "sharegpt" and args.format != "llava":
        kwargs.update(embed_images=not args.image_paths, num_proc=args.num_proc, progress=not args.quiet)
    out = export_dataset(args.format, args.data, args.out, **kwargs)
    man = json.loads((Path(out) / "manifest.json").read_text())
    print(f"exported {man['export']['rows']} rows ({args.format}) to {out}")
    return 0


def register(subparsers) -> None:
    """Add ``build`` and ``export`` to the ``getok`` CLI."""
    build = subparsers.add_parser("build", help="build data: procedural scenes, query tasks, ...")
    bsub = build.add_subparsers(dest="build_command", metavar="WHAT")
    build.set_defaults(func=lambda args: (build.print_help(), 1)[1])

    p = bsub.add_parser("scenes", help="generate procedural scenes (PNG + manifest.json)")
    p.add_argument("--n", type=int, required=True, help="number of scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    _add_scene_args(p)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build_scenes)

    p = bsub.add_parser("tasks", help="query tasks (text/point/box → point/box/mask/polyline) in a codec")
    src = p.add_argument_group("source (one of)")
    src.add_argument("--data", help="directory with a real-dev style manifest.json (e.g. from 'build scenes')")
    src.add_argument("--scenes", type=int, help="generate N procedural scenes on the fly")
    src.add_argument("--coco", help="COCO instances JSON (with --image-root)")
    src.add_argument("--refs", help="refer-style refs JSON (with --instances, --image-root; --split)")
    src.add_argument("--reasonseg", help="ReasonSeg split directory")
    src.add_argument("--instances", help="instances.json of a refer dataset")
    src.add_argument("--image-root", help="image directory of --coco / --refs")
    src.add_argument("--split", help="refer split to keep (train, val, testA, ...)")
    src.add_argument("--scene-seed", type=int, default=0, help="series seed of --scenes")
    src.add_argument("--include-crowd", action="store_true", help="keep COCO crowd regions as objects")
    src.add_argument("--strict", action="store_true", help="stop at the first bad record instead of skipping it")
    _add_scene_args(p)
    p.add_argument("--codec", required=True, help="codec spec, e.g. grid:n=32, text_coords, grid_offset:n=32")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--tasks", help="comma-separated tasks, 'text>mask' or 'text2mask' (default: text, point, box, multi, none)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of template / expression choices")
    p.add_argument("--think", action="store_true", help="wrap answers in <think>…</think><answer>…</answer>")
    p.add_argument("--expressions-per-object", type=int, default=1)
    p.add_argument("--absent-categories", action="store_true", help="no-target questions from absent categories")
    p.add_argument(
        "--proposer",
        "--greedy",
        dest="proposer",
        metavar="PROPOSER",
        help="mask answers as greedy grid cells over this proposer ('exact' for scenes, 'superpixel', 'sam:...'), "
        "as `build grid-tokens --proposer` (--greedy: the old name)",
    )
    p.add_argument("--cache", "--proposal-cache", dest="cache", help="directory caching the point masks of --proposer (--proposal-cache: its former name)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--copy-images", action="store_true", help="copy source images into the dataset")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_build_tasks)

    add_build_commands(bsub)

    export = subparsers.add_parser("export", help="export a task dataset for a trainer")
    esub = export.add_subparsers(dest="export_format", metavar="FORMAT")
    export.set_defaults(func=lambda args: (export.print_help(), 1)[1])
    helps = {
        "sft": "TRL SFT: messages + images parquet",
        "sharegpt": "LLaVA / ShareGPT JSON (LlamaFactory, ms-swift)",
        "hf": "Hugging Face datasets parquet with every sample field",
    }
    for name, text in helps.items():
        q = esub.add_parser(name, help=text)
        q.add_argument("--data", required=True, help="task dataset directory (from 'getok build tasks')")
        q.add_argument("--out", required=True)
        if name != "sharegpt":
            q.add_argument("--image-paths", action="store_true", help="store image paths instead of bytes")
            q.add_argument("--num-proc", type=int, default=None, help="processes reading images")
        q.add_argument("--overwrite", action="store_true")
        q.add_argument("--quiet", action="store_true")
        q.set_defaults(func=cmd_export, format=name)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok.data_builders.cli``) with just these commands."""

    return cli_main(argv, modules=['getok.data_builders.cli'])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
