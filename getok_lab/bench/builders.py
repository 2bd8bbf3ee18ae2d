"""``getok bench builders``: how fast the data builders turn masks into targets, on one core.

For each dataset — the real-dev photographs (``--data DIR``, a real-dev style manifest) and procedural
scenes at real-dev size (``--scenes N``, default 20 scenes of 480 x 640) — point masks are computed once into
a point-mask cache (not timed: that is the slow, cached step), then per image:

* **floor** — reading the image's point-mask stack back from the cache once (JSON + RLE decode): the cost
  every builder pays per image before it can convert a single mask;
* **greedy** — :func:`~getok.data_builders.greedy.greedy_cells` for every object (masks/s; target >= 200);
* **offsets** — :func:`~getok.data_builders.offsets.offset_sample` for every object, true cells from the
  greedy step, distractors from the other objects (samples/s; target >= 1000);
* **polygons** — :func:`~getok.data_builders.polygons.polygon_sample` in SimpleSeg's text format
  (polygons/s; target >= 500).

Each rate is reported beside the floor (per image and per mask) and, for greedy, also with the floor
included. There are no SAM weights on the benchmark machine, so real-dev point masks come from the
weight-free :class:`~getok.data_builders.proposers.SuperpixelProposer`; scenes use their exact regions.
OpenCV is limited to one thread; everything else here is single-threaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from getok.io import atomic_write_json

__all__ = ["run_builders_bench", "register_bench", "run", "main", "TARGETS"]

#: One-core targets (issue 4, item 9).
TARGETS = {"greedy_masks_per_s": 200, "offset_samples_per_s": 1000, "polygons_per_s": 500}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _load_real_dev(root: Path, limit: int | None):
    """``[(image_id, pixels, [masks])]`` from a manifest (the sources loader, or pycocotools directly)."""
    try:
        from getok.data_builders.sources.manifest import load_manifest
    except ImportError:  # pragma: no cover - the loader is part of the package
        load_manifest = None
    out = []
    if load_manifest is not None:
        for im in list(load_manifest(root))[: limit or None]:
            masks = [o.get_mask() for o in im.objects]
            out.append((im.image_id, im.get_image(), [m for m in masks if m.any()]))
        return out
    import json  # pragma: no cover

    from pycocotools import mask as mu  # pragma: no cover

    from getok.records import load_image_rgb  # pragma: no cover

    for rec in json.loads((root / "manifest.json").read_text())[: limit or None]:  # pragma: no cover
        h, w = rec["height"], rec["width"]
        masks = []
        for o in rec["objects"]:
            seg = o["segmentation"]
            rle = mu.merge(mu.frPyObjects(seg, h, w)) if isinstance(seg, list) else mu.frPyObjects(seg, h, w)
            masks.append(mu.decode(rle).astype(bool))
        out.append((rec["image"], load_image_rgb(root / rec["image"]), [m for m in masks if m.any()]))
    return out


def _load_scenes(count: int, size, seed: int):
    """``[(image_id, pixels, [masks], label_map)]`` of procedural scenes."""
    from getok.data_builders.scenes import SceneConfig, generate_scenes, label_map_from_objects

    out = []
    for im in generate_scenes(count, seed=seed, cfg=SceneConfig(size=tuple(size), min_objects=3, max_objects=8)):
        masks = [o.get_mask() for o in im.objects]
        out.append((im.image_id, im.get_image(), [m for m in masks if m.any()], label_map_from_objects(im)))
    return out


class _Clock:
    """Accumulates CPU time (``process_time``: this process on one core, unaffected by other processes
    sharing the machine) and wall time per named section."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def __call__(self, name: str):
        import contextlib

        @contextlib.contextmanager
        def section():
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                yield
            finally:
                self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0

        return section()


