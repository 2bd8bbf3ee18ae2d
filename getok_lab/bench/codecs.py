"""Codec benchmark: how faithfully, and in how many tokens, each representation writes real masks.

For every codec setting of a sweep, each ground-truth mask is encoded, decoded back and rasterised with the
weight-free path (:func:`getok.ops.raster.raster_mask`: polygons filled, cells as their pixels), then scored
against the mask. Tokens per object are counted with a real tokenizer that has the codec's tokens added
(the tiny offline tokenizer; added tokens are one id each) and, for every codec, Qwen2-style (each digit and
punctuation mark one token) so that text numbers compare with the papers.

A reference row reproduces SimpleSeg's own measurement (OpenCV contours through pixel indices,
``approxPolyDP`` with ``eps = 0.01 x perimeter``, 3 decimals, rasterised by pycocotools): the raster
convention alone moves the IoU of the same vertices by several points, so rows are only comparable
within one convention.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from getok.codecs import get_codec, qwen_style_count
from getok.geometry import Geometry
from getok.ops.masks import mask_iou
from getok.ops.raster import raster_mask

__all__ = ["DEFAULT_SWEEP", "bench_codecs", "simpleseg_reference", "markdown_table", "register_bench"]

#: The settings swept by default: every codec, and the knobs that trade tokens for fidelity.
DEFAULT_SWEEP = [
    "text_coords:style=norm3,eps=0.01",
    "text_coords:style=norm3,eps=0.02",
    "text_coords:style=int1000,eps=0.01",
    "bins:bins=1000,eps=0.01",
    "bins:bins=100,eps=0.01",
    "grid:n=16",
    "grid:n=32",
    "grid:n=64",
    "polygon:vertex=text,eps=0.005",
    "polygon:vertex=text,eps=0.01",
    "polygon:vertex=text,eps=0.02",
    "polygon:vertex=bins,bins=1000,eps=0.01",
    "polygon:vertex=bins,bins=1000,eps=0.02",
    "polygon:vertex=bins,bins=256,eps=0.01",
    "polygon:vertex=grid,n=64,eps=0.01",
    "polygon:vertex=grid,n=128,eps=0.01",
    "polygon:vertex=grid_offset,n=32,r=1,step=0.5,eps=0.01",
    "polygon:vertex=grid_offset,n=32,r=2,step=0.25,eps=0.01",
    "polygon:vertex=grid_offset,n=32,r=3,step=0.125,eps=0.01",
    "polygon:vertex=grid_offset,n=64,r=1,step=0.5,eps=0.01",
    "rle_descriptors:rows=16",
    "rle_descriptors:rows=32",
]

SMALL, LARGE = 32**2, 96**2  # COCO area classes (pixels)


def _area_class(area: int) -> str:
    return "small" if area < SMALL else ("large" if area > LARGE else "medium")


def _stats(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), float(statistics.median(values))


def bench_codecs(
    masks: Sequence[tuple[tuple[int, int], np.ndarray]],
    specs: Iterable[str] = DEFAULT_SWEEP,
    token_counter: Callable[[str, str], int] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Encode → decode → rasterise every mask under every spec; one result row per spec.

    Parameters
    ----------
    masks : sequence of ((H, W), (H, W) bool)
    specs : codec specs
    token_counter : ``f(spec, text) -> int``, optional
        A real tokenizer count (e.g. :func:`tiny_tokenizer_counter`); rows get ``tokens_*`` from it and
        ``qwen_tokens_*`` from :func:`getok.codecs.qwen_style_count` always.
    """
    from tqdm.auto import tqdm

    rows = []
    specs = list(specs)
    for spec in tqdm(specs, desc="codecs", disable=not progress):
        codec = get_codec(spec)
        ious: dict[str, list[float]] = {"all": [], "small": [], "medium": [], "large": []}
        toks, qtoks = [], []
        invalid = 0
        t_enc = t_dec = 0.0
        for size, m in masks:
            g = Geometry(size=size, mask=m)
            t0 = time.perf_counter()
            text = codec.encode([g], kind="mask")
            t1 = time.perf_counter()
            res = codec.try_decode(text, size, kind="mask")
            t2 = time.perf_counter()
            t_enc += t1 - t0
            t_dec += t2 - t1
            if not res.valid or len(res.geometries) != 1:
                invalid += 1
                iou = 0.0
            else:
                iou = mask_iou(raster_mask(res.geometries[0]), m)
            ious["all"].append(iou)
            ious[_area_class(int(m.sum()))].append(iou)
            qtoks.append(qwen_style_count(text))
            if token_counter is not None:
                toks.append(token_counter(spec, text))
        n = len(masks)
        row = {"setting": spec, "spec": codec.spec, "codec": codec.name, "objects": n}
        for k, v in ious.items():
            row[f"iou_{k}"] = float(np.mean(v)) if v else None
            row[f"objects_{k}"] = len(v)
        row["tokens_mean"], row["tokens_median"] = _stats(toks)
        row["qwen_tokens_mean"], row["qwen_tokens_median"] = _stats(qtoks)
        row["invalid_rate"] = invalid / max(n, 1)
        row["new_tokens"] = len(codec.new_tokens())
        row["encode_ms_per_object"] = 1000 * t_enc / max(n, 1)
        row["decode_ms_per_object"] = 1000 * t_dec / max(n, 1)
        rows.append(row)
    return rows


