"""``getok bench rewards``: how fast rewards score rollouts, next to generation.

A *group* is what GRPO scores at once for one prompt: 8 rollouts of one image with 3 target objects.
Scenes are synthetic (random ellipses and rectangles on a 480 x 640 image); rollouts are noisy versions
of the true answer (cells dropped and added, objects missed or invented, instance order shuffled, some
malformed), so most answer lines differ and the decode caches rarely help. Each group has its own packed
truth (decoded once per group, as in training). ``session_cache_hit_rate`` is the decoder session's cache:
stage 1 caches decoded answer lines there, stage 2 the decoded proposal of the group (its per-instance
tables and repeated refinement lines live inside that entry).

Measured: rollouts per second for stage 1 (grid proposals) and stage 2 (refinements) with the
weight-free ``raster`` decoder (target >= 2000/s), and for stage 1 with the ``sam`` decoder
(:class:`~getok.decoding.sam.SamDecoder`) over a tiny ``Sam`` assembled from ``segment_anything.modeling``
classes with random weights (:func:`~getok.decoding.sam.build_tiny_sam`, SAM's 1024-pixel input by
default): one image embedding per group, in ``joint`` mode (one prompt with all of an instance's points)
and ``union`` mode (one prompt per point, masks unioned: GETok's reading of grid tokens), reported with
and without the per-group ``set_image``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from getok.codecs.token_names import DELETE, grid_token, offset_token
from getok.io import atomic_write_json
from getok.ops.grid import mask_to_cells

__all__ = [
    "synthetic_scene",
    "stage1_answer",
    "stage1_group",
    "stage2_group",
    "run_reward_bench",
    "register_bench",
    "main",
]

_THOUGHTS = [
    "The object is on the left",
    "It touches the table",
    "There are three candidates",
    "The red one is larger",
    "I mark the cells that cover it",
    "The target is partly occluded",
]


def synthetic_scene(rng: np.random.Generator, size=(480, 640), n_objects: int = 3) -> list[np.ndarray]:
    """``n_objects`` random ellipse / rectangle masks ``(H, W)`` bool, mostly disjoint."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    taken = np.zeros(size, dtype=bool)
    masks = []
    for _ in range(n_objects):
        for _attempt in range(20):
            ry, rx = rng.uniform(0.06, 0.2) * h, rng.uniform(0.06, 0.2) * w
            cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
            if rng.random() < 0.5:
                m = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
            else:
                m = (np.abs(xx + 0.5 - cx) <= rx) & (np.abs(yy + 0.5 - cy) <= ry)
            if (m & taken).sum() < 0.05 * m.sum():
                break
        m = m & ~taken
        taken |= m
        masks.append(m)
    return masks


def _noisy_cells(rng, cells: np.ndarray, n: int, drop: float = 0.15, add: float = 0.15) -> np.ndarray:
    keep = cells[rng.random(len(cells)) >= drop]
    if len(keep) == 0:
        keep = cells[:1]
    grow = rng.random(len(cells)) < add
    extra = np.clip(cells[grow] + rng.integers(-1, 2, (int(grow.sum()), 2)), 0, n - 1)
    out = np.concatenate([keep, extra])
    out = np.unique(out, axis=0)
    return out[rng.permutation(len(out))]


#: Answer styles: every cell whose centre lies on the object (what the weight-free raster decoder needs:
#: ~50 tokens per object here) or a few cells spread over it (GETok's greedy answers for a SAM decoder).
STYLES = ("dense", "sparse")


def _sparse(rng, cells: np.ndarray, k_max: int = 8) -> np.ndarray:
    """A few cells spread over the object: farthest-point sampling from a random start."""
    k = min(len(cells), int(rng.integers(2, k_max + 1)))
    chosen = [int(rng.integers(len(cells)))]
    d = np.full(len(cells), np.inf)
    for _ in range(k - 1):
        d = np.minimum(d, np.abs(cells - cells[chosen[-1]]).sum(axis=1))
        chosen.append(int(np.argmax(d)))
    return cells[chosen]