def _bench_dataset(items, proposer_for, n: int, cache_root: Path, seed: int) -> dict:
    """Time floor / greedy / offsets / polygons over ``items`` ``(image_id, pixels, masks, ...)``."""
    import cv2

    from getok.codecs import get_codec
    from getok.data_builders.cache import PointMaskCache, cache_key
    from getok.data_builders.greedy import GreedyConfig, greedy_cells
    from getok.data_builders.offsets import OffsetConfig, offset_sample
    from getok.data_builders.polygons import polygon_sample
    from getok.provenance import image_hash

    cv2.setNumThreads(1)
    cache = PointMaskCache(cache_root)
    off_codec = get_codec(f"grid_offset:n={n},r=1,step=0.5")
    poly_codec = get_codec("polygon:vertex=text,eps=0.01")
    gcfg, ocfg = GreedyConfig(), OffsetConfig()
    rng = np.random.default_rng(seed)

    # point masks into the cache (the slow, cached step; timed only for information)
    t_prop, computed, paths = 0.0, 0, []
    for it in items:
        img, prop = it[1], proposer_for(it)
        key = cache_key(image_hash(img), prop.name, prop.settings(), n)
        path = cache.path(key, prop.name)
        if not path.is_file():
            t0 = time.perf_counter()
            cache.save(img, prop, n, prop.propose(img, n))
            t_prop += time.perf_counter() - t0
            computed += 1
        paths.append(path)

    # warm-up (imports, caches) on the first object, not timed
    st0 = cache.load_path(paths[0])
    m0 = items[0][2][0]
    greedy_cells(m0, st0, gcfg)
    offset_sample(m0, off_codec, sample_id="w", image_id="w", image="w", query="w", cfg=ocfg, rng=rng)
    polygon_sample(m0, poly_codec, sample_id="w", image_id="w", image="w", query="w")
    del st0

    clock = _Clock()
    n_masks = 0
    ious, cells, fallbacks, unique = [], [], 0, []
    for it, path in zip(items, paths):
        image_id, masks = it[0], it[2]
        with clock("floor"):
            stack = cache.load_path(path)  # lazy: JSON + RLE strings (what greedy needs)
        unique.append(stack.num_masks)
        with clock("greedy"):
            results = [greedy_cells(m, stack, gcfg) for m in masks]
        ious += [r.iou for r in results]
        cells += [len(r.cells) for r in results]
        fallbacks += sum(r.fallback for r in results)
        union = np.zeros(stack.size, dtype=bool)
        for m in masks:
            union |= m
        with clock("offsets"):
            for j, (m, r) in enumerate(zip(masks, results)):
                offset_sample(
                    m, off_codec, sample_id=f"{image_id}:{j}", image_id=image_id, image="x", query="the object",
                    cfg=ocfg, true_cells=r.cells, distractor_mask=union, rng=rng,
                )
        with clock("polygons"):
            for j, m in enumerate(masks):
                polygon_sample(m, poly_codec, sample_id=f"{image_id}:{j}", image_id=image_id, image="x", query="the object")
        with clock("dense_decode"):
            _ = stack.masks  # the full (U, H, W) masks, for reference (a decoder needs them)
        n_masks += len(masks)
        del stack, _

    n_img = len(items)
    t_floor, t_greedy, t_off, t_poly = (clock.cpu[k] for k in ("floor", "greedy", "offsets", "polygons"))
    floor_img_ms = 1e3 * t_floor / n_img
    floor_mask_ms = 1e3 * t_floor / n_masks
    floor = {
        "stack_read_ms_per_image": round(floor_img_ms, 3),
        "stack_read_ms_per_mask": round(floor_mask_ms, 3),
        "stacks_per_s": round(n_img / t_floor, 1),
        "dense_decode_ms_per_image": round(1e3 * clock.cpu["dense_decode"] / n_img, 3),
        "what": "reading one image's point-mask stack from the cache (JSON + compressed RLE strings; masks are "
        "decoded lazily, dense_decode_ms_per_image is what decoding all of them costs on top)",
    }

    def rate(t):
        return round(n_masks / t, 1)

    return {
        "images": n_img,
        "masks": n_masks,
        "image_size": list(items[0][1].shape[:2]),
        "n": n,
        "proposals": {  # the point masks; the key keeps its former name (committed results, tables.py)
            "unique_masks_per_image": round(float(np.mean(unique)), 1),
            "computed_now": computed,
            "compute_s_per_image": round(t_prop / computed, 3) if computed else None,
        },
        "floor": floor,
        "wall_s": {k: round(v, 3) for k, v in clock.wall.items()},
        "greedy": {
            "masks_per_s": rate(t_greedy),
            "masks_per_s_incl_floor": rate(t_greedy + t_floor),
            "ms_per_mask": round(1e3 * t_greedy / n_masks, 3),
            "floor_ms_per_mask": round(floor_mask_ms, 3),
            "target_masks_per_s": TARGETS["greedy_masks_per_s"],
            "meets_target": n_masks / t_greedy >= TARGETS["greedy_masks_per_s"],
            "tau": gcfg.tau,
            "max_cells": gcfg.max_cells,
            "mean_iou": round(float(np.mean(ious)), 4),
            "median_iou": round(float(np.median(ious)), 4),
            "mean_cells": round(float(np.mean(cells)), 2),
            "fallbacks": int(fallbacks),
        },
        "offsets": {
            "samples_per_s": rate(t_off),
            "ms_per_sample": round(1e3 * t_off / n_masks, 3),
            "floor_ms_per_mask": round(floor_mask_ms, 3),
            "target_samples_per_s": TARGETS["offset_samples_per_s"],
            "meets_target": n_masks / t_off >= TARGETS["offset_samples_per_s"],
            "k": ocfg.k,
            "codec": off_codec.spec,
            "note": "true cells from the greedy step (not re-timed); includes labels, noisy proposal, both answer "
            "strings and the RLE truth",
        },
        "polygons": {
            "polygons_per_s": rate(t_poly),
            "ms_per_polygon_sample": round(1e3 * t_poly / n_masks, 3),
            "floor_ms_per_mask": round(floor_mask_ms, 3),
            "target_polygons_per_s": TARGETS["polygons_per_s"],
            "meets_target": n_masks / t_poly >= TARGETS["polygons_per_s"],
            "codec": poly_codec.spec,
            "note": "one sample per object (all its polygons), including the RLE truth; needs no point masks",
        },
    }


