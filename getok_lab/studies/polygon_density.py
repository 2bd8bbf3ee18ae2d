"""Study: polygon density — the Douglas–Peucker tolerance ``eps`` trades answer tokens for fidelity.

``getok study polygon-density`` (SimpleSeg's Fig. 4 in miniature) has two parts:

1. **Oracle** (no model): every real-dev mask (``../shared/data/real-dev``; skipped with a message where
   absent) and every held-out procedural object is written as a polygon at each ``eps`` of the sweep, in
   text (``polygon:vertex=text``, SimpleSeg) and in tokens (``polygon:vertex=bins``), decoded, rasterised
   and compared with the mask (:func:`getok_lab.bench.codecs.bench_codecs`): tokens per object vs IoU, the
   ceiling of each density.
2. **Trained**: the tiny model is trained on procedural scenes with outline answers at a few ``eps`` values
   (text polygons ``text_coords:eps=…`` and token polygons ``bins:bins=112,eps=…``; point / box queries
   written the same way) with the same budget, and evaluated on held-out scenes: what a model reaches at
   each density, next to the ceiling.

Only numbers are plotted; no real-dev photo is drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from getok.config import config_to_dict, load_config
from getok.errors import ConfigError

from .common import Budget, Clock, SceneSeries, command_line, environment, fmt, fmt_ci, mean_ci, write_outputs

__all__ = ["PolygonFormat", "DensityConfig", "load_density_config", "run_polygon_density", "density_markdown",
           "default_real_dev", "oracle_sweep", "simplify_fallbacks"]  # fmt: skip

log = logging.getLogger("getok_lab.studies.polygon_density")

NAME = "polygon-density"


def default_real_dev() -> Path:
    """``<repo>/../shared/data/real-dev`` (the shared developer set next to the repository)."""
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real-dev").resolve()


@dataclass
class PolygonFormat:
    """A polygon writing, as a codec template with ``{eps}``.

    Attributes
    ----------
    name : str
    oracle : str
        Codec of the oracle sweep (full-resolution vertices, e.g. ``polygon:vertex=bins,bins=1000,eps={eps}``).
    trained : str
        Codec of the trained runs: answers *and* point / box queries (``text_coords`` / ``bins``).
    init : str
        Row init of its new tokens.
    """

    name: str = "text polygons"
    oracle: str = "polygon:vertex=text,eps={eps}"
    trained: str = "text_coords:style=norm3,eps={eps}"
    init: str = "2d"

    def __post_init__(self):
        from getok.codecs.base import get_codec

        for attr in ("oracle", "trained"):
            tpl = getattr(self, attr)
            if "{eps}" not in tpl:
                raise ConfigError(f"formats[{self.name}].{attr} must contain {{eps}}, got {tpl!r}")
            get_codec(tpl.format(eps=0.01))


def _default_formats() -> list[PolygonFormat]:
    return [
        PolygonFormat("text polygons", "polygon:vertex=text,eps={eps}", "text_coords:style=norm3,eps={eps}", "2d"),
        PolygonFormat("token polygons", "polygon:vertex=bins,bins=1000,eps={eps}", "bins:bins=112,eps={eps}", "random"),
    ]


def _default_budget() -> Budget:
    return Budget(steps=200, max_length=512)


@dataclass
class DensityConfig:
    """Settings of ``getok study polygon-density`` (YAML: ``configs/studies/polygon-density.yaml``).

    Attributes
    ----------
    formats : list of PolygonFormat
    eps_oracle : list of float
        Tolerances of the oracle sweep (fraction of each contour's perimeter). Above ~0.04 the simplifier's
        fallback dominates on real masks (a ring that Douglas–Peucker collapses to fewer than 3 vertices is
        kept *unsimplified*, :func:`getok.ops.polygons.mask_to_polygons`), so larger tolerances cost more
        tokens, not fewer; each row counts those objects (``fallbacks``).
    eps_trained : list of float
        Tolerances trained on procedural scenes (a subset is fine; each is one run per format and seed).
    real_dev : str
        The real-dev directory (``auto``: ``<repo>/../shared/data/real-dev``; ``none`` skips that part).
    tasks, task_weights : training / evaluation tasks and shares.
    core_tasks : tasks pooled into the headline numbers.
    seeds : list of int
    budget : Budget
    scenes : SceneSeries
    decoder : str
    eval_batch_size : int
    max_new_tokens : int
        Upper bound of the generation budget (each run gets 1.5 x its longest held-out target, at most this).
    work_dir : str
    """

    formats: list[PolygonFormat] = field(default_factory=_default_formats)
    eps_oracle: list[float] = field(default_factory=lambda: [0.0025, 0.005, 0.01, 0.02, 0.04])
    eps_trained: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.05])
    real_dev: str = "auto"
    tasks: list[str] = field(default_factory=lambda: ["box>mask", "point>mask", "text>mask"])
    task_weights: list[float] = field(default_factory=lambda: [0.45, 0.4, 0.15])
    core_tasks: list[str] = field(default_factory=lambda: ["box>mask", "point>mask"])
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: Budget = field(default_factory=_default_budget)
    scenes: SceneSeries = field(default_factory=SceneSeries)
    decoder: str = "point_masks:proposer=exact,n=8"
    eval_batch_size: int = 16
    max_new_tokens: int = 480
    work_dir: str = "runs/studies/polygon-density"

    def __post_init__(self):
        for name in ("eps_oracle", "eps_trained"):
            vals = getattr(self, name)
            if any(not 0 <= float(e) < 1 for e in vals):
                raise ConfigError(f"{name} must be tolerances in [0, 1), got {vals}")
        if not self.eps_oracle:
            raise ConfigError("eps_oracle must list at least one tolerance")
        if not self.formats or len({f.name for f in self.formats}) != len(self.formats):
            raise ConfigError("formats must be non-empty with distinct names")
        if len(self.task_weights) != len(self.tasks) or min(self.task_weights, default=0) <= 0:
            raise ConfigError("task_weights must give one positive weight per task")
        if not self.core_tasks or any(t not in self.tasks for t in self.core_tasks):
            raise ConfigError(f"core_tasks must be a non-empty subset of tasks, got {self.core_tasks}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")

    def real_dev_dir(self) -> Path | None:
        if str(self.real_dev).lower() in ("none", ""):
            return None
        return default_real_dev() if self.real_dev == "auto" else Path(self.real_dev)


FAST_OVERRIDES = [
    "budget.steps=3", "budget.batch_size=2", "budget.dataloader_workers=0", "budget.vision_warmup=2", "scenes.n_train=6", "scenes.n_eval=2",
    "seeds=[0]", "eval_batch_size=8", "eps_oracle=[0.01, 0.04]", "eps_trained=[0.05]", "max_new_tokens=64",
]  # fmt: skip


def load_density_config(path=None, overrides=None, *, fast: bool = False) -> DensityConfig:
    """Defaults ← YAML ← (``--fast``) ← ``a.b=c`` overrides, validated."""
    return load_config(DensityConfig, path, (FAST_OVERRIDES if fast else []) + list(overrides or []))


# ---------------------------------------------------------------------------------------------- oracle
def oracle_sweep(masks, formats: list[PolygonFormat], eps_values: list[float], *, which: str = "oracle",
                 progress: bool = False) -> list[dict]:  # fmt: skip
    """Tokens vs IoU of every format at every tolerance on ``masks`` (``[((H, W), mask), ...]``).

    ``which`` picks the codec template of each format: ``oracle`` (full-resolution vertices, for real
    images) or ``trained`` (the codec the trained runs use, for the scenes).
    """
    from getok_lab.bench.codecs import bench_codecs, tiny_tokenizer_counter

    if which not in ("oracle", "trained"):
        raise ConfigError(f"which must be 'oracle' or 'trained', got {which!r}")
    counter = tiny_tokenizer_counter()
    fallbacks = {float(e): simplify_fallbacks(masks, float(e)) for e in eps_values}
    rows = []
    for f in formats:
        specs = [getattr(f, which).format(eps=e) for e in eps_values]
        for e, r in zip(eps_values, bench_codecs(masks, specs, token_counter=counter, progress=progress)):
            rows.append({"format": f.name, "eps": float(e), "spec": r["spec"], "objects": r["objects"], "iou": r["iou_all"],
                         "iou_small": r["iou_small"], "iou_medium": r["iou_medium"], "iou_large": r["iou_large"],
                         "tokens": r["tokens_mean"], "qwen_tokens": r["qwen_tokens_mean"], "invalid_rate": r["invalid_rate"],
                         "fallbacks": fallbacks[float(e)]})  # fmt: skip
    return rows


def simplify_fallbacks(masks, eps: float) -> int:
    """How many masks get *more* outline vertices at ``eps`` than at ``eps / 2``.

    That happens when Douglas–Peucker collapses a ring below 3 vertices and
    :func:`getok.ops.polygons.mask_to_polygons` keeps the unsimplified ring instead.
    """
    from getok.ops.polygons import mask_to_polygons

    if eps <= 0:
        return 0
    n = 0
    for _, m in masks:
        a = sum(len(r) for r in mask_to_polygons(m, eps)[0])
        b = sum(len(r) for r in mask_to_polygons(m, eps / 2)[0])
        n += a > b
    return n


# ---------------------------------------------------------------------------------------------- the study
def run_polygon_density(
    cfg: DensityConfig, out_dir: str | Path, *, progress: bool = True, argv: list[str] | None = None
) -> dict:
    """Run the study; writes ``polygon-density.{json,md,png}`` into ``out_dir`` and returns the result."""
    from getok.eval.runner import read_records
    from getok_lab.bench.codecs import load_masks

    from .common import evaluate_model, load_trained, sft_config, target_tokens_per_object, train_sft
    from .data import task_samples, write_pool
    from .representations import summarize_records

    total = Clock()
    root = Path(cfg.work_dir)
    result: dict = {
        "study": NAME,
        "config": config_to_dict(cfg),
        "provenance": {"command": command_line(argv), "seeds": list(cfg.seeds), "environment": environment()},
    }
    # ---- oracle on real-dev
    rd = cfg.real_dev_dir()
    if rd is None:
        result["real_dev"] = {"skipped": "real_dev: none"}
    elif not (rd / "manifest.json").is_file():
        msg = f"real-dev data not found at {rd}: the real-dev oracle sweep is skipped"
        log.warning(msg)
        print(f"polygon-density: {msg}")
        result["real_dev"] = {"skipped": msg}
    else:
        with Clock() as c:
            masks = load_masks(rd)
            rows = oracle_sweep(masks, cfg.formats, cfg.eps_oracle, progress=progress)
        result["real_dev"] = {
            "dir": str(rd),
            "objects": len(masks),
            "rows": rows,
            "clock": {"wall_s": round(c.wall, 1)},
        }
    # ---- oracle on held-out scenes
    train_scenes, eval_scenes = cfg.scenes.generate("train"), cfg.scenes.generate("eval")
    scene_masks = [(im.size, o.get_mask()) for im in eval_scenes for o in im.objects if o.get_mask().any()]
    result["scenes_oracle"] = {
        "objects": len(scene_masks),
        "rows": oracle_sweep(scene_masks, cfg.formats, cfg.eps_oracle, which="trained"),
    }
    # ---- trained
    trained = []
    src_tr, src_ev = [cfg.scenes.source("train")], [cfg.scenes.source("eval")]
    wsum = sum(cfg.task_weights)
    for f in cfg.formats:
        for eps in cfg.eps_trained:
            spec = f.trained.format(eps=eps)
            d = root / f"{f.name.replace(' ', '_')}-eps{eps:g}"
            pools = []
            for task, w in zip(cfg.tasks, cfg.task_weights):
                s = task_samples(train_scenes, spec, [task])
                pools.append((write_pool(s, d / "data" / f"train-{task.replace('>', '2')}", src_tr), w / wsum))
            ev = task_samples(eval_scenes, spec, cfg.tasks, seed=cfg.scenes.eval_seed)
            eval_dir = write_pool(ev, d / "data" / "eval", src_ev)
            runs = []
            for seed in cfg.seeds:
                scfg = sft_config(
                    cfg.budget, [spec], pools, d / f"seed{seed}", seed=seed, init=f.init, image_size=cfg.scenes.size
                )
                log.info("%s eps=%g seed %d: training %d steps", f.name, eps, seed, cfg.budget.steps)
                summ = train_sft(scfg, progress=progress)
                model, processor = load_trained(summ["final"])
                tok_target = target_tokens_per_object(ev, processor.tokenizer)
                longest = max(len(processor.tokenizer(s.answer, add_special_tokens=False)["input_ids"]) for s in ev)
                budget = int(min(cfg.max_new_tokens, max(16, 1.5 * longest)))
                e = evaluate_model(model, processor, eval_dir, d / f"seed{seed}" / "eval", decoder=cfg.decoder,
                                   max_new_tokens=budget, batch_size=cfg.eval_batch_size, seed=seed,
                                   model_name=f"{f.name} eps={eps} seed {seed}")  # fmt: skip
                recs = read_records(d / f"seed{seed}" / "eval" / "records.jsonl")
                runs.append({
                    "seed": seed, "max_new_tokens": budget, "target_tokens_per_object": tok_target,
                    "train": {k: summ["train"].get(k) for k in ("steps", "first_loss", "last_loss", "train_wall_s", "train_cpu_s")},
                    "data": {k: summ["data"].get(k) for k in ("total", "kept", "too_long", "longest_kept")},
                    "eval_ms_per_sample": e["ms_per_sample"], "metrics": summarize_records(recs, cfg.tasks, cfg.core_tasks),
                })  # fmt: skip
                del model
            trained.append({
                "format": f.name, "eps": float(eps), "codec": spec, "runs": runs,
                "mean": {
                    **{f"core/{m}": mean_ci([r["metrics"]["core"][m] for r in runs])
                       for m in ("gIoU", "Acc@0.5", "Acc@0.8", "invalid_rate", "tokens_per_object")},
                    **{f"{t}/gIoU": mean_ci([r["metrics"]["per_task"][t]["gIoU"] for r in runs]) for t in cfg.tasks},
                    "target_tokens_per_object": mean_ci([r["target_tokens_per_object"] for r in runs]),
                    "train_wall_s": mean_ci([r["train"]["train_wall_s"] for r in runs]),
                },
            })  # fmt: skip
    result["trained"] = trained
    result["provenance"]["clock"] = total.stop()
    result["outputs"] = write_outputs(out_dir, NAME, result, density_markdown(result), _plot(result))
    return result


def density_markdown(result: dict) -> str:
    cfg = result["config"]
    b = cfg["budget"]
    lines = ["# Polygon-density study (miniature)", "", f"Command: `{result['provenance']['command']}`  ",
             f"Seeds: {result['provenance']['seeds']}.", ""]  # fmt: skip
    rd = result.get("real_dev") or {}
    lines += ["## Oracle on real-dev (encode → decode → rasterise; no model)", ""]
    if "skipped" in rd:
        lines.append(f"Skipped: {rd['skipped']}.")
    else:
        lines.append(f"{rd['objects']} COCO instance masks of `{rd['dir']}`.")
        lines += ["", *_oracle_table(rd["rows"])]
    so = result["scenes_oracle"]
    lines += [
        "",
        f"## Oracle on the held-out procedural scenes ({so['objects']} objects, {cfg['scenes']['size']} px; the trained "
        "runs' codecs)",
        "",
        *_oracle_table(so["rows"]),
    ]
    lines += [
        "",
        f"## After training on procedural scenes ({b['steps']} steps x batch {b['batch_size']}, lr {b['lr']}; "
        f"{cfg['scenes']['n_train']} training scenes, {cfg['scenes']['n_eval']} held-out)",
        "",
        "| format | eps | codec | target tokens/object | generated tokens/object | mIoU ("
        + " + ".join(cfg["core_tasks"])
        + ") | Acc@0.5 | invalid | "
        + " | ".join(f"{t} mIoU" for t in cfg["tasks"])
        + " | training time (s) |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(cfg["tasks"]) + "---|",
    ]
    for t in result["trained"]:
        m = t["mean"]
        lines.append(
            f"| {t['format']} | {t['eps']:g} | `{t['codec']}` | {fmt_ci(m['target_tokens_per_object'], 1)} | "
            f"{fmt_ci(m['core/tokens_per_object'], 1)} | {fmt_ci(m['core/gIoU'])} | {fmt_ci(m['core/Acc@0.5'])} | "
            f"{fmt_ci(m['core/invalid_rate'])} | "
            + " | ".join(fmt_ci(m[f"{x}/gIoU"]) for x in cfg["tasks"])
            + f" | {fmt_ci(m['train_wall_s'], 0)} |"
        )
    lines += [
        "",
        "Tokens: the tiny offline tokenizer with the codec's tokens added (one id each); Qwen-style counts (every "
        "digit and punctuation mark one token) in the oracle tables. IoU: the decoded polygon rasterised "
        "boundary-inclusively (getok's raster) vs the mask. Trained mIoU: mean per-sample mask IoU of the model's "
        "outline (invalid answers score 0). text>mask is the image-blind prior of the tiny model. Simplifier "
        "fallbacks: objects whose outline has more vertices at this eps than at eps / 2 (Douglas–Peucker collapsed a "
        "ring below 3 vertices and the unsimplified ring was kept); they are why tolerances above ~0.04 stop saving "
        "tokens on real masks.",
    ]
    return "\n".join(lines)


def _oracle_table(rows: list[dict]) -> list[str]:
    out = ["| format | eps | mIoU | small | medium | large | tokens/object | Qwen-style tokens/object | invalid | "
           "simplifier fallbacks |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        out.append(f"| {r['format']} | {r['eps']:g} | {fmt(r['iou'])} | {fmt(r['iou_small'])} | {fmt(r['iou_medium'])} | "
                   f"{fmt(r['iou_large'])} | {fmt(r['tokens'], 1)} | {fmt(r['qwen_tokens'], 1)} | {fmt(r['invalid_rate'])} | "
                   f"{r.get('fallbacks', '–')} / {r['objects']} |")  # fmt: skip
    return out


def _plot(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f["name"] for f in result["config"]["formats"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    rd = result.get("real_dev") or {}
    for ax, rows, title in ((axes[0], rd.get("rows") or [], "oracle on real-dev (COCO masks)"),
                            (axes[1], result["scenes_oracle"]["rows"], "procedural scenes: oracle and trained")):  # fmt: skip
        for i, name in enumerate(names):
            rs = sorted((r for r in rows if r["format"] == name), key=lambda r: r["eps"])
            if not rs:
                continue
            ax.plot(
                [r["tokens"] for r in rs], [r["iou"] for r in rs], "--o", color=f"C{i}", ms=4, label=f"{name} (oracle)"
            )
            for r in rs:
                ax.annotate(
                    f"{r['eps']:g}", (r["tokens"], r["iou"]), textcoords="offset points", xytext=(3, -10), fontsize=7
                )
        ax.set_xscale("log")
        ax.set_xlabel("tokens per object (tiny tokenizer)")
        ax.set_ylabel("IoU")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=9)
    if "skipped" in rd:
        axes[0].text(0.5, 0.5, "real-dev not found: skipped", ha="center", transform=axes[0].transAxes)
    for t in result["trained"]:
        i = names.index(t["format"]) if t["format"] in names else 0
        x = t["mean"]["target_tokens_per_object"]["mean"]
        y = t["mean"]["core/gIoU"]
        if x is None or y["mean"] is None:
            continue
        axes[1].errorbar([x], [y["mean"]], yerr=[[y["half"] or 0]], fmt="s", color=f"C{i}", capsize=3, ms=7)
        axes[1].annotate(
            f"trained eps={t['eps']:g}", (x, y["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=7
        )
    axes[1].plot([], [], "s", color="gray", label="trained (mIoU of point / box questions)")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Polygon density: tokens vs IoU (eps = tolerance / perimeter)", fontsize=10)
    fig.tight_layout()
    return fig