def stage1_answer(rng, masks: list[np.ndarray], n: int = 32, noisy: bool = True, style: str = "dense") -> str:
    """A stage-1 answer (one line of grid tokens per object) for masks, with rollout-like noise."""
    lines = []
    for m in masks:
        cells = mask_to_cells(m, n)
        if style == "sparse":
            cells = _sparse(rng, cells)
        if noisy:
            if rng.random() < 0.08:  # missed object
                continue
            cells = _noisy_cells(rng, cells, n)
        lines.append("".join(grid_token(int(cx), int(cy), n) for cx, cy in cells))
    if noisy and rng.random() < 0.08:  # an invented object
        c = rng.integers(0, n - 3, 2)
        lines.append("".join(grid_token(int(c[0] + dx), int(c[1] + dy), n) for dx in range(3) for dy in range(2)))
    if noisy:
        lines = [lines[i] for i in rng.permutation(len(lines))]
    return "\n".join(lines) if lines else "none"


def _envelope(rng, answer: str) -> str:
    think = ". ".join(rng.choice(_THOUGHTS, size=int(rng.integers(1, 4)), replace=True))
    return f"<think>{think}.</think><answer>{answer}</answer>"


def stage1_group(rng, size=(480, 640), n_objects: int = 3, rollouts: int = 8, n: int = 32, style: str = "dense"):
    """``(truth_json, responses)`` for one stage-1 group."""
    from getok.rl.truth import pack_truth

    masks = synthetic_scene(rng, size, n_objects)
    truth = pack_truth(size, masks, codec=f"grid:n={n}", task="stage1", image_id=f"scene{rng.integers(1 << 30)}")
    responses = []
    for _ in range(rollouts):
        r = _envelope(rng, stage1_answer(rng, masks, n, style=style))
        if rng.random() < 0.06:  # truncated generation
            r = r[: int(rng.integers(5, max(6, len(r) - 1)))]
        responses.append(r)
    return truth, responses


def stage2_group(
    rng,
    size=(480, 640),
    n_objects: int = 3,
    rollouts: int = 8,
    n: int = 32,
    r: int = 1,
    step: float = 0.5,
    style: str = "dense",
):
    """``(truth_json, responses)`` for one stage-2 group: a noisy proposal and refinements of it."""
    from getok.codecs import get_codec
    from getok.rl.truth import pack_truth

    masks = synthetic_scene(rng, size, n_objects)
    proposal = stage1_answer(rng, masks, n, style=style)
    spec = f"grid_offset:n={n},r={r},step={step}"
    truth = pack_truth(
        size, masks, codec=spec, task="stage2", proposal=proposal, image_id=f"scene{rng.integers(1 << 30)}"
    )
    geoms = get_codec(spec).decode(proposal, size)
    union = np.any(masks, axis=0)
    responses = []
    for _ in range(rollouts):
        lines = []
        for g in geoms:
            toks = []
            for p in g.cell_centers():
                inside = union[min(int(p[1]), size[0] - 1), min(int(p[0]), size[1] - 1)]
                u = rng.random()
                if inside:
                    toks.append(offset_token(0, 0) if u < 0.7 else offset_token(*rng.integers(-r, r + 1, 2)))
                else:
                    toks.append(DELETE if u < 0.5 else offset_token(*rng.integers(-r, r + 1, 2)))
            lines.append("".join(toks))
        resp = _envelope(rng, "\n".join(lines) if lines else "none")
        if rng.random() < 0.06:
            resp = resp.replace("</answer>", "<off_0_0></answer>", 1)  # one token too many
        responses.append(resp)
    return truth, responses


