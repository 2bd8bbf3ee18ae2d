"""``getok build grid-tokens | offsets | polygons``: datasets of greedy grid tokens, offset refinements and
polygon outlines.

Each command reads images with instance masks — a real-dev style manifest (``--data DIR``) or procedural
scenes (``--scenes N --seed S``) — makes one sample per object (``--per-object`` for offsets) and writes a
dataset directory (``samples.jsonl``, ``manifest.json`` with codec, layout hash, builder settings, counts
and skipped items, ``images/`` for scene pixels) atomically with
:func:`getok.data_builders.dataset.write_dataset`. Objects that cannot be used (empty mask, …) and
images that cannot be read are skipped, counted and named in the manifest.

Wiring: :mod:`getok.data_builders.cli` owns the ``build`` group and calls :func:`add_build_commands`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..cli.main import check_counts
from ..codecs import get_codec
from ..errors import ConfigError, DataError, GetokError
from ..geometry import Geometry
from ..ops.masks import rle_encode
from ..samples import IMAGE_PLACEHOLDER, Sample, Turn
from .dataset import write_dataset
from .greedy import GreedyConfig, GreedyGeometryFn, greedy_cells
from .offsets import OffsetConfig, offset_sample
from .polygons import PolygonTargetConfig, polygon_sample
from .scenes import SceneConfig, iter_scenes
from .sources.manifest import load_manifest
from .tasks import SampleList, image_ref

__all__ = [
    "add_build_commands",
    "add_grid_tokens_command",
    "add_offsets_command",
    "add_polygons_command",
    "build_grid_tokens",
    "build_offsets",
    "build_polygons",
    "iter_images",
]

log = logging.getLogger(__name__)


def scene_size(text: str) -> tuple[int, int]:
    """``N`` or ``H,W`` (also ``HxW``) as ``(H, W)`` — the one spelling of a size on the command line.

    >>> scene_size("112"), scene_size("96,128"), scene_size("96x128")
    ((112, 112), (96, 128), (96, 128))
    """
    parts = [int(v) for v in text.lower().replace("x", ",").split(",") if v.strip()]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"size must be N or H,W, got {text!r}")


def _common(p: argparse.ArgumentParser, codec: str) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="directory with a real-dev style manifest.json and its images")
    src.add_argument("--scenes", type=int, metavar="N", help="generate N procedural scenes instead")
    p.add_argument("--seed", type=int, default=0, help="scene series and sampling seed (default 0)")
    p.add_argument("--size", type=scene_size, dest="size", help="scene size N or H,W in pixels (as `build scenes`)")
    p.add_argument("--scene-size", type=int, nargs=2, dest="size", metavar=("H", "W"), help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, help="use at most this many images")
    p.add_argument("--codec", default=codec, help=f"answer codec spec (default {codec})")
    p.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars")


def add_build_commands(build_subparsers) -> None:
    """Add the ``grid-tokens``, ``offsets`` and ``polygons`` parsers to a ``build`` group's sub-parsers."""
    add_grid_tokens_command(build_subparsers)
    add_offsets_command(build_subparsers)
    add_polygons_command(build_subparsers)


def add_grid_tokens_command(build_subparsers) -> None:
    """``build grid-tokens``."""
    p = build_subparsers.add_parser("grid-tokens", help="greedy grid-token answers (text > mask)")
    _common(p, "grid:n=32")
    p.add_argument("--proposer", help="proposer spec (default: exact for scenes, superpixel for --data)")
    p.add_argument("--cache", type=Path, help="point-mask cache directory (resumable)")
    p.add_argument("--tau", type=float, default=0.9, help="stop at this IoU (default 0.9)")
    p.add_argument("--max-cells", type=int, default=64, help="token cap per object (default 64)")
    p.set_defaults(func=_run_grid_tokens)


def add_offsets_command(build_subparsers) -> None:
    """``build offsets``."""
    p = build_subparsers.add_parser("offsets", help="two-turn offset / <DELETE> refinement samples")
    _common(p, "grid_offset:n=32,r=1,step=0.5")
    p.add_argument("--proposer", help="proposer for the true (greedy) cells (default: exact for scenes, none "
                   "for --data: the cells whose grid point lies on the mask)")
    p.add_argument("--cache", type=Path, help="point-mask cache directory")
    p.add_argument("--k", type=int, default=16, help="proposed cells per sample (default 16)")
    p.add_argument("--per-object", type=int, default=1, help="samples per object (default 1)")
    p.add_argument("--band-weights", type=float, nargs=4, metavar=("IN", "RING", "FAR", "HARD"),
                   help="band weights of the subsampling (default 0.35 0.35 0.1 0.2)")
    p.set_defaults(func=_run_offsets)