def simpleseg_reference(masks, eps: float = 0.01) -> dict:
    """SimpleSeg's recipe measured its own way (see the module docstring): mean IoU and tokens."""
    import cv2
    from pycocotools import mask as mask_utils

    from getok.codecs.count import qwen_style_count as count

    ious, toks = [], []
    for (h, w), m in masks:
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        polys, parts = [], []
        for c in contours:
            a = cv2.approxPolyDP(c, eps * cv2.arcLength(c, True), True).reshape(-1, 2) / [w, h]
            a = np.round(a, 3)
            parts.append("[" + ", ".join(f"[{x:.3f}, {y:.3f}]" for x, y in a) + "]")
            if len(a) >= 3:
                polys.append((a * [w, h]).ravel().tolist())
        toks.append(count("; ".join(parts)))
        if polys:
            rm = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)
            ious.append(mask_iou(rm, m))
        else:
            ious.append(0.0)
    return {
        "recipe": f"SimpleSeg: OpenCV contours (pixel indices), approxPolyDP eps={eps} x perimeter, 3 decimals, "
        "rasterised by pycocotools",
        "objects": len(masks),
        "iou_mean": float(np.mean(ious)),
        "qwen_tokens_mean": float(np.mean(toks)),
    }


def tiny_tokenizer_counter() -> Callable[[str, str], int] | None:
    """A ``(spec, text) -> count`` using the offline tiny tokenizer with each codec's tokens added."""
    try:
        from getok.vocab.tiny import build_tiny_tokenizer
    except ImportError:
        return None
    from tokenizers import AddedToken

    base = build_tiny_tokenizer()
    cache: dict[str, object] = {}

    def count(spec: str, text: str) -> int:
        if spec not in cache:
            import copy

            t = copy.deepcopy(base)
            t.add_tokens([AddedToken(x, special=False, normalized=False) for x in get_codec(spec).new_tokens()])
            cache[spec] = t
        return len(cache[spec](text, add_special_tokens=False)["input_ids"])

    return count


def markdown_table(rows: Sequence[dict]) -> str:
    """A README table: spec, mean IoU (all / small / medium / large), tokens per object, invalid rate."""

    def f(v, nd=3):
        return "–" if v is None else f"{v:.{nd}f}"

    lines = [
        "| setting | new tokens | mIoU | small | medium | large | tokens/obj (mean / median) | Qwen-style tokens/obj | invalid |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tok = f"{f(r['tokens_mean'], 1)} / {f(r['tokens_median'], 0)}" if r.get("tokens_mean") is not None else "–"
        lines.append(
            f"| `{r.get('setting', r['spec'])}` | {r['new_tokens']} | {f(r['iou_all'])} | {f(r['iou_small'])} | {f(r['iou_medium'])} | "
            f"{f(r['iou_large'])} | {tok} | {f(r['qwen_tokens_mean'], 1)} | {r['invalid_rate']:.3f} |"
        )
    return "\n".join(lines)


def load_masks(data_dir: str | Path | None, scenes: int = 0, seed: int = 0):
    """Masks from a real-dev-format ``manifest.json`` directory, or from ``scenes`` procedural scenes."""
    out = []
    if data_dir is not None:
        from getok.data_builders.sources.manifest import load_manifest

        for img in load_manifest(data_dir):
            for obj in img.objects:
                m = obj.get_mask()
                if m.any():
                    out.append((img.size, m))
    if scenes:
        from getok.data_builders.scenes import generate_scenes

        for img in generate_scenes(scenes, seed=seed):
            for obj in img.objects:
                if obj.get_mask().any():
                    out.append((img.size, obj.get_mask()))
    return out


def run(args) -> int:
    from getok.io import atomic_write_json

    if not args.data and not args.scenes:
        from getok.errors import ConfigError

        raise ConfigError("give --data DIR (a manifest.json directory) and/or --scenes N")
    masks = load_masks(args.data, args.scenes, args.seed)
    specs = args.spec or DEFAULT_SWEEP
    counter = None if args.no_tokenizer else tiny_tokenizer_counter()
    rows = bench_codecs(masks, specs, counter)
    result = {
        "benchmark": "codecs",
        "data": str(args.data) if args.data else f"{args.scenes} procedural scenes (seed {args.seed})",
        "objects": len(masks),
        "raster": "getok weight-free: polygons traced through boundary pixel centres and filled boundary-inclusive; "
        "cells as the pixels whose centre falls in them",
        "token_counter": "tiny offline BPE tokenizer + the codec's added tokens" if counter else None,
        "rows": rows,
        "reference": simpleseg_reference(masks) if args.data else None,
    }
    if args.out:
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    print(markdown_table(rows))
    if result["reference"]:
        ref = result["reference"]
        print(f"\nreference ({ref['recipe']}): mIoU {ref['iou_mean']:.3f} at {ref['qwen_tokens_mean']:.1f} Qwen-style tokens/obj")
    return 0


def register_bench(sub) -> None:
    p = sub.add_parser("codecs", help="encode/decode every mask with every codec setting: IoU vs tokens")
    p.add_argument("--data", help="directory with a real-dev-format manifest.json")
    p.add_argument("--scenes", type=int, default=0, help="also (or instead) use N procedural scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spec", action="append", help="codec spec to run (repeatable; default: the built-in sweep)")
    p.add_argument("--no-tokenizer", action="store_true", help="skip the real-tokenizer count")
    p.add_argument("--out", help="write the JSON result here")
    p.set_defaults(func=run)