# -------------------------------------------------------------------------------------------- bench
def _time_groups(make_scorer, groups, images=None, repeats: int = 1) -> dict:
    """Score every group ``repeats`` times, each time with a fresh scorer and a cold truth cache; the
    rates of the fastest run are reported (the least disturbed by other processes), with the median."""
    from getok.rl.truth import truth_from_json

    runs = []
    for _ in range(max(1, repeats)):
        truth_from_json.cache_clear()
        scorer = make_scorer()
        n = invalid = 0
        overall = []
        t0 = time.perf_counter()
        c0 = time.process_time()
        for gi, (truth, responses) in enumerate(groups):
            items = [{"response": r, "truth": truth} for r in responses]
            if images is not None:
                for it in items:
                    it["image"] = images[gi]
            for s in scorer.score_batch(items):
                n += 1
                invalid += int(s["invalid"])
                overall.append(s["overall"])
        runs.append((time.perf_counter() - t0, time.process_time() - c0, scorer))
    dt, cpu, scorer = min(runs, key=lambda r: r[0])
    hits, misses = scorer.session.hits, scorer.session.misses
    return {
        "rollouts": n,
        "repeats": len(runs),
        "seconds": round(dt, 4),
        "rollouts_per_s": round(n / dt, 1),
        "rollouts_per_s_median": round(n / float(np.median([r[0] for r in runs])), 1),
        "cpu_seconds": round(cpu, 4),
        "rollouts_per_cpu_s": round(n / max(cpu, 1e-9), 1),
        "ms_per_rollout": round(1000 * dt / n, 4),
        "invalid_rate": round(invalid / n, 4),
        "mean_overall": round(float(np.mean(overall)), 4),
        "session_cache_hit_rate": round(hits / max(1, hits + misses), 3),
        "_scorer": scorer,
    }


def run_reward_bench(
    groups: int = 200,
    sam_groups: int = 4,
    rollouts: int = 8,
    objects: int = 3,
    size=(480, 640),
    n: int = 32,
    seed: int = 0,
    sam: bool = True,
    sam_img_size: int = 1024,
    torch_threads: int = 1,
    repeats: int = 3,
) -> dict:
    """Run the benchmark; returns the result dict (module docstring).

    ``sam_img_size`` is the tiny SAM's input side (1024 as in every real SAM; smaller is faster, for
    tests); ``torch_threads`` the torch CPU threads (1: the reward worker's share of a busy machine);
    ``repeats`` timed runs of the raster cases (the fastest is reported, see ``_time_groups``).
    """
    from getok.rl.rewards import RewardScorer

    rng = np.random.default_rng(seed)
    result: dict = {
        "benchmark": "rewards",
        "what": f"rollouts/s scoring groups of {rollouts} rollouts x {objects} objects, image {size[0]}x{size[1]}, "
        f"grid n={n}; truth decoded once per group",
        "settings": {
            "groups": groups,
            "sam_groups": sam_groups,
            "rollouts": rollouts,
            "objects": objects,
            "size": list(size),
            "n": n,
            "seed": seed,
            "sam_img_size": sam_img_size,
            "torch_threads": torch_threads,
            "repeats": repeats,
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "target_rollouts_per_s": 2000,
    }
    # warm-up group (imports, token caches), not timed
    warm = stage1_group(rng, size, objects, rollouts, n)
    RewardScorer().score_batch([{"response": r, "truth": warm[0]} for r in warm[1]])

    for style in STYLES:
        s1 = [stage1_group(rng, size, objects, rollouts, n, style=style) for _ in range(groups)]
        res = _time_groups(RewardScorer, s1, repeats=repeats)
        res["tokens_per_rollout"] = round(float(np.mean([r.count("<g") for _, rs in s1 for r in rs])), 1)
        result[f"stage1_raster_{style}"] = res
        s2 = [stage2_group(rng, size, objects, rollouts, n, style=style) for _ in range(groups)]
        res = _time_groups(RewardScorer, s2, repeats=repeats)
        res["tokens_per_rollout"] = round(
            float(np.mean([r.count("<off") + r.count("<DEL") for _, rs in s2 for r in rs])), 1
        )
        result[f"stage2_raster_{style}"] = res
    # wall-clock rates suffer when other processes share the cores; CPU-time rates measure the work itself
    result["meets_target"] = {
        k: {"wall": bool(v["rollouts_per_s"] >= 2000), "cpu": bool(v["rollouts_per_cpu_s"] >= 2000)}
        for k, v in result.items()
        if k.startswith(("stage1_raster", "stage2_raster"))
    }

    if sam:
        import torch

        from getok.decoding import build_tiny_sam, get_decoder

        torch.set_num_threads(max(1, int(torch_threads)))
        model = build_tiny_sam(img_size=sam_img_size, seed=seed)
        groups_sam = [stage1_group(rng, size, objects, rollouts, n, style="sparse") for _ in range(sam_groups)]
        images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(sam_groups)]
        for mode in ("joint", "union"):
            dec = get_decoder("sam", model=model, mode=mode, cache_size=sam_groups)
            # first pass: every group embeds its image (one set_image per group); second pass: the
            # embeddings are cached under the same image keys, so it times the prompts alone
            timing = _time_groups(lambda dec=dec: RewardScorer(decoder=dec), groups_sam, images)
            embedded = dec.embeddings_computed
            cached = _time_groups(lambda dec=dec: RewardScorer(decoder=dec), groups_sam, images)
            timing.update(
                answers="sparse",
                decoder=f"sam (mode={mode}) over a tiny Sam: segment_anything.modeling classes, random weights, "
                f"{sam_img_size}-pixel input, {sam_img_size // 16}x{sam_img_size // 16} embedding",
                embeddings_per_group=round(embedded / sam_groups, 3),
                set_image_s=round(max(0.0, timing["seconds"] - cached["seconds"]) / sam_groups, 4),
                rollouts_per_s_excluding_set_image=cached["rollouts_per_s"],
            )
            result[f"stage1_sam_{mode}"] = timing
    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    for v in result.values():
        if isinstance(v, dict):
            v.pop("_scorer", None)
    return result