def add_polygons_command(build_subparsers) -> None:
    """``build polygons``."""
    p = build_subparsers.add_parser("polygons", help="polygon outlines (SimpleSeg)")
    _common(p, "polygon:vertex=text,eps=0.01")
    p.add_argument("--min-area", type=float, default=0.0, help="drop parts smaller than this (pixels)")
    p.set_defaults(func=_run_polygons)


# ---------------------------------------------------------------------------------------------------- inputs
def iter_images(data: Path | None = None, scenes: int | None = None, seed: int = 0, scene_size=None, limit=None):
    """Images for a build: a manifest's records or procedural scenes, plus the loader's skips and source.

    Returns ``(images, skipped, source)``; scenes are generated lazily.
    """
    if (data is None) == (scenes is None):
        raise ConfigError("give exactly one of --data DIR or --scenes N")
    if scenes is not None and scenes < 1:
        raise ConfigError(f"--scenes must be >= 1, got {scenes}")
    if limit is not None and limit < 1:  # 0 would silently mean "all"
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    if data is not None:
        coll = load_manifest(data)
        images: Iterable = list(coll)[: limit or None]
        return images, list(coll.skipped), getattr(coll, "source", {"loader": "manifest", "root": str(data)})

    cfg = SceneConfig(size=tuple(scene_size)) if scene_size else SceneConfig()
    count = min(scenes, limit) if limit else scenes
    return iter_scenes(count, seed, cfg), [], {"loader": "scenes", "n": count, "seed": seed, "config": cfg.to_dict()}


def _query(obj) -> str:
    return obj.expressions[0] if obj.expressions else f"the {obj.category}"


def _objects(images, out, progress: bool, desc: str) -> Iterator:
    """``(image, image_ref, obj, mask)`` for every usable object; problems become counted skips."""
    from tqdm.auto import tqdm

    for im in tqdm(images, disable=not progress, desc=desc, unit="image"):
        try:
            ref, in_memory = image_ref(im)
            if in_memory:
                out.images[im.image_id] = im
        except GetokError as exc:
            out.skip(f"image {im.image_id}", str(exc))
            continue
        for obj in im.objects:
            try:
                m = obj.get_mask()
                if not m.any():
                    raise DataError("empty mask")
            except GetokError as exc:
                out.skip(f"{im.image_id}/{obj.id}", str(exc))
                continue
            yield im, ref, obj, m


def _write(out, args, builder: dict, skipped: list, source: dict) -> int:
    path = write_dataset(
        out,
        args.out,
        {"builder": builder, "sources": [source], "skipped": skipped},
        overwrite=args.overwrite,
    )
    print(f"wrote {len(out)} samples to {path} ({len(out.skipped) + len(skipped)} skipped)")
    return 0


# ---------------------------------------------------------------------------------------------------- builders
def build_grid_tokens(images, codec: str, proposer: str, *, cfg=None, cache=None, progress=True):
    """``text>mask`` samples whose answers are greedy grid cells. Returns a ``SampleList``."""

    c = get_codec(codec)
    n = getattr(c.config, "n", None)
    if n is None:
        raise ConfigError(f"grid tokens need a grid codec (grid / grid_offset), got {c.spec}")
    fn = GreedyGeometryFn(proposer, n=n, cfg=cfg, cache_dir=cache)
    out = SampleList(settings={"codec": c.spec})
    for im, ref, obj, m in _objects(images, out, progress, "grid tokens"):
        try:
            stack = fn.stack_for(im)
            res = greedy_cells(m, stack, fn.cfg)
        except GetokError as exc:
            out.skip(f"{im.image_id}/{obj.id}", str(exc))
            continue
        g = Geometry(size=m.shape, cells=res.cells, grid_n=n, mask=m, label=obj.category)
        q = _query(obj)
        out.append(
            Sample(
                sample_id=f"{im.image_id}:{obj.id}:grid",
                image_id=im.image_id,
                image=ref,
                size=m.shape,
                task="text>mask",
                kind="mask",
                codec=c.spec,
                turns=[Turn(f"{IMAGE_PLACEHOLDER}Segment {q}.", c.encode([g], kind="mask"))],
                truth={"size": list(m.shape), "masks": [rle_encode(m)], "boxes": [obj.get_box().tolist()]},
                meta={"query": q, "category": obj.category, "greedy_iou": round(res.iou, 4), "fallback": res.fallback},
            )
        )
    return out


def _union_of_objects(im) -> np.ndarray:
    """Union of the masks of an image's objects that decode (the distractor region of offset samples)."""
    union = np.zeros(im.size, dtype=bool)
    for o in im.objects:
        try:
            union |= o.get_mask()
        except GetokError:
            continue  # reported when that object itself comes up
    return union