def run_builders_bench(
    data: str | Path | None = None,
    scenes: int = 20,
    scene_size=(480, 640),
    n: int = 32,
    proposer: str = "superpixel",
    cache: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> dict:
    """Run the benchmark (module docstring); returns the result dict."""
    import cv2
    import skimage

    from getok.data_builders.proposers import ExactProposer, get_proposer

    result: dict = {
        "benchmark": "builders",
        "what": "masks/s of the greedy grid-token conversion given cached point masks, offset samples/s and "
        "polygon samples/s, each beside its floor (reading the image's point-mask stack from the cache once)",
        "targets_one_core": TARGETS,
        "settings": {"n": n, "proposer_real_dev": proposer, "scenes": scenes, "scene_size": list(scene_size),
                     "limit": limit, "seed": seed},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "opencv_threads": 1,
            "pycocotools": _version("pycocotools"),
            "scikit-image": skimage.__version__,
        },
        "notes": [
            "No SAM weights are available here: real-dev point masks come from the weight-free SuperpixelProposer "
            f"({proposer}); procedural scenes use ExactProposer (their label maps). Point-mask computation is "
            "not part of the rates (it is cached once per image).",
            "Rates exclude the floor unless named *_incl_floor; the floor is the same stack read for all three.",
            "Rates are items per CPU second of this (single-threaded) process (time.process_time), so other "
            "processes on a shared machine do not distort them; wall_s gives the wall-clock seconds per section.",
        ],
        "datasets": {},
    }
    tmp = None
    if cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="getok-bench-builders-")
        cache = tmp.name
    try:
        if data is not None:
            items = _load_real_dev(Path(data), limit)
            prop = get_proposer(proposer)
            res = _bench_dataset(items, lambda it: prop, n, Path(cache), seed)
            res["source"] = f"{Path(data).name} (manifest.json, {len(items)} images)"
            res["proposer"] = {"name": prop.name, "settings": prop.settings()}
            result["datasets"]["real-dev"] = res
        if scenes:
            items = _load_scenes(scenes, scene_size, seed)
            res = _bench_dataset(items, lambda it: ExactProposer(it[3]), n, Path(cache), seed)
            res["source"] = f"procedural scenes, seed {seed}"
            res["proposer"] = {"name": "exact"}
            result["datasets"]["generated"] = res
    finally:
        if tmp is not None:
            tmp.cleanup()
    return result


def run(args) -> int:
    """``getok bench builders``: run and print (and write ``--out``) the results."""
    import json

    res = run_builders_bench(
        data=args.data, scenes=args.scenes, scene_size=tuple(args.scene_size), n=args.n, proposer=args.proposer,
        cache=args.cache, limit=args.limit, seed=args.seed,
    )
    if args.out:
        atomic_write_json(args.out, res, indent=1)
    summary = {
        name: {k: d[k][r] for k, r in (("greedy", "masks_per_s"), ("offsets", "samples_per_s"), ("polygons", "polygons_per_s"))}
        | {"floor_ms_per_image": d["floor"]["stack_read_ms_per_image"]}
        for name, d in res["datasets"].items()
    }
    print(json.dumps(summary, indent=1))
    return 0


def register_bench(bench_subparsers) -> argparse.ArgumentParser:
    """Add ``builders`` to the ``getok bench`` sub-commands."""
    p = bench_subparsers.add_parser("builders", help="masks/s of the greedy, offset and polygon builders")
    p.add_argument("--data", type=Path, help="real-dev style directory (manifest.json + images)")
    p.add_argument("--out", type=Path, help="write the results JSON here")
    p.add_argument("--scenes", type=int, default=20, help="procedural scenes to add (0: none; default 20)")
    p.add_argument("--scene-size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    p.add_argument("--n", type=int, default=32, help="grid size (default 32)")
    p.add_argument("--proposer", default="superpixel", help="proposer spec for --data (default superpixel)")
    p.add_argument("--cache", type=Path, help="point-mask cache directory (default: a temporary one)")
    p.add_argument("--limit", type=int, help="at most this many real-dev images")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m getok_lab.bench.builders [--data DIR] [--out FILE] ...``."""
    parser = argparse.ArgumentParser(prog="getok bench")
    sub = parser.add_subparsers(dest="bench")
    register_bench(sub)
    import sys

    args = parser.parse_args(["builders", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