def _cmd(args) -> int:
    res = run_reward_bench(
        groups=args.groups,
        sam_groups=args.sam_groups,
        rollouts=args.rollouts,
        objects=args.objects,
        size=(args.height, args.width),
        n=args.n,
        seed=args.seed,
        sam=not args.no_sam,
        sam_img_size=args.sam_img_size,
        torch_threads=args.torch_threads,
        repeats=args.repeats,
    )
    import sys

    res["command"] = (
        ("getok bench rewards " + " ".join(args.argv_echo)) if args.argv_echo else "getok " + " ".join(sys.argv[1:])
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, res)
    print(json.dumps(res, indent=2))
    return 0


def register_bench(bench_subparsers) -> argparse.ArgumentParser:
    """Add ``rewards`` to the ``getok bench`` sub-commands."""
    p = bench_subparsers.add_parser("rewards", help="rollouts/s of the GRPO rewards (raster and tiny-SAM decoders)")
    p.add_argument("--out", help="write the results JSON here")
    p.add_argument("--groups", type=int, default=200, help="groups timed with the raster decoder")
    p.add_argument("--sam-groups", type=int, default=4, help="groups timed with the tiny SAM decoder")
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--n", type=int, default=32, help="grid size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sam", action="store_true", help="skip the SAM decoder")
    p.add_argument("--sam-img-size", type=int, default=1024, help="tiny SAM input side (SAM's own: 1024)")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the raster cases (the fastest is reported)")
    p.set_defaults(func=_cmd, argv_echo=[])
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m getok_lab.bench.rewards [--out FILE] ...`` (same options as ``getok bench rewards``)."""
    import sys

    parser = argparse.ArgumentParser(prog="getok bench")
    sub = parser.add_subparsers(dest="bench")
    register_bench(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(["rewards", *argv])
    args.argv_echo = argv
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