def build_offsets(images, codec: str, proposer: str | None, *, cfg=None, cache=None, per_object=1, seed=0, progress=True):
    """Two-turn refinement samples (:func:`~getok.data_builders.offsets.offset_sample`); true cells from the
    greedy conversion on ``proposer``'s point masks, or the cells on the mask when ``proposer`` is None."""

    cfg = cfg or OffsetConfig()
    if per_object < 1:
        raise ConfigError(f"per_object must be >= 1, got {per_object}")
    fn = None
    if proposer is not None:
        fn = GreedyGeometryFn(proposer, n=get_codec(codec).config.n, cache_dir=cache)
    rng = np.random.default_rng(seed)
    out = SampleList(settings={"codec": codec})
    last = (None, None)
    for im, ref, obj, m in _objects(images, out, progress, "offsets"):
        try:
            if last[0] != im.image_id:
                last = (im.image_id, _union_of_objects(im))
            true = greedy_cells(m, fn.stack_for(im), fn.cfg).cells if fn is not None else None
            for j in range(per_object):
                out.append(
                    offset_sample(
                        m, codec, sample_id=f"{im.image_id}:{obj.id}:refine{j}", image_id=im.image_id, image=ref,
                        query=_query(obj), cfg=cfg, true_cells=true, distractor_mask=last[1], rng=rng,
                        meta={"category": obj.category},
                    )
                )
        except GetokError as exc:
            out.skip(f"{im.image_id}/{obj.id}", str(exc))
    return out


def build_polygons(images, codec: str, *, cfg=None, progress=True):
    """One-turn polygon samples (:func:`~getok.data_builders.polygons.polygon_sample`)."""

    out = SampleList(settings={"codec": codec})
    for im, ref, obj, m in _objects(images, out, progress, "polygons"):
        try:
            out.append(
                polygon_sample(
                    m, codec, sample_id=f"{im.image_id}:{obj.id}:polygon", image_id=im.image_id, image=ref,
                    query=_query(obj), cfg=cfg, meta={"category": obj.category},
                )
            )
        except GetokError as exc:
            out.skip(f"{im.image_id}/{obj.id}", str(exc))
    return out


# ---------------------------------------------------------------------------------------------------- commands
def _check_counts(args, *flags: str) -> None:
    """``--scenes`` / ``--limit`` and the command's own ``flags`` must be >= 1 (one line, exit 2; before any work)."""

    check_counts(args, "--scenes", "--limit", *flags)


def _default_proposer(args) -> str:
    return args.proposer or ("exact" if args.scenes is not None else "superpixel")


def _run_grid_tokens(args) -> int:

    _check_counts(args, "--max-cells")
    images, skipped, source = iter_images(args.data, args.scenes, args.seed, args.size, args.limit)
    proposer = _default_proposer(args)
    cfg = GreedyConfig(tau=args.tau, max_cells=args.max_cells)
    out = build_grid_tokens(images, args.codec, proposer, cfg=cfg, cache=args.cache, progress=not args.quiet)
    builder = {"command": "build grid-tokens", "proposer": proposer, "greedy": asdict(cfg)}
    return _write(out, args, builder, skipped, source)


def _run_offsets(args) -> int:

    _check_counts(args, "--k", "--per-object")
    images, skipped, source = iter_images(args.data, args.scenes, args.seed, args.size, args.limit)
    proposer = args.proposer or ("exact" if args.scenes is not None else None)
    kw = {"k": args.k}
    if args.band_weights:
        kw["band_weights"] = tuple(args.band_weights)
    cfg = OffsetConfig(**kw)
    out = build_offsets(
        images, args.codec, proposer, cfg=cfg, cache=args.cache, per_object=args.per_object, seed=args.seed,
        progress=not args.quiet,
    )
    builder = {"command": "build offsets", "proposer": proposer, "offsets": asdict(cfg), "seed": args.seed}
    return _write(out, args, builder, skipped, source)


def _run_polygons(args) -> int:

    _check_counts(args)
    images, skipped, source = iter_images(args.data, args.scenes, args.seed, args.size, args.limit)
    cc = get_codec(args.codec).config
    if not hasattr(cc, "eps"):
        raise ConfigError(f"polygons need a polygon codec, got {args.codec}")
    cfg = PolygonTargetConfig(eps=cc.eps, holes=cc.holes, min_area=args.min_area, max_polygons=cc.max_polygons or None)
    out = build_polygons(images, args.codec, cfg=cfg, progress=not args.quiet)
    return _write(out, args, {"command": "build polygons", "polygons": asdict(cfg)}, skipped, source)
