"""Decoder and metric benchmark: ``getok bench decoders --data DIR --out FILE.json``.

Three measurements:

1. **Weight-free decoders, masks/s** on real-dev-sized images (target >= 1000 masks/s). Each ground-truth
   instance becomes the answers a model would give — grid cells (``mask_to_cells``), the same cells
   refined (seeded random offsets in ``{-1, 0, 1}`` at half a cell, 10 % deleted), polygons
   (``mask_to_polygons``, eps 0.01), its box — and each answer is decoded by ``raster``; the cell answers
   also by ``point_masks`` with exact point masks (a label map of the image's instances). Only ``decode`` is
   timed; the point-mask stacks (once per image) are timed apart. The mean IoU of each decoded answer
   with the instance comes along (a sanity check, and the weight-free ceiling of each answer type).
2. **Metrics over 10^4 samples** (target < 1 s): :func:`~getok.eval.metrics.summarize` over 10^4
   records under each empty-target convention; :func:`~getok.eval.metrics.batch_records` (IoU, areas,
   boxes) over 10^4 mask pairs at 128 x 128 and at the real-dev size; the boundary F-score per sample.
3. **Cached embedding vs re-embedding**, tiny SAM / SAM 2 (random weights): ``k`` single-point prompts
   on one image with the embedding computed once, against ``k`` embeddings (one per prompt).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["bench_weight_free", "bench_metrics", "bench_prompt_cost", "run", "register_bench", "main"]


def _load_images(data_dir: str | Path | None, scenes: int, seed: int, max_images: int | None):
    """``[(image_id, size, [instance masks])]`` from a real-dev-format manifest and / or procedural scenes."""
    out = []
    if data_dir is not None:
        from getok.data_builders.sources.manifest import load_manifest

        for img in load_manifest(data_dir):
            masks = [m for m in (o.get_mask() for o in img.objects) if m.any()]
            if masks:
                out.append((str(img.image_id), tuple(img.size), masks))
    if scenes:
        from getok.data_builders.scenes import generate_scenes

        for img in generate_scenes(scenes, seed=seed):
            masks = [m for m in (o.get_mask() for o in img.objects) if m.any()]
            if masks:
                out.append((str(img.image_id), tuple(img.size), masks))
    return out[:max_images] if max_images else out


def _answers(mask: np.ndarray, n: int, rng: np.random.Generator):
    """The answers a model could give for one instance: cells, refined cells, polygons, box."""
    from getok.geometry import Geometry
    from getok.ops.boxes import mask_to_box
    from getok.ops.grid import mask_to_cells
    from getok.ops.polygons import mask_to_polygons

    size = mask.shape
    cells = mask_to_cells(mask, n)
    k = len(cells)
    offsets = rng.integers(-1, 2, (k, 2))
    deleted = rng.random(k) < 0.1
    outers, holes = mask_to_polygons(mask, 0.01, holes=True)
    return {
        "cells": Geometry(size=size, cells=cells, grid_n=n),
        "cells+offsets": Geometry(size=size, cells=cells, grid_n=n, offsets=offsets, deleted=deleted, offset_step=0.5),
        "polygons": Geometry(size=size, polygons=outers, holes=holes),
        "box": Geometry(size=size, box=mask_to_box(mask)),
    }


def _label_map(size, masks) -> np.ndarray:
    lab = np.zeros(size, dtype=np.int32)
    for k, m in enumerate(masks):
        lab[m] = k + 1  # later instances cover earlier ones (visible regions)
    return lab


class _LabelMapProposer:
    """Exact point masks of a label map (used when the data builders' ExactProposer is not available)."""

    name = "labelmap"

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def settings(self) -> dict:
        return {"name": self.name}

    def propose(self, image, n):
        from getok.data_builders.proposers.base import PointMaskStack
        from getok.ops.grid import grid_points

        h, w = self.labels.shape
        pts = grid_points(n, (h, w))
        labs = self.labels[np.minimum(pts[:, 1].astype(int), h - 1), np.minimum(pts[:, 0].astype(int), w - 1)]
        uniq, inv = np.unique(labs, return_inverse=True)
        return PointMaskStack(n=n, size=(h, w), masks=self.labels[None] == uniq[:, None, None], point_to_mask=inv)


def _exact_proposer(labels: np.ndarray):
    try:
        from getok.data_builders.proposers import ExactProposer
    except ImportError:
        return _LabelMapProposer(labels)
    return ExactProposer(labels)


def bench_weight_free(images, n: int = 32, seed: int = 0) -> dict:
    """Masks/s and mean IoU of ``raster`` and ``point_masks`` per answer type (see the module docstring)."""
    from getok.decoding import get_decoder
    from getok.ops.masks import mask_iou

    rng = np.random.default_rng(seed)
    timing: dict[tuple[str, str], list[float]] = {}
    ious: dict[tuple[str, str], list[float]] = {}
    stack_s = []
    raster = get_decoder("raster")
    sizes = []
    for image_id, size, masks in images:
        sizes.append(size)
        blank = np.zeros((*size, 3), dtype=np.uint8)  # the decoders here never look at pixels
        proposer = _exact_proposer(_label_map(size, masks))
        decoders = {"raster": raster}
        for refined in ("lookup", "cover"):
            if refined == "lookup" and not callable(getattr(proposer, "propose_at", None)):
                continue
            dec = get_decoder("point_masks", proposer=proposer, refined=refined, cache_size=1)
            dec.set_image(blank, key=image_id)
            t = time.perf_counter()
            dec.stack(n)
            stack_s.append(time.perf_counter() - t)
            decoders[f"point_masks (refined={refined})"] = dec
        raster.set_image(None, size=size)
        for m in masks:
            for kind, g in _answers(m, n, rng).items():
                for name, dec in decoders.items():
                    if name != "raster" and not kind.startswith("cells"):
                        continue
                    if name.endswith("lookup)") and kind == "cells":
                        continue  # unmoved cells never use the lookup: the same as refined=cover
                    t = time.perf_counter()
                    out = dec.decode(g)
                    timing.setdefault((name, kind), []).append(time.perf_counter() - t)
                    ious.setdefault((name, kind), []).append(mask_iou(out, m))
    rows = []
    for (name, kind), ts in timing.items():
        total = float(np.sum(ts))
        rows.append({
            "decoder": name.replace(" (refined=cover)", "") if kind == "cells" else name,
            "answer": kind,
            "masks": len(ts),
            "masks_per_s": len(ts) / total if total > 0 else None,
            "ms_per_mask": 1e3 * total / len(ts),
            # random offsets are a speed test, not a refinement: their IoU would mean nothing
            "mean_iou_vs_instance": None if kind == "cells+offsets" else float(np.mean(ious[(name, kind)])),
        })
    hw = np.array(sizes)
    return {
        "grid_n": n,
        "images": len(images),
        "instances": sum(len(m) for _, _, m in images),
        "mean_size_hw": hw.mean(axis=0).round(1).tolist() if len(hw) else None,
        "answers": "cells = mask_to_cells(n); cells+offsets = the same cells with seeded random offsets in "
        "{-1,0,1} at step 0.5 and 10% deleted; polygons = mask_to_polygons(eps 0.01, holes); box = mask_to_box",
        "proposer": getattr(_exact_proposer(np.zeros((2, 2), np.int32)), "name", "?")
        + " (exact regions: label map of the image's instances)",
        # the point-mask stacks; the key keeps its former name (committed results, tables.py)
        "proposal_stack_ms_per_image": 1e3 * float(np.mean(stack_s)) if stack_s else None,
        "rows": rows,
        "target_masks_per_s": 1000,
        "meets_target": {f"{r['decoder']} / {r['answer']}": bool(r["masks_per_s"] and r["masks_per_s"] >= 1000)
                         for r in rows},
    }


def _synthetic_pairs(n: int, size: tuple[int, int], rng: np.random.Generator):
    """``n`` (pred, gt) box-shaped mask pairs of ``size``; 5 % empty targets, 5 % empty predictions."""
    h, w = size
    x1 = rng.integers(0, w // 2, n)
    y1 = rng.integers(0, h // 2, n)
    x2 = x1 + rng.integers(1, w // 2, n)
    y2 = y1 + rng.integers(1, h // 2, n)
    jit = rng.integers(-h // 10, h // 10 + 1, (n, 4))
    cols = np.arange(w)
    rows = np.arange(h)

    def boxes(a, b, c, d):
        in_c = (cols[None] >= a[:, None]) & (cols[None] < c[:, None])
        in_r = (rows[None] >= b[:, None]) & (rows[None] < d[:, None])
        return in_r[:, :, None] & in_c[:, None, :]

    gt = boxes(x1, y1, x2, y2)
    pred = boxes(x1 + jit[:, 0], y1 + jit[:, 1], x2 + jit[:, 2], y2 + jit[:, 3])
    gt[rng.random(n) < 0.05] = False
    pred[rng.random(n) < 0.05] = False
    return pred, gt


def bench_metrics(n_samples: int = 10_000, real_size: tuple[int, int] = (480, 640), seed: int = 0) -> dict:
    """Seconds for the metric computations over ``n_samples`` samples (see the module docstring)."""
    from getok.eval.boundary import boundary_f_score
    from getok.eval.metrics import EMPTY_CONVENTIONS, batch_records, summarize

    rng = np.random.default_rng(seed)
    out: dict = {"samples": n_samples, "target_s": 1.0}
    pred, gt = _synthetic_pairs(n_samples, (128, 128), rng)
    t = time.perf_counter()
    records = batch_records(pred, gt)
    out["batch_records_128px_s"] = time.perf_counter() - t
    for empty in EMPTY_CONVENTIONS:
        t = time.perf_counter()
        summarize(records, empty=empty)
        out[f"summarize_{empty}_s"] = time.perf_counter() - t
    del pred, gt
    # real-dev-sized masks, in chunks (10^4 pairs at 640 x 480 are 6 GB of bools)
    chunk = 500
    elapsed = 0.0
    for i in range(0, n_samples, chunk):
        p, g = _synthetic_pairs(min(chunk, n_samples - i), real_size, rng)
        t = time.perf_counter()  # the synthesis of the masks is not timed
        batch_records(p, g)
        elapsed += time.perf_counter() - t
    out[f"batch_records_{real_size[1]}x{real_size[0]}_s"] = elapsed
    p, g = _synthetic_pairs(min(200, n_samples), real_size, rng)
    t = time.perf_counter()
    for a, b in zip(p, g):
        boundary_f_score(a, b)
    out["boundary_f_ms_per_sample_real_size"] = 1e3 * (time.perf_counter() - t) / len(p)
    out["meets_target"] = all(out[f"summarize_{e}_s"] < 1.0 for e in EMPTY_CONVENTIONS) and out[
        "batch_records_128px_s"
    ] < 1.0
    return out


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_prompt_cost(ks=(1, 4, 16, 64), size: tuple[int, int] = (480, 640), seed: int = 0, repeats: int = 3) -> dict:
    """Tiny SAM / SAM 2: ``k`` single-point prompts on one cached embedding vs ``k`` embeddings.

    Times are the best of ``repeats`` runs. ``embed_ms`` is one ``set_image`` with a new key, ``prompt_ms``
    one single-point ``decode`` on a cached embedding; the totals are measured, not derived.
    """
    from getok.decoding.sam import SamDecoder, build_tiny_sam
    from getok.geometry import Geometry

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    h, w = size
    models = {"sam (tiny, segment_anything)": lambda: SamDecoder(model=build_tiny_sam(), cache_size=1)}
    try:
        from getok.decoding.sam2 import Sam2Decoder, build_tiny_sam2

        models["sam2 (tiny, transformers)"] = lambda: Sam2Decoder(model=build_tiny_sam2(), cache_size=1)
    except ImportError as exc:  # transformers without Sam2Model
        models["sam2 (tiny, transformers)"] = exc
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: tiny models gain nothing from more, and timings on a shared box settle
    result: dict = {"image_size_hw": list(size), "repeats": repeats, "torch_threads": 1, "rows": []}
    counter = iter(range(10**9))
    for label, make in models.items():
        if isinstance(make, Exception):
            result["rows"].append({"model": label, "skipped": str(make)})
            continue
        dec = make()
        centre = Geometry(size=size, points=[[w / 2, h / 2]])
        dec.set_image(image, key="warm-up")
        dec.decode(centre)  # warm-up (lazy torch initialisation)
        embed_ms = 1e3 * _best_of(lambda d=dec: d.set_image(image, key=f"e{next(counter)}"), 5)
        prompt_ms = 1e3 * _best_of(lambda d=dec, g=centre: d.decode(g), 5)
        for k in ks:
            pts = np.stack([rng.uniform(0, w, k), rng.uniform(0, h, k)], axis=1)
            geoms = [Geometry(size=size, points=p[None]) for p in pts]

            def cached(d=dec, gs=geoms):
                d.set_image(image, key=f"c{next(counter)}")  # one embedding
                for g in gs:
                    d.decode(g)

            def fresh(d=dec, gs=geoms):
                for g in gs:
                    d.set_image(image, key=f"f{next(counter)}")  # a new key: a new embedding per prompt
                    d.decode(g)

            c, f = _best_of(cached, repeats), _best_of(fresh, repeats)
            result["rows"].append({
                "model": label, "k": int(k), "embed_ms": embed_ms, "prompt_ms": prompt_ms,
                "cached_embedding_s": c, "k_embeddings_s": f, "speedup": f / c if c > 0 else None,
            })
    torch.set_num_threads(threads)
    result["note"] = (
        "tiny random-weight models: the embedding is cheap here, so the speed-up is small; with SAM vit_b on "
        "CPU (FACTS.md: set_image 21-39 s, ~0.1 s per prompt) k prompts cost ~30 s + 0.1 k s cached vs ~30 k s"
    )
    return result


def _environment() -> dict:
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "numpy": np.__version__, "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        env["torch"] = None
    return env


def run(args) -> int:
    from getok.errors import ConfigError
    from getok.io import atomic_write_json

    if not args.data and not args.scenes:
        raise ConfigError("give --data DIR (a manifest.json directory) and/or --scenes N")
    images = _load_images(args.data, args.scenes, args.seed, args.max_images)
    if not images:
        raise ConfigError("no images with instance masks found")
    result = {
        "benchmark": "decoders",
        "data": str(args.data) if args.data else f"{args.scenes} procedural scenes (seed {args.seed})",
        "environment": _environment(),
        "weight_free": bench_weight_free(images, n=args.n, seed=args.seed),
        "metrics": bench_metrics(args.metrics_samples, seed=args.seed),
    }
    if not args.no_sam:
        ks = tuple(int(k) for k in str(args.prompts).split(","))
        result["prompt_cost"] = bench_prompt_cost(ks, seed=args.seed)
    if args.out:
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    print(_report(result))
    return 0


def _report(result: dict) -> str:
    wf = result["weight_free"]
    lines = [
        f"weight-free decoders on {wf['images']} images ({wf['instances']} instances, mean (H, W) {wf['mean_size_hw']}), "
        f"n={wf['grid_n']}; point-mask stacks {wf['proposal_stack_ms_per_image']:.2f} ms/image",
        "| decoder | answer | masks/s | ms/mask | mean IoU vs instance |",
        "|---|---|---|---|---|",
    ]
    for r in wf["rows"]:
        iou = "–" if r["mean_iou_vs_instance"] is None else f"{r['mean_iou_vs_instance']:.3f}"
        lines.append(f"| {r['decoder']} | {r['answer']} | {r['masks_per_s']:.0f} | {r['ms_per_mask']:.3f} | {iou} |")
    m = result["metrics"]
    lines.append("")
    lines.append("metrics over {samples} samples: ".format(**m) + ", ".join(
        f"{k} {v:.3f}" for k, v in m.items() if k.endswith("_s") and k != "target_s"))
    lines.append(f"boundary F: {m['boundary_f_ms_per_sample_real_size']:.2f} ms/sample at real-dev size")
    if "prompt_cost" in result:
        lines.append("")
        lines.append("| model | k | embed (ms) | prompt (ms) | cached embedding (s) | k embeddings (s) | speed-up |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in result["prompt_cost"]["rows"]:
            if "skipped" in r:
                lines.append(f"| {r['model']} | skipped: {r['skipped']} | | | |")
                continue
            lines.append(f"| {r['model']} | {r['k']} | {r['embed_ms']:.2f} | {r['prompt_ms']:.2f} "
                         f"| {r['cached_embedding_s']:.4f} | {r['k_embeddings_s']:.4f} | {r['speedup']:.1f}x |")
    return "\n".join(lines)


def register_bench(sub) -> None:
    """Add ``decoders`` to the ``getok bench`` sub-commands."""
    p = sub.add_parser("decoders", help="masks/s of the weight-free decoders, metric speed, SAM embedding reuse")
    p.add_argument("--data", help="directory with a real-dev-format manifest.json")
    p.add_argument("--scenes", type=int, default=0, help="also (or instead) use N procedural scenes")
    p.add_argument("--max-images", type=int, default=None, help="use at most this many images")
    p.add_argument("--n", type=int, default=32, help="grid size of the cell answers")
    p.add_argument("--metrics-samples", type=int, default=10_000)
    p.add_argument("--prompts", default="1,4,16,64", help="prompt counts k for the embedding-reuse test")
    p.add_argument("--no-sam", action="store_true", help="skip the tiny SAM / SAM 2 measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the JSON result here")
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark without the ``getok`` entry point: ``python -m getok_lab.bench.decoders --data DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="getok bench")
    register_bench(parser.add_subparsers(dest="bench", required=True))
    args = parser.parse_args(["decoders", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
