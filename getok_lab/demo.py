"""The main job: ``getok demo --out DIR`` runs the whole GETok pipeline in miniature and writes a report.

Procedural scenes → the tiny offline Qwen3-VL with the grid + offset vocabulary (``grid_offset:n=8``) and
polygon answers written with the same tokens (``polygon:vertex=grid_offset,n=8``) → vision warm-up + SFT
(:func:`getok.train.sft.run_sft`) → GRPO stage 1 and stage 2 (:func:`getok.rl.grpo.run_grpo`) → held-out
evaluation of every model (:func:`getok.eval.runner.evaluate`, two-turn self-correction with the oracle and
no-refinement baselines, polygon answers through the ``polygon`` decoder) and of trivial answer baselines
→ a report folder::

    DIR/
      summary.md        the tables (per task and model, self-correction per turn, polygon mode, baselines,
                        timings per stage) and what the CPU miniature can and cannot show
      run.json          configuration, seeds, versions, per-stage wall / CPU time, invocations
      figures/          training_curves.png (SFT loss, GRPO rewards), miou_by_model.png
      viz/              per-sample overlays and index.html of the final model (getok.eval.viz / report)
      data/ sft/ grpo1/ grpo2/ eval/   the stages' outputs (datasets, checkpoints, evaluation records)
      stages/<stage>.json              completion markers (settings fingerprint, timing, results)

**Resumable.** Each stage writes ``stages/<stage>.json`` last; a re-run skips a stage whose marker exists
and was made with the same settings (its fingerprint chains those of the stages it depends on), and
continues an interrupted training from its last checkpoint. A marker made with other settings is a
:class:`~getok.errors.ConfigError` (use another ``--out``). ``summary.md`` / ``run.json`` are rewritten
from the markers on every run.

**Deterministic.** Everything is seeded from ``seed`` (model weights, token rows, training order, GRPO
sampling; the scene series are fixed: 0 SFT, 1 GRPO, 10000 held-out); evaluation is greedy. The same seed
gives the same numbers; only the timings differ.

**Budget.** The defaults (:class:`DemoConfig`, repeated in ``configs/demo/tiny-cpu.yaml``) are sized for
about 12.5 minutes on an idle 2-core machine (target: 15); ``--fast`` (:data:`FAST`) is a 1–2 minute smoke run of the same code.

The task mix: finding the object a sentence names from pixels (``text>mask``, 40 % of SFT and the GRPO
prompts), which the warmed-up tiny model learns far above the location prior (docs/tiny_grounding.md), and
queries that carry their answer's position in tokens (``point>mask``, ``box>mask``, and polygons asked for
the object in a box, ``box>polygon``). Every stage is compared with the one before on the same held-out
questions (:func:`compare_runs`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from getok.errors import ConfigError, DataError
from getok.eval.baselines import BASELINES as _BASELINE_LABELS
from getok.eval.baselines import BaselineGenerator
from getok.eval.stats import format_diff, format_p
from getok.provenance import cpu_seconds, fingerprint
from getok.provenance import versions as provenance_versions

__all__ = [
    "DemoConfig",
    "FAST",
    "STAGES",
    "load_demo_config",
    "sft_config",
    "grpo_config",
    "build_box_polygon_set",
    "run_demo",
    "register",
    "main",
]

log = logging.getLogger("getok_lab.demo")

#: The stages, in order (``stages/<name>.json`` marks each one finished).
STAGES = (
    "data",
    "baselines",
    "eval-untrained",
    "sft",
    "eval-sft",
    "grpo1",
    "eval-grpo1",
    "grpo2",
    "eval-grpo2",
    "viz",
)

#: Models evaluated, in table order: (key, label, the stage that trains it).
MODELS = (
    ("untrained", "untrained (vocabulary added)", None),
    ("sft", "SFT", "sft"),
    ("grpo1", "GRPO stage 1", "grpo1"),
    ("grpo2", "GRPO stage 2", "grpo2"),
)

#: Trivial answers, evaluated like a model (no weights): (key, label) (getok.eval.baselines).
BASELINES = tuple(_BASELINE_LABELS.items())

GRID_CODEC = "grid_offset:n=8,r=1,step=0.5"
POLYGON_ASK = "<image>\nOutline the object in the box {query} with a polygon."
TASK_DECODER = "proposals:proposer=exact,n=8"
POLYGON_DECODER = "polygon"
TRAIN_SERIES, GRPO_SERIES, EVAL_SERIES = 0, 1, 10_000


# ---------------------------------------------------------------------------------------------- config
def _positive(obj, *names: str) -> None:
    from getok.config import check_numbers

    for n in names:
        if getattr(obj, n) is None:
            raise ConfigError(f"DemoConfig.{n} must be > 0, got None")
    check_numbers(obj, "DemoConfig", positive=names)  # also: no NaN / inf in any float field


@dataclass
class DemoConfig:
    """The demo's budget and task mix (everything else comes from the tiny CPU recipes).

    The SFT run is ``configs/sft/tiny-cpu.yaml`` (the schema defaults: tiny Qwen3-VL, vision warm-up) with
    the vocabulary, mixture, sample count and steps below; each GRPO stage is the schema defaults with the
    start policy, prompts and budget below and that stage's ``grpo1`` / ``grpo2`` settings — every GRPO
    setting the demo changes is in those two dicts (and in ``configs/demo/tiny-cpu.yaml``), and each stage
    writes the full config it ran as ``OUTPUT/grpo{1,2}/getok_grpo.yaml``. Free-form ``a.b=c`` overrides go
    in ``sft_overrides`` / ``grpo1_overrides`` / ``grpo2_overrides``.

    Attributes
    ----------
    seed : int
        Seeds the tiny model's weights, the new token rows, training order and GRPO sampling.
    torch_threads : int, optional
        Intra-op threads of every stage (``None``: every core this process may use). Two by default: on an
        otherwise idle 2-core machine two threads beat one (SFT 0.44 vs 0.68 s a step beside its data-loader
        worker, GRPO 1.27 vs 1.94 s, evaluation 1.5x), and a fixed count keeps the numbers the same on
        machines with more cores (reductions split by thread count). Where other jobs share the cores,
        spinning threads can run several times slower (docs/training.md) — set 1 there.
    train_scenes : int
        Training scenes of series 0 (SFT tasks, offsets, polygons).
    polygon_eps : float
        Douglas–Peucker tolerance of the polygon answers (relative to the perimeter).
    warmup_steps : int
        Vision warm-up steps before SFT (``vision_warmup.steps``; 0 turns it off).
    sft_samples, sft_steps, sft_lr, sft_batch : int, int, float, int
        SFT mixture size, optimiser steps (``-1``: one epoch), learning rate, batch size.
    mixture : dict
        Weights of the SFT mixture entries: ``point_box`` (``point>mask`` + ``box>mask``), ``text``
        (``text>mask``), ``offsets`` (two-turn refinement), ``polygons``
        (``box>polygon``). A zero weight drops the entry.
    offsets_k : list of int
        Proposed cells per refinement sample (the policy's own proposals have 1–3 cells; docs/rl.md:
        refinements of 6-cell proposals only do not transfer to them).
    offsets_tasks : list of str
        The questions of the refinement samples' first turn — the mask tasks the evaluation and stage 2
        refine (:func:`getok.data_builders.refine.refine_from_tasks`; ``k`` drawn per sample from
        ``offsets_k``). Empty: turn 1 asks ``Segment {query}.`` (one mixture entry per ``k``), a question
        the evaluation never asks — its SFT model answered every refine turn with ``<DELETE>``.
    offsets_inside_steps : float, optional
        The refinement labels' Inside band (``MixtureEntry.inside_steps``): ``0`` keeps every proposed
        point that lies on the object (``<off_0_0>``) and moves only the points beside it — the same masks
        under the demo's exact-region decoder; ``None``: DESIGN.md's band of ``r`` steps, which also moves
        points near the object's edge towards its inside.
    loss_turns : str
        ``train.loss_turns`` of SFT: ``last`` learns a refinement sample's final answer only, so the noisy
        proposal of turn 1 is context, never a target for the task question it follows.
    grpo_scenes, grpo_tasks : int, list of str
        GRPO prompts: scenes of series 1 and their query tasks.
    grpo1_steps, grpo2_steps : int
    grpo_generations, grpo_prompts : int
        Group size G and prompts per step.
    grpo1_lr, grpo2_lr : float
    grpo1, grpo2 : dict
        Each stage's settings (``rl.*``, ``proposals.*``, ``reward.*`` keys of the GRPO config), applied
        over the schema defaults.
    eval_scenes : int
        Held-out scenes of series 10000 (each gives the ``eval_tasks`` samples and one ``box>polygon``
        sample per object).
    eval_tasks : list of str
        Mask tasks of the held-out set (evaluated with ``turns`` turns of self-correction).
    turns : int
        Self-correction turns (1 proposal + refinements).
    eval_batch : int
    viz_samples : int
        Overlays rendered per evaluation set of the final model.
    """

    seed: int = 0
    torch_threads: int | None = 2
    train_scenes: int = 1500
    polygon_eps: float = 0.03
    warmup_steps: int = 450
    sft_samples: int = 14400
    sft_steps: int = 900
    sft_lr: float = 1e-3
    sft_batch: int = 16
    mixture: dict[str, float] = field(
        default_factory=lambda: {"point_box": 0.25, "text": 0.4, "offsets": 0.15, "polygons": 0.2}
    )
    offsets_k: list[int] = field(default_factory=lambda: [1, 2, 4])
    offsets_tasks: list[str] = field(default_factory=lambda: ["text>mask", "point>mask", "box>mask"])
    offsets_inside_steps: float | None = 0.0
    loss_turns: str = "last"
    grpo_scenes: int = 300
    grpo_tasks: list[str] = field(default_factory=lambda: ["text>mask"])
    grpo1_steps: int = 60
    grpo2_steps: int = 40
    grpo_generations: int = 8
    grpo_prompts: int = 4
    grpo1_lr: float = 1e-4
    grpo2_lr: float = 1e-4
    grpo1: dict[str, Any] = field(default_factory=lambda: {
        "rl.beta": 0.01, "rl.loss_type": "dapo", "rl.max_completion_length": 16, "rl.temperature": 1.0,
        "rl.entropy_coef": 0.0})  # fmt: skip
    grpo2: dict[str, Any] = field(default_factory=lambda: {
        "rl.beta": 0.01, "rl.loss_type": "dapo", "rl.max_completion_length": 16, "rl.temperature": 1.3,
        "rl.entropy_coef": 0.02, "proposals.refresh_steps": 1, "proposals.on_invalid": "fallback",
        "proposals.max_new_tokens": 16, "proposals.fallback_k": 4, "reward.stage2.bad_delete": -1.0})  # fmt: skip
    eval_scenes: int = 150
    eval_tasks: list[str] = field(default_factory=lambda: ["text>mask", "point>mask", "box>mask"])
    turns: int = 2
    eval_batch: int = 16
    viz_samples: int = 24
    sft_overrides: list[str] = field(default_factory=list)
    grpo1_overrides: list[str] = field(default_factory=list)
    grpo2_overrides: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.torch_threads is not None:
            _positive(self, "torch_threads")
        _positive(self, "train_scenes", "sft_samples", "sft_lr", "sft_batch", "grpo_scenes",
                  "grpo1_steps", "grpo2_steps", "grpo_generations", "grpo_prompts", "grpo1_lr", "grpo2_lr",
                  "eval_scenes", "turns", "eval_batch")  # fmt: skip
        if self.sft_steps == 0 or self.sft_steps < -1:
            raise ConfigError(f"DemoConfig.sft_steps must be -1 (one epoch) or > 0, got {self.sft_steps}")
        if not 0 <= self.polygon_eps < 1:
            raise ConfigError(f"DemoConfig.polygon_eps must be in [0, 1), got {self.polygon_eps}")
        known = {"point_box", "text", "offsets", "polygons"}
        bad = sorted(set(self.mixture) - known)
        if bad:
            raise ConfigError(f"DemoConfig.mixture: unknown entries {bad}; known: {sorted(known)}")
        if any(float(w) < 0 for w in self.mixture.values()) or not any(float(w) > 0 for w in self.mixture.values()):
            raise ConfigError(f"DemoConfig.mixture weights must be >= 0 with one > 0, got {self.mixture}")
        if self.mixture.get("offsets", 0) > 0 and not self.offsets_k:
            raise ConfigError("DemoConfig.offsets_k must list at least one k when the offsets weight is > 0")
        if any(k < 1 for k in self.offsets_k):
            raise ConfigError(f"DemoConfig.offsets_k must be >= 1, got {self.offsets_k}")
        for name in ("viz_samples", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"DemoConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("grpo1", "grpo2"):
            bad = [k for k in getattr(self, name) if k.split(".")[0] not in ("rl", "proposals", "reward")]
            if bad:
                raise ConfigError(f"DemoConfig.{name}: keys must be rl.*, proposals.* or reward.*, got {bad}")
        from getok.data_builders.tasks import TASKS

        for name in ("eval_tasks", "grpo_tasks", "offsets_tasks"):  # offsets_tasks may be empty
            tasks = getattr(self, name)
            wrong = [t for t in tasks if t not in TASKS or not t.endswith(">mask")]
            if wrong or not (tasks or name == "offsets_tasks"):
                raise ConfigError(f"DemoConfig.{name} must be a list of mask tasks"
                                  f"{' (or empty)' if name == 'offsets_tasks' else ''}, got {tasks}")  # fmt: skip
        if self.loss_turns not in ("all", "last"):
            raise ConfigError(f"DemoConfig.loss_turns must be 'all' or 'last', got {self.loss_turns!r}")

    @property
    def threads(self) -> int:
        """The intra-op threads the stages use (``torch_threads``, or every usable core)."""
        from getok.train.sft import usable_cores

        return int(self.torch_threads or usable_cores())

    @property
    def polygon_codec(self) -> str:
        from getok.codecs.base import get_codec

        return get_codec(f"polygon:vertex=grid_offset,n=8,r=1,step=0.5,eps={self.polygon_eps:g}").spec


#: ``--fast``: the same pipeline, sized to a 1–2 minute smoke run (numbers are meaningless at this size).
FAST: dict = {
    "torch_threads": 1,  # smoke runs share the machine (the test suite runs them in parallel)
    "train_scenes": 60,
    "warmup_steps": 4,
    "sft_samples": 320,
    "sft_steps": 20,
    "grpo_scenes": 16,
    "grpo1_steps": 2,
    "grpo2_steps": 2,
    "grpo_generations": 4,
    "grpo_prompts": 2,
    "eval_scenes": 3,
    "viz_samples": 3,
}


def load_demo_config(path: str | Path | None = None, overrides: Sequence[str] = (), *, fast: bool = False,
                     seed: int | None = None) -> DemoConfig:  # fmt: skip
    """Defaults (← :data:`FAST` with ``fast``) ← YAML file ← ``a.b=c`` overrides ← ``seed``; validated."""
    from getok.config import load_config, read_yaml_mapping

    ov = [f"{k}={json.dumps(v)}" for k, v in FAST.items()] if fast else []
    if path is not None:
        ov += [f"{k}={json.dumps(v)}" for k, v in read_yaml_mapping(path).items()]
    ov += list(overrides)
    if seed is not None:
        ov.append(f"seed={int(seed)}")
    return load_config(DemoConfig, None, ov)


def _mixture(cfg: DemoConfig, polygons_dir: Path) -> list[dict]:
    w = {k: float(v) for k, v in cfg.mixture.items()}
    out = []
    if w.get("point_box", 0) > 0:
        out.append({"type": "tasks", "weight": w["point_box"], "tasks": ["point>mask", "box>mask"], "greedy": "exact",
                    "name": "point_box"})  # fmt: skip
    if w.get("text", 0) > 0:
        out.append({"type": "tasks", "weight": w["text"], "tasks": ["text>mask"], "greedy": "exact", "name": "text"})
    if w.get("offsets", 0) > 0 and cfg.offsets_tasks:  # turn 1 = the evaluated question, k drawn per sample
        out.append({"type": "offsets", "weight": w["offsets"], "tasks": list(cfg.offsets_tasks),
                    "ks": [int(k) for k in cfg.offsets_k], "greedy": "exact", "name": "offsets",
                    "inside_steps": cfg.offsets_inside_steps})  # fmt: skip
    elif w.get("offsets", 0) > 0:  # turn 1 = "Segment {query}.", one entry per k
        for k in cfg.offsets_k:
            out.append({"type": "offsets", "weight": w["offsets"] / len(cfg.offsets_k), "k": int(k),
                        "name": f"offsets_k{k}", "inside_steps": cfg.offsets_inside_steps})  # fmt: skip
    if w.get("polygons", 0) > 0:
        out.append({"type": "dataset", "weight": w["polygons"], "path": str(polygons_dir), "name": "box_polygon"})
    return out


def _scenes_section(n: int, seed: int) -> dict:
    return {"n": int(n), "seed": int(seed), "size": [112, 112], "min_objects": 1, "max_objects": 3,
            "background": "mixed"}  # fmt: skip


def sft_config(cfg: DemoConfig, out: str | Path):
    """The SFT run: ``configs/sft/tiny-cpu.yaml`` (the schema defaults) with the demo's vocabulary, mixture
    and budget; held-out evaluation is the demo's own (``eval.enabled: false``)."""
    from getok.train.config import load_sft_config

    out = Path(out)
    ov = {
        "seed": cfg.seed,
        "output_dir": str(out / "sft"),
        "model.tiny_seed": cfg.seed,
        "vocab.codecs": [GRID_CODEC, cfg.polygon_codec],
        "vocab.init_seed": cfg.seed,
        "vision_warmup.steps": cfg.warmup_steps,
        "vision_warmup.torch_threads": cfg.threads,
        "data.num_samples": cfg.sft_samples,
        "data.task_seed": cfg.seed,
        "data.scenes": _scenes_section(cfg.train_scenes, TRAIN_SERIES),
        "data.mixture": _mixture(cfg, out / "data" / "polygons-train"),
        "train.lr": cfg.sft_lr,
        "train.loss_turns": cfg.loss_turns,
        "train.batch_size": cfg.sft_batch,
        "train.max_steps": cfg.sft_steps,
        "train.torch_threads": cfg.threads,
        "train.save_steps": 200,
        "train.save_total_limit": 1,
        "eval.enabled": False,
    }
    return load_sft_config(None, [f"{k}={json.dumps(v)}" for k, v in ov.items()] + list(cfg.sft_overrides))


def grpo_config(cfg: DemoConfig, out: str | Path, stage: int):
    """GRPO stage ``stage``: the schema defaults with the demo's start policy, prompts, budget and the stage's
    settings (``cfg.grpo1`` / ``cfg.grpo2``); held-out evaluation is the demo's own."""
    from getok.rl.grpo_config import load_grpo_config

    out = Path(out)
    steps = cfg.grpo1_steps if stage == 1 else cfg.grpo2_steps
    ov = {
        "seed": cfg.seed,
        "output_dir": str(out / f"grpo{stage}"),
        "model.path": str(out / ("sft" if stage == 1 else "grpo1") / "final"),
        "model.dtype": "float32",
        "vocab.codecs": [GRID_CODEC, cfg.polygon_codec],
        "tuning.mode": "full",
        "tuning.train_vision": False,
        "rl.stage": stage,
        "rl.num_generations": cfg.grpo_generations,
        "rl.prompts_per_step": cfg.grpo_prompts,
        "reward.decoder": TASK_DECODER,
        "data.scenes": _scenes_section(cfg.grpo_scenes, GRPO_SERIES),
        "data.tasks": list(cfg.grpo_tasks),
        "data.codec": GRID_CODEC,
        "data.task_seed": cfg.seed,
        "train.lr": cfg.grpo1_lr if stage == 1 else cfg.grpo2_lr,
        "train.scheduler": "constant_with_warmup",
        "train.max_steps": steps,
        "train.save_steps": max(1, steps // 2),
        "train.save_total_limit": 1,
        "train.torch_threads": cfg.threads,
        "eval.enabled": False,
        **(cfg.grpo1 if stage == 1 else cfg.grpo2),
    }
    extra = cfg.grpo1_overrides if stage == 1 else cfg.grpo2_overrides
    return load_grpo_config(None, [f"{k}={json.dumps(v)}" for k, v in ov.items()] + list(extra))


# ---------------------------------------------------------------------------------------------- data
def _scene_config():
    from getok.data_builders.scenes import SceneConfig

    return SceneConfig(size=(112, 112), min_objects=1, max_objects=3, background="mixed")


def build_box_polygon_set(n_scenes: int, series: int, polygon_codec: str, out_dir: str | Path, *,
                          progress: bool = False) -> Path:  # fmt: skip
    """``box>polygon`` samples: each object of ``n_scenes`` procedural scenes, asked for by its box (written
    in ``grid_offset:n=8`` tokens), answered with its outline in ``polygon_codec`` — the same tokens.

    The box in the question gives the object's position, which the tiny model reads from tokens; the outline
    within it is what it must learn (it cannot yet localise objects from pixels, docs/training.md). Reused
    when ``out_dir`` exists with the same settings.

    Returns
    -------
    Path
        The dataset directory (``task="box>polygon"``, ``kind="mask"``; ``truth["query"]`` holds the box).
    """
    from getok.codecs.base import get_codec
    from getok.data_builders.dataset import read_dataset, write_dataset
    from getok.data_builders.polygons import polygon_sample
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import SampleList, image_ref
    from getok.errors import GetokError
    from getok.geometry import Geometry
    from getok.ops.boxes import mask_to_box

    out = Path(out_dir)
    scfg = _scene_config()
    spec = {"n": int(n_scenes), "series": int(series), "codec": polygon_codec, "query_codec": GRID_CODEC,
            "ask": POLYGON_ASK, "scenes": scfg.to_dict()}  # fmt: skip
    fp = fingerprint(spec)
    if out.exists():
        if read_dataset(out, check_images=False).manifest.get("builder", {}).get("fingerprint") == fp:
            return out
        raise DataError(f"{out} holds a polygon set built with other settings; remove it or use another --out")
    qc = get_codec(GRID_CODEC)
    samples = SampleList(settings={"codec": polygon_codec, "type": "box>polygon"})
    scenes = generate_scenes(int(n_scenes), int(series), scfg)
    it = scenes
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(scenes, desc=f"polygons (series {series})", unit="scene")
    for im in it:
        ref, needs_write = image_ref(im)
        n0 = len(samples)
        for obj in im.objects:
            sid = f"{im.image_id}-box2polygon-o{obj.id}"
            try:
                mask = obj.get_mask()
                box = [float(v) for v in mask_to_box(mask)]
                btext = qc.encode([Geometry(size=im.size, box=box)], "box")
                s = polygon_sample(mask, polygon_codec, sample_id=sid, image_id=im.image_id, image=ref, query=btext,
                                   ask=POLYGON_ASK, meta={"source": "scenes", "category": obj.category})  # fmt: skip
            except GetokError as exc:
                samples.skip(f"{im.image_id} object {obj.id} box>polygon", str(exc))
                continue
            truth = {**s.truth, "query": {"type": "box", "box": box, "text": btext}}
            samples.append(dataclasses.replace(s, task="box>polygon", truth=truth))
        if needs_write and len(samples) > n0:
            samples.images[im.image_id] = im
    man = {"builder": {"fingerprint": fp, **spec},
           "sources": [{"loader": "scenes", "n": int(n_scenes), "seed": int(series), "config": scfg.to_dict()}]}  # fmt: skip
    return write_dataset(samples, out, man)


# ---------------------------------------------------------------------------------------------- timing
def _banner(k: int, name: str, text: str) -> None:
    line = f"[{k}/{len(STAGES)}] {name}: {text}"
    print(f"\n{'=' * len(line)}\n{line}\n{'=' * len(line)}", file=sys.stderr, flush=True)


class _Stages:
    """Runs stages once: ``stages/<name>.json`` (written last) holds the fingerprint, timing and result."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def marker(self, name: str) -> dict | None:
        p = self.dir / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def run(self, name: str, title: str, key: dict, fn: Callable[[], dict]) -> dict:
        from getok.io import atomic_write_json

        fp = fingerprint(key)
        k = STAGES.index(name) + 1
        m = self.marker(name)
        if m is not None:
            if m.get("fingerprint") != fp:
                raise ConfigError(
                    f"{self.dir / (name + '.json')} was made with other settings (another seed, --fast, config); "
                    "use another --out, or remove that directory to start over"
                )
            _banner(k, name, f"{title} — finished earlier ({m['wall_s']:.0f} s wall), skipped")
            self.skipped.append(name)
            return m
        _banner(k, name, title)
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = fn()
        m = {"stage": name, "title": title, "fingerprint": fp, "wall_s": round(time.perf_counter() - t0, 1),
             "cpu_s": round(cpu_seconds() - c0, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
             "result": result}  # fmt: skip
        atomic_write_json(self.dir / f"{name}.json", m)
        print(f"[{k}/{len(STAGES)}] {name}: done in {m['wall_s']:.0f} s wall, {m['cpu_s']:.0f} s CPU",
              file=sys.stderr, flush=True)  # fmt: skip
        self.ran.append(name)
        return m


# ---------------------------------------------------------------------------------------------- evaluation
def _turn1_records(records: Sequence[dict]) -> list[dict]:
    """Each sample's first answer (self-correction records keep it in ``turns[0]``)."""
    out = []
    for r in records:
        t = r.get("turns")
        out.append({**t[0], "task": r.get("task")} if t else r)
    return out


_KEEP = ("n", "gIoU", "cIoU", "Acc@0.5", "invalid_rate", "tokens_per_object", "boundary_F")


def _table_of(records: Sequence[dict]) -> dict:
    """Per-task and overall metrics of first answers (:func:`getok.eval.metrics.summarize`, LISA rule)."""
    from getok.eval.metrics import summarize

    recs = _turn1_records(records)
    groups: dict[str, list] = {}
    for r in recs:
        groups.setdefault(str(r.get("task")), []).append(r)
    out = {t: {k: summarize(g).get(k) for k in _KEEP} for t, g in sorted(groups.items())}
    if recs:
        out["all"] = {k: summarize(recs).get(k) for k in _KEEP}
    return out


def _selfcorrect_of(summary: dict) -> dict | None:
    sc = summary.get("selfcorrect")
    if not sc or not sc.get("turns"):
        return None
    keys = ("n", "gIoU", "Acc@0.5", "improved", "worse", "same", "refine_invalid_rate", "mean_delta")
    turns = {str(t): {k: r.get(k) for k in keys} | {"point_score": (r.get("points") or {}).get("point_score")}
             for t, r in sc["turns"].items()}  # fmt: skip
    oracle = {str(t): {k: r.get(k) for k in keys} | {"point_score": (r.get("points") or {}).get("point_score")}
              for t, r in (sc.get("oracle") or {}).items()}  # fmt: skip
    return {"n": sc.get("n"), "turns": turns, "oracle": oracle, "n_no_proposal": sc.get("n_no_proposal")}


def _evaluate_sets(model, processor, sets: dict, out: Path, cfg: DemoConfig, name: str, *, generate_fn=None,
                   progress: bool = True) -> dict:  # fmt: skip
    """Evaluate one model (or baseline) on the task set (self-correction) and the polygon set."""
    from getok.eval.runner import evaluate, read_records

    res = {}
    for key, (data_dir, decoder, turns, max_new) in sets.items():
        run_dir = out / key
        summary = evaluate(
            model, processor, str(data_dir), decoder=decoder, out_dir=str(run_dir), turns=turns, oracle=True,
            batch_size=cfg.eval_batch, max_new_tokens=max_new, resume=False, progress=progress, seed=cfg.seed,
            generate_fn=generate_fn[key] if isinstance(generate_fn, dict) else generate_fn, model_name=name,
        )  # fmt: skip
        recs = read_records(run_dir / "records.jsonl")
        res[key] = {"tables": _table_of(recs), "selfcorrect": _selfcorrect_of(summary), "dir": str(run_dir),
                    "eval_s": summary.get("run", {}).get("elapsed_s")}  # fmt: skip
    return res


def _eval_sets(cfg: DemoConfig, out: Path) -> dict:
    d = out / "data"
    return {
        "tasks": (d / "eval-tasks", TASK_DECODER, cfg.turns, 16),
        "polygons": (d / "eval-polygons", POLYGON_DECODER, 1, 48),
    }


def _load_model(path: Path):
    from getok.vocab import load_model_and_processor

    return load_model_and_processor(path)


def _untrained_model(cfg: DemoConfig, out: Path):
    """The tiny base (built into ``sft/base``, as the SFT run does) with the vocabulary added, untrained."""
    from getok.train.sft import prepare_base, setup_model

    scfg = sft_config(cfg, out)
    base = prepare_base(scfg, scfg.output_dir)
    model, processor, _, _ = setup_model(scfg, base)
    model.eval()
    return model, processor


# ---------------------------------------------------------------------------------------------- statistics
#: Paired comparisons of the report: (after, before) model / baseline keys, on the first answers.
COMPARISONS = (("sft", "baseline:centre"), ("sft", "baseline:random_object"), ("grpo1", "sft"), ("grpo2", "grpo1"),
               ("grpo2", "sft"))  # fmt: skip


def compare_runs(results: dict, kinds: dict[str, str] | None = None) -> dict:
    """Paired statistics over the same held-out questions (:func:`getok.eval.stats.paired_comparison`).

    Returns ``{"stages": [...], "selfcorrect": [...], "kinds": {...}}``: each stage of :data:`COMPARISONS`
    against the one before per task; each model's turn 2 against its turn 1 (and the oracle's turn 2) per mask
    task; and text>mask per expression kind (``kinds``: sample id → kind) with bootstrap intervals.
    """
    from getok.eval.runner import question_ious
    from getok.eval.stats import bootstrap_mean, paired_comparison

    def runs(key):
        group, name = ("baselines", key.split(":", 1)[1]) if key.startswith("baseline:") else ("models", key)
        r = results[group].get(name)
        if not r:
            return None
        q = {}
        for part in ("tasks", "polygons"):
            d = (r.get(part) or {}).get("dir")
            if d and Path(d, "records.jsonl").is_file():
                q.update(question_ious(d))
        return q

    cache: dict = {}

    def get(key):  # each run's records are read once
        if key not in cache:
            cache[key] = runs(key)
        return cache[key]

    def rnd(d):
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

    out: dict = {"stages": [], "selfcorrect": [], "kinds": {}}
    for after, before in COMPARISONS:
        a = get(after)
        b = get(before)
        if not a or not b:
            continue
        for task in sorted({v["task"] for v in a.values()}):
            ids = sorted(i for i in a if a[i]["task"] == task and i in b)
            if before.startswith("baseline:") and task != "text>mask":
                continue
            c = paired_comparison([b[i]["t1"] for i in ids], [a[i]["t1"] for i in ids])
            out["stages"].append({"model": after, "vs": before, "task": task, **rnd(c)})
    for name in (k for k, _, _ in MODELS if k != "untrained"):
        q = get(name)
        if not q:
            continue
        for task in sorted({v["task"] for v in q.values() if v["t2"] is not None}):
            ids = sorted(i for i in q if q[i]["task"] == task and q[i]["t2"] is not None)
            c = paired_comparison([q[i]["t1"] for i in ids], [q[i]["t2"] for i in ids])
            o = paired_comparison([q[i]["t1"] for i in ids], [q[i]["oracle"] or 0.0 for i in ids])
            out["selfcorrect"].append({"model": name, "task": task, **rnd(c), "oracle": round(o["after"], 4),
                                       "oracle_diff": round(o["diff"], 4)})  # fmt: skip
    if kinds:
        for key in [k for k, _, _ in MODELS] + [f"baseline:{b}" for b, _ in BASELINES]:
            q = get(key)
            if not q:
                continue
            by: dict[str, list] = {}
            for i, v in q.items():
                if v["task"] == "text>mask" and i in kinds:
                    by.setdefault(kinds[i], []).append(v["t1"])
            out["kinds"][key] = {k: rnd(bootstrap_mean(v)) for k, v in sorted(by.items())}
    return out


def _expression_kinds(data_dir: Path) -> dict[str, str]:
    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.scenes import expression_kind

    return {s.sample_id: expression_kind(s.truth["query"]["text"]) for s in read_dataset(data_dir, check_images=False)
            if s.task == "text>mask" and (s.truth or {}).get("query", {}).get("type") == "text"}  # fmt: skip


# ---------------------------------------------------------------------------------------------- figures
def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _moving(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) < 2:
        return x
    k = max(1, min(k, len(x)))
    c = np.cumsum(np.insert(x.astype(float), 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_training_curves(out: Path, png: Path) -> Path:
    """SFT loss and GRPO stage-1 / stage-2 mean reward per step (with a moving average), one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("sft", "loss", "SFT: training loss"), ("grpo1", "reward", "GRPO stage 1: mean reward"),
              ("grpo2", "reward", "GRPO stage 2: mean reward")]  # fmt: skip
    for ax, (stage, key, title) in zip(axes, panels):
        recs = [r for r in _read_jsonl(out / stage / "metrics.jsonl") if key in r and "step" in r]
        if recs:
            s = np.array([r["step"] for r in recs])
            v = np.array([r[key] for r in recs], dtype=float)
            ax.plot(s, v, color="0.7", lw=0.8, marker="." if len(s) < 30 else None, label="per log step")
            ax.plot(s, _moving(v, 10), color="C0", lw=2, label="moving average (10)")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def plot_miou(results: dict, png: Path) -> Path:
    """Held-out mIoU per task (first answers) for every model, baselines as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = _task_columns(results)
    models = [(k, lab) for k, lab, _ in MODELS if k in results["models"]]
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(tasks), 4))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(tasks))
    for i, (k, lab) in enumerate(models):
        vals = [_metric(results["models"][k], t, "gIoU") or 0.0 for t in tasks]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, vals, width, label=lab.split(" (")[0])
    styles = {"centre": ("k", "--"), "query": ("C3", ":")}
    for b, (color, ls) in styles.items():
        if b in results["baselines"]:
            for j, t in enumerate(tasks):
                v = _metric(results["baselines"][b], t, "gIoU")
                if v is not None:
                    ax.hlines(
                        v, j - 0.45, j + 0.45, colors=color, linestyles=ls, label=f"baseline: {b}" if j == 0 else None
                    )
    ax.set_xticks(x, tasks)
    ax.set_ylabel("held-out mIoU (first answer)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


# ---------------------------------------------------------------------------------------------- report
def _task_columns(results: dict) -> list[str]:
    seen: list[str] = []
    for group in (results["models"], results["baselines"]):
        for r in group.values():
            for set_key in ("tasks", "polygons"):
                for t in (r.get(set_key) or {}).get("tables", {}):
                    if t != "all" and t not in seen:
                        seen.append(t)
    order = ["text>mask", "point>mask", "box>mask", "box>polygon"]
    return sorted(seen, key=lambda t: (order.index(t) if t in order else len(order), t))


def _metric(res: dict, task: str, key: str):
    for set_key in ("tasks", "polygons"):
        tab = (res.get(set_key) or {}).get("tables", {})
        if task in tab:
            return tab[task].get(key)
    return None


def _f(v, pct: bool = False, signed: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not np.isfinite(v):
        return "nan"
    if pct:
        return f"{100 * v:.0f} %"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _fmt_s(s) -> str:
    if s is None:
        return "–"
    s = float(s)
    return f"{s:.0f} s" if s < 90 else f"{int(s // 60)} min {s % 60:02.0f} s"


def _n_of(results: dict, task: str) -> int | None:
    for group in (results["models"], results["baselines"]):
        for r in group.values():
            for set_key in ("tasks", "polygons"):
                tab = (r.get(set_key) or {}).get("tables", {})
                if task in tab:
                    return tab[task].get("n")
    return None


def _turn2_gains(sc: dict):
    """``(turn 1, turn 2, oracle turn 2, gain, oracle gain)`` of a self-correction summary (gains ``None``
    where a gIoU is missing)."""
    t1, t2, o2 = sc["turns"].get("1", {}), sc["turns"].get("2", {}), sc["oracle"].get("2", {})

    def diff(a, b):
        return None if a.get("gIoU") is None or b.get("gIoU") is None else b["gIoU"] - a["gIoU"]

    return t1, t2, o2, diff(t1, t2), diff(t1, o2)


def _train_loadavg(info: dict):
    """The load average at the start of the invocation that ran SFT (a re-render runs nothing)."""
    for inv in reversed(info.get("invocations") or []):
        if "sft" in (inv.get("ran") or []):
            return inv.get("loadavg_start")
    return info["machine"].get("loadavg_start")


def _lock_line(diff) -> str:
    if diff is None:
        return "Versions: no `requirements/lock.txt` beside this install (not a checkout); see `run.json`."
    if not diff:
        return "Versions: every recorded package matches `requirements/lock.txt` (what `make demo` installs)."
    return ("**Versions differ from `requirements/lock.txt`** — numbers may not match the committed report: "
            + ", ".join(f"{k} {v['installed']} (lock {v['lock']})" for k, v in sorted(diff.items())) + ".")


def _tiny_name(info: dict) -> str:
    tiny = ((info.get("sft") or {}).get("config") or {}).get("model", {}).get("tiny") or {}
    fam = tiny.get("family", "qwen3_vl")
    return {"qwen3_vl": "Qwen3-VL", "qwen2_5_vl": "Qwen2.5-VL"}.get(fam, fam)


def _label(key: str) -> str:
    if key.startswith("baseline:"):
        return key.split(":", 1)[1].replace("_", " ")
    return {k: lab for k, lab, _ in MODELS}.get(key, key)


def _comparison_sections(comp: dict) -> list[str]:
    """Markdown for :func:`compare_runs`: paired stage comparisons, self-correction, text>mask by kind."""
    L: list[str] = []
    if comp.get("stages"):
        L += [
            "## Is each difference real? (paired over the same held-out questions)",
            "",
            "Mean difference of per-question IoU (first answers) with a 95 % bootstrap interval over questions, the "
            "questions that got better / worse, and a two-sided sign test on those counts. *Significant*: p < 0.05 "
            "and the interval excludes 0.",
            "",
            "| model | compared with | task | n | mIoU before | mIoU after | difference [95 % CI] | better / worse | p | significant |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in comp["stages"]:
            L.append(
                f"| {_label(c['model'])} | {_label(c['vs'])} | {c['task']} | {c['n']} | {_f(c['before'])} | "
                f"{_f(c['after'])} | {format_diff(c)} | "
                f"{c['improved']} / {c['worse']} | {format_p(c['p'])} | {'**yes**' if c['significant'] else 'no'} |"
            )
        L.append("")
    if comp.get("kinds"):
        kinds = sorted({k for v in comp["kinds"].values() for k in v})
        L += [
            "## text>mask by expression type (mIoU [95 % bootstrap CI])",
            "",
            "| model | " + " | ".join(f"{k} (n={next(v[k]['n'] for v in comp['kinds'].values() if k in v)})"
                                     for k in kinds) + " |",
            "|" + "---|" * (len(kinds) + 1),
        ]  # fmt: skip
        for key, by in comp["kinds"].items():
            cells = [f"{_f(by[k]['mean'])} [{_f(by[k]['lo'])}, {_f(by[k]['hi'])}]" if k in by else "–" for k in kinds]
            name = f"baseline: {_label(key)}" if key.startswith("baseline:") else f"**{_label(key)}**"
            L.append(f"| {name} | " + " | ".join(cells) + " |")
        L.append("")
    return L


def summary_markdown(results: dict, info: dict) -> str:
    """``summary.md``: the tables of the demo (see the module docstring) from the collected results."""
    tasks = _task_columns(results)
    models = [(k, lab) for k, lab, _ in MODELS if k in results["models"]]
    base = [(k, lab) for k, lab in BASELINES if k in results["baselines"]]
    cfg = info["config"]
    L: list[str] = []
    L += [
        "# getok demo: the GETok pipeline in miniature",
        "",
        f"`{info['command']}` — seed {cfg['seed']}{' (`--fast`: a smoke run; its numbers mean nothing)' if info['fast'] else ''}, "
        f"{info['machine']['cpus']} CPU cores, getok {info['versions'].get('getok')}, torch {info['versions'].get('torch')}, "
        f"transformers {info['versions'].get('transformers')}, trl {info['versions'].get('trl')}.",
        "",
        _lock_line(info.get("versions_vs_lock")),
        "",
        f"Procedural 112-px scenes → the tiny offline {_tiny_name(info)} (random weights) with the "
        f"grid + offset vocabulary `{GRID_CODEC}` (8 × 8 cells, 9 half-cell offsets, `<DELETE>`) and polygon "
        f"answers written with the same tokens (`{cfg['polygon_codec']}`) → vision warm-up "
        f"({cfg.get('warmup_steps', 0)} steps) → SFT ({info['sft']['steps']} steps of "
        f"{cfg['sft_batch']}) → GRPO stage 1 ({cfg['grpo1_steps']} steps) → GRPO stage 2 with real two-turn "
        f"rollouts ({cfg['grpo2_steps']} steps) → held-out evaluation ({cfg['eval_scenes']} scenes of series "
        f"{EVAL_SERIES}, greedy decoding).",
        "",
        f"Masks: cells and moved points select the scene's exact regions (`{TASK_DECODER}`); polygons are "
        f"rasterised (`{POLYGON_DECODER}`). mIoU = mean per-sample IoU (gIoU); empty targets follow LISA's "
        "convention (none here). With the exact-region decoder an answer selects a whole region, so a "
        "sample's IoU is mostly 0 or 1 and mIoU ≈ Acc@0.5.",
        "",
        "## Held-out mIoU per task (first answer)",
        "",
    ]
    head = "| model | " + " | ".join(f"{t} (n={_n_of(results, t)})" for t in tasks) + " | invalid answers |"
    L += [head, "|" + "---|" * (len(tasks) + 2)]

    def inv(res):
        vals = [(r.get("tables", {}).get("all") or {}) for r in (res.get("tasks"), res.get("polygons")) if r]
        n = sum(v.get("n") or 0 for v in vals)
        bad = sum((v.get("invalid_rate") or 0) * (v.get("n") or 0) for v in vals)
        return bad / n if n else None

    for k, lab in models:
        r = results["models"][k]
        L.append(
            f"| **{lab}** | " + " | ".join(_f(_metric(r, t, "gIoU")) for t in tasks) + f" | {_f(inv(r), pct=True)} |"
        )
    for k, lab in base:
        r = results["baselines"][k]
        L.append(
            f"| baseline: {lab} | "
            + " | ".join(_f(_metric(r, t, "gIoU")) for t in tasks)
            + f" | {_f(inv(r), pct=True)} |"
        )
    L += ["", "![mIoU by model](figures/miou_by_model.png)", ""]
    L += _comparison_sections(info.get("comparisons") or {})
    L += [
        "## Two-turn self-correction (mask tasks; turn 2 refines turn 1's cells with offsets / `<DELETE>`)",
        "",
        "| model | n | turn 1 = no refinement | turn 2 (the model's refinement) | gain | improved / worse / same | "
        "refinements invalid | point score | oracle refinement, turn 2 | oracle gain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, lab in models:
        sc = (results["models"][k].get("tasks") or {}).get("selfcorrect")
        if not sc:
            continue
        t1, t2, o2, g, og = _turn2_gains(sc)
        L.append(
            f"| {lab} | {sc['n']} | {_f(t1.get('gIoU'))} | {_f(t2.get('gIoU'))} | {_f(g, signed=True)} | "
            f"{t2.get('improved', '–')} / {t2.get('worse', '–')} / {t2.get('same', '–')} | "
            f"{_f(t2.get('refine_invalid_rate'), pct=True)} | {_f(t2.get('point_score'), signed=True)} | "
            f"{_f(o2.get('gIoU'))} | {_f(og, signed=True)} |"
        )
    L += [
        "",
        "A sample with no valid proposal in turn 1 is not asked to refine (it keeps turn 1's record). The oracle "
        "refines the model's own proposal with the offset builder's labels (Inside / Ring move / Far / "
        "Hard-Delete): what a perfect refiner would gain from the same proposal. Point score: +1 a point ends "
        "on the object (or a valid delete), −1 a move leaves it, averaged over points.",
        "",
    ]
    sc_rows = (info.get("comparisons") or {}).get("selfcorrect") or []
    if sc_rows:
        L += [
            "Per task, paired over the same questions (turn 2 vs turn 1; 95 % bootstrap interval, sign test):",
            "",
            "| model | task | n | turn 1 | turn 2 | gain [95 % CI] | better / worse | p | significant | oracle turn 2 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in sc_rows:
            L.append(
                f"| {_label(c['model'])} | {c['task']} | {c['n']} | {_f(c['before'])} | {_f(c['after'])} | "
                f"{format_diff(c)} | "
                f"{c['improved']} / {c['worse']} | {format_p(c['p'])} | {'**yes**' if c['significant'] else 'no'} | "
                f"{_f(c['oracle'])} |"
            )
        L.append("")
    L += [
        "## Polygon mode (`box>polygon`: the object in a query box, answered as a polygon in the same tokens)",
        "",
        "| model | n | mIoU | Acc@0.5 | invalid | tokens / object | boundary F |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, rows in (("models", models), ("baselines", base)):
        for k, lab in rows:
            p = (results[group][k].get("polygons") or {}).get("tables", {}).get("box>polygon")
            if not p:
                continue
            name = f"**{lab}**" if group == "models" else f"baseline: {lab.split(' (')[0]}"
            tpo = p.get("tokens_per_object")
            tpo = "–" if tpo is None else f"{tpo:.1f}"
            L.append(
                f"| {name} | {p.get('n')} | {_f(p.get('gIoU'))} | {_f(p.get('Acc@0.5'))} | "
                f"{_f(p.get('invalid_rate'), pct=True)} | {tpo} | {_f(p.get('boundary_F'))} |"
            )
    L += [
        "",
        "Baselines: `centre` is a fixed central square; `query` answers the query box itself as a 4-vertex "
        "polygon (what the question alone gives); `reference` is the encoded target (the ceiling of an 8-grid "
        "with half-cell offsets at this tolerance).",
        "",
        "## Training",
        "",
        "![training curves](figures/training_curves.png)",
        "",
        "| stage | steps | first → last | wall | CPU |",
        "|---|---|---|---|---|",
    ]
    tr = info["training"]
    if tr.get("sft"):
        s = tr["sft"]
        L.append(f"| SFT (loss) | {s.get('steps')} | {_f(s.get('first_loss'))} → {_f(s.get('last_loss'))} | "
                 f"{_fmt_s(s.get('train_wall_s'))} | {_fmt_s(s.get('train_cpu_s'))} |")  # fmt: skip
    for stage in ("grpo1", "grpo2"):
        g = tr.get(stage)
        if g:
            rw = g.get("reward") or {}
            L.append(
                f"| GRPO stage {stage[-1]} (mean reward, first / last {rw.get('window', '–')} steps) | {g.get('steps')} | "
                f"{_f(rw.get('first_mean'))} → {_f(rw.get('last_mean'))} | {_fmt_s(g.get('train_wall_s'))} | "
                f"{_fmt_s(g.get('train_cpu_s'))} |"
            )
    L += ["", "## Time per stage", "", "| stage | what | wall | CPU |", "|---|---|---|---|"]
    tw = tc = 0.0
    for st in STAGES:
        m = info["stages"].get(st)
        if not m:
            L.append(f"| {st} | (not run) | – | – |")
            continue
        tw += m["wall_s"]
        tc += m["cpu_s"]
        L.append(f"| {st} | {m['title']} | {_fmt_s(m['wall_s'])} | {_fmt_s(m['cpu_s'])} |")
    L.append(f"| **total** | | **{_fmt_s(tw)}** | **{_fmt_s(tc)}** |")
    L += [
        "",
        f"Target: ≤ 15 min on 2 cores — {'met' if tw <= 15 * 60 else f'**not met** ({_fmt_s(tw)} wall)'}. "
        "CPU time counts this process and its finished children (the SFT data "
        f"loader worker); wall time also counts waiting for a CPU when other jobs share the machine "
        f"(load average when the training ran: {_train_loadavg(info)}).",
        "",
        "## What this miniature shows, and what it cannot",
        "",
    ]
    L += _findings(results, info)
    L += [
        "",
        "## Files",
        "",
        "- per-sample overlays of the final model: [viz/tasks/index.html](viz/tasks/index.html), "
        "[viz/polygons/index.html](viz/polygons/index.html)",
        "- evaluation records and tables of every model and baseline: `eval/<model>/{tasks,polygons}/`",
        "- checkpoints: `sft/final`, `grpo1/final`, `grpo2/final`; data: `data/`; stage markers: `stages/`",
        "- configuration, seeds, versions, timings: `run.json`",
        "",
        f"Reproduce: `{info['command']}` (same seed → same numbers; a finished stage is skipped on re-run).",
    ]
    return "\n".join(L) + "\n"


def _findings(results: dict, info: dict) -> list[str]:
    """Plain statements, each computed from the numbers (and the paired tests) it states."""
    out = []
    m, b = results["models"], results["baselines"]
    comp = info.get("comparisons") or {}

    def g(res, t):
        return _metric(res, t, "gIoU") if res else None

    def pair(after, before, task):
        return next((c for c in comp.get("stages", []) if (c["model"], c["vs"], c["task"]) == (after, before, task)),
                    None)  # fmt: skip

    def said(c):
        if not c:
            return "not compared"
        return (f"{format_diff(c)}, "
                f"{c['improved']} better / {c['worse']} worse, p {format_p(c['p'], eq=True)}")  # fmt: skip

    un, final = m.get("untrained"), m.get("grpo2") or m.get("grpo1") or m.get("sft")
    inv_un = ((un or {}).get("tasks") or {}).get("tables", {}).get("all", {}).get("invalid_rate")
    inv_fi = ((final or {}).get("tasks") or {}).get("tables", {}).get("all", {}).get("invalid_rate")
    out.append(f"- **The answer grammar is learned.** Invalid answers: untrained {_f(inv_un, pct=True)} → final "
               f"{_f(inv_fi, pct=True)}.")  # fmt: skip
    t = "text>mask"
    sft = g(m.get("sft"), t)
    if sft is not None:
        vc, vr = pair("sft", "baseline:centre", t), pair("sft", "baseline:random_object", t)
        if vr and vr["significant"] and vr["diff"] > 0:
            verdict = "the model finds the object the sentence names, from the pixels, more often than a random object of the scene"
        elif vc and vc["significant"] and vc["diff"] > 0:
            verdict = ("the model finds objects from the pixels (above the centre prior) but not reliably the one the "
                       "sentence names (not above a random object of the scene)")  # fmt: skip
        else:
            verdict = "not above the location prior: the model does not find objects from the pixels at this budget"
        out.append(
            f"- **text>mask (find the named object from pixels)**: SFT {_f(sft)} vs always-centre "
            f"{_f(g(b.get('centre'), t))} ({said(vc)}), a random object of the scene {_f(g(b.get('random_object'), t))} "
            f"({said(vr)}), ceiling {_f(g(b.get('reference'), t))} — {verdict}."
        )
        c1 = pair("grpo1", "sft", t)
        if c1:
            out.append(f"- **GRPO stage 1 on text>mask**: {_f(c1['before'])} → {_f(c1['after'])} ({said(c1)}): "
                       + ("a significant gain." if c1["significant"] and c1["diff"] > 0 else
                          "a significant loss." if c1["significant"] else "no significant change."))  # fmt: skip
    for t in ("point>mask", "box>mask", "box>polygon"):
        s_, c, q = g(m.get("sft"), t), g(b.get("centre"), t), g(b.get("query"), t)
        if s_ is None:
            continue
        rel = "above" if c is not None and s_ > c + 0.1 else "not clearly above"
        rel_q = "above" if q is not None and s_ > q else "below"
        out.append(f"- **{t}** (the position is written in the question): SFT {_f(s_)}, {rel} always-centre {_f(c)} "
                   f"and {rel_q} the query-only answer {_f(q)}; final {_f(g(final, t))}.")  # fmt: skip
    sc = [c for c in comp.get("selfcorrect", []) if c["model"] == ("grpo2" if m.get("grpo2") else "sft")]
    for c in sc:
        out.append(
            f"- **Self-correction, {c['task']}** ({_label(c['model'])}): turn 2 vs turn 1 {_f(c['before'])} → "
            f"{_f(c['after'])} ({said(c)}); the oracle refinement of the same proposals reaches {_f(c['oracle'])}."
        )
    out.append(
        "- **Scale.** 8 × 8 cells on 112-px scenes, a 3.5 M-parameter model trained for minutes: the numbers "
        "compare the stages of one pipeline with each other and with trivial answers; they are not estimates "
        "of what GETok or SimpleSeg reach at 7B."
    )
    return out


# ---------------------------------------------------------------------------------------------- the run
def lock_differences(versions: dict, lock: str | Path | None = None) -> dict | None:
    """``{package: {"installed", "lock"}}`` for every package of ``versions`` whose installed version differs
    from ``requirements/lock.txt`` (the versions ``make demo`` installs); None when there is no lock file
    (getok installed from a wheel).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "lock.txt")
    >>> _ = open(f, "w").write("# comment\\ntorch==2.14.1\\nTransformers==5.23.0\\n")
    >>> lock_differences({"torch": "2.14.1", "transformers": "5.25.0", "numpy": "2.0"}, f)
    {'transformers': {'installed': '5.25.0', 'lock': '5.23.0'}}
    """
    path = Path(lock) if lock else Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
    if not path.is_file():
        return None
    pinned = {}
    for line in path.read_text().splitlines():
        name, sep, ver = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pinned[name.strip().lower().replace("_", "-")] = ver.strip()
    return {k: {"installed": v, "lock": pinned[k.lower()]} for k, v in versions.items()
            if k.lower() in pinned and v is not None and pinned[k.lower()] != v}  # fmt: skip


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_demo(cfg: DemoConfig, out_dir: str | Path, *, fast: bool = False, progress: bool = True,
             command: str | None = None) -> Path:  # fmt: skip
    """Run (or resume) the demo into ``out_dir``; returns the path of ``summary.md``.

    Parameters
    ----------
    cfg : DemoConfig
    out_dir : path
    fast : bool
        Recorded in the report (``cfg`` already holds the :data:`FAST` sizes).
    progress : bool
        tqdm bars inside the stages (stage banners are always printed, on stderr).
    command : str, optional
        The command line recorded in the report.
    """
    from getok.config import config_to_dict
    from getok.io import atomic_write_json, atomic_write_text

    t_start, c_start = time.perf_counter(), cpu_seconds()
    load0 = _loadavg()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch

        torch.set_num_threads(cfg.threads)
    except ImportError as exc:  # pragma: no cover - torch is a hard requirement of training
        raise ConfigError(f"the demo trains a model: install torch ({exc})") from exc
    stages = _Stages(out)
    sft_cfg = sft_config(cfg, out)
    g1_cfg, g2_cfg = grpo_config(cfg, out, 1), grpo_config(cfg, out, 2)
    d = out / "data"
    keys: dict[str, dict] = {}
    keys["data"] = {"train_scenes": cfg.train_scenes, "eval_scenes": cfg.eval_scenes, "eval_tasks": cfg.eval_tasks,
                    "polygon_codec": cfg.polygon_codec}  # fmt: skip
    eval_key = {"turns": cfg.turns, "eval_batch": cfg.eval_batch, "seed": cfg.seed, "data": keys["data"]}

    # 1. data: the polygon training set and the held-out sets
    def data_stage() -> dict:
        from getok.data_builders.dataset import read_dataset
        from getok.train.config import EvalConfig
        from getok.train.data import build_eval_set

        poly_train = build_box_polygon_set(cfg.train_scenes, TRAIN_SERIES, cfg.polygon_codec, d / "polygons-train",
                                           progress=progress)  # fmt: skip
        ev = EvalConfig(n_scenes=cfg.eval_scenes, seed=EVAL_SERIES, tasks=list(cfg.eval_tasks))
        tasks = build_eval_set(ev, sft_cfg.data, GRID_CODEC, d / "eval-tasks")
        poly_eval = build_box_polygon_set(cfg.eval_scenes, EVAL_SERIES, cfg.polygon_codec, d / "eval-polygons")
        return {name: len(read_dataset(p, check_images=False)) for name, p in
                (("polygons-train", poly_train), ("eval-tasks", tasks), ("eval-polygons", poly_eval))}  # fmt: skip

    stages.run("data", "scenes → polygon training set, held-out task and polygon sets", keys["data"], data_stage)
    sets = _eval_sets(cfg, out)

    # 2. trivial baselines
    def baselines_stage() -> dict:
        from getok.data_builders.dataset import read_dataset

        samples = {key: list(read_dataset(data_dir, check_images=False)) for key, (data_dir, *_) in sets.items()}
        res = {}
        for b, _ in BASELINES:
            gens = {key: BaselineGenerator(b, cfg.polygon_codec, samples=samples[key], seed=cfg.seed) for key in sets}
            res[b] = _evaluate_sets(None, None, sets, out / "eval" / f"baseline-{b}", cfg, f"baseline:{b}",
                                    generate_fn=gens, progress=False)  # fmt: skip
        return res

    base_m = stages.run("baselines", "trivial answers (centre cell, the query's geometry, the reference)",
                        {"eval": eval_key, "baselines": [b for b, _ in BASELINES]}, baselines_stage)  # fmt: skip

    # 3. the untrained model
    def untrained_stage() -> dict:
        model, proc = _untrained_model(cfg, out)
        return _evaluate_sets(model, proc, sets, out / "eval" / "untrained", cfg, "untrained", progress=progress)

    # training depends on the training data only: other held-out settings re-evaluate, never retrain
    keys["sft"] = {"sft": config_to_dict(sft_cfg), "data": {k: keys["data"][k] for k in ("train_scenes", "polygon_codec")}}
    model_m = {"untrained": stages.run("eval-untrained", "evaluate the untrained model (vocabulary added)",
                                       {"eval": eval_key, "model": keys["sft"]}, untrained_stage)}  # fmt: skip

    # 4-9. train and evaluate
    def sft_stage() -> dict:
        from getok.train.sft import run_sft

        s = run_sft(sft_cfg, progress=progress)
        return {"train": s.get("train"), "data": s.get("data"), "params": s.get("params"), "final": s.get("final")}

    def grpo_stage(gcfg) -> Callable[[], dict]:
        def fn() -> dict:
            from getok.rl.grpo import run_grpo

            s = run_grpo(gcfg, progress=progress)
            keep = ("train", "data", "params", "final", "proposals", "start_policy")
            return {k: s.get(k) for k in keep}

        return fn

    def eval_stage(path: Path, name: str) -> Callable[[], dict]:
        def fn() -> dict:
            model, proc = _load_model(path)
            return _evaluate_sets(model, proc, sets, out / "eval" / name, cfg, name, progress=progress)

        return fn

    train_m: dict[str, dict] = {}
    keys["grpo1"] = {"grpo": config_to_dict(g1_cfg), "after": keys["sft"]}
    keys["grpo2"] = {"grpo": config_to_dict(g2_cfg), "after": keys["grpo1"]}
    titles = {
        "sft": f"SFT of the tiny model ({sft_cfg.train.max_steps} steps of {sft_cfg.train.batch_size})",
        "grpo1": f"GRPO stage 1: propose cells ({g1_cfg.train.max_steps} steps × {g1_cfg.per_device_batch} completions)",
        "grpo2": f"GRPO stage 2: refine own proposals ({g2_cfg.train.max_steps} steps × {g2_cfg.per_device_batch} completions)",
    }
    fns = {"sft": sft_stage, "grpo1": grpo_stage(g1_cfg), "grpo2": grpo_stage(g2_cfg)}
    for name in ("sft", "grpo1", "grpo2"):
        train_m[name] = stages.run(name, titles[name], keys[name], fns[name])
        model_m[name] = stages.run(f"eval-{name}", f"evaluate the {name} model", {"eval": eval_key, "model": keys[name]},
                                   eval_stage(out / name / "final", name))  # fmt: skip

    # 10. per-sample overlays of the final model
    def viz_stage() -> dict:
        from getok.eval.viz import render_run

        res = {}
        for set_key in ("tasks", "polygons"):
            run_dir = out / "eval" / "grpo2" / set_key
            recs = _read_jsonl(run_dir / "records.jsonl")
            ids = _viz_ids(recs, cfg.viz_samples)
            r = render_run(run_dir, out / "viz" / set_key, ids=ids, progress=progress)
            res[set_key] = {"index": str(Path(r["index"]).relative_to(out)), "rendered": len(r["pngs"]),
                            "skipped": len(r["skipped"])}  # fmt: skip
        return res

    stages.run("viz", "per-sample overlays + HTML index of the final model",
               {"viz": cfg.viz_samples, "after": keys["grpo2"], "eval": eval_key}, viz_stage)  # fmt: skip

    # report (always rewritten from the markers)
    results = {"models": {k: v["result"] for k, v in model_m.items()},
               "baselines": base_m["result"]}  # fmt: skip
    comparisons = compare_runs(results, _expression_kinds(out / "data" / "eval-tasks"))
    plot_training_curves(out, out / "figures" / "training_curves.png")
    plot_miou(results, out / "figures" / "miou_by_model.png")
    for stage in ("grpo1", "grpo2"):
        src = out / stage / "reward_curve.png"
        if src.is_file():
            shutil.copyfile(src, out / "figures" / f"{stage}_reward_curve.png")
    stage_info = {st: {k: m[k] for k in ("title", "wall_s", "cpu_s", "finished")}
                  for st in STAGES if (m := stages.marker(st))}  # fmt: skip
    info = {
        "command": command or f"getok demo --out {out}" + (" --fast" if fast else "") + f" --seed {cfg.seed}",
        "fast": fast,
        "config": {**config_to_dict(cfg), "polygon_codec": cfg.polygon_codec},
        "seeds": {
            "seed": cfg.seed,
            "tiny_model": sft_cfg.model.tiny_seed,
            "vocab_init": sft_cfg.vocab.init_seed,
            "scene_series": {"sft": TRAIN_SERIES, "grpo": GRPO_SERIES, "held_out": EVAL_SERIES},
        },  # fmt: skip
        "versions": (versions := provenance_versions()),
        "versions_vs_lock": lock_differences(versions),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_start": load0,
            "torch_threads": cfg.threads,
        },  # fmt: skip
        "sft": {"steps": sft_cfg.train.max_steps, "config": config_to_dict(sft_cfg)},
        "grpo": {"stage1": config_to_dict(g1_cfg), "stage2": config_to_dict(g2_cfg)},
        "training": {k: (v["result"] or {}).get("train") for k, v in train_m.items()},
        "stages": stage_info,
        "total": {
            "wall_s": round(sum(m["wall_s"] for m in stage_info.values()), 1),
            "cpu_s": round(sum(m["cpu_s"] for m in stage_info.values()), 1),
        },  # fmt: skip
        "results": results,
        "comparisons": comparisons,
    }
    prev = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    invocation = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - (time.perf_counter() - t_start))),
                  "ran": stages.ran, "skipped": stages.skipped, "wall_s": round(time.perf_counter() - t_start, 1),
                  "cpu_s": round(cpu_seconds() - c_start, 1), "loadavg_start": load0, "loadavg_end": _loadavg()}  # fmt: skip
    info["invocations"] = list(prev.get("invocations", [])) + [invocation]
    atomic_write_json(out / "run.json", info)
    summary = out / "summary.md"
    atomic_write_text(summary, summary_markdown(results, info))
    return summary


def _viz_ids(records: Sequence[dict], k: int) -> list[str]:
    """Up to ``k`` sample ids, spread over the tasks (the first of each task in turn)."""
    by_task: dict[str, list[str]] = {}
    for r in records:
        by_task.setdefault(str(r.get("task")), []).append(str(r.get("id")))
    out: list[str] = []
    i = 0
    while len(out) < k and any(i < len(v) for v in by_task.values()):
        for t in sorted(by_task):
            if i < len(by_task[t]) and len(out) < k:
                out.append(by_task[t][i])
        i += 1
    return out


# ---------------------------------------------------------------------------------------------- CLI
def _cmd_demo(args) -> int:
    cfg = load_demo_config(args.config, args.overrides, fast=args.fast, seed=args.seed)
    cmd = "getok demo --out " + str(args.out) + (" --fast" if args.fast else "") + f" --seed {cfg.seed}"
    if args.config:
        cmd += f" --config {args.config}"
    if args.overrides:
        cmd += " " + " ".join(args.overrides)
    path = run_demo(cfg, args.out, fast=args.fast, progress=not args.quiet, command=cmd)
    print(f"\nreport: {path.resolve()}", flush=True)
    print(f"per-sample index: {(path.parent / 'viz' / 'tasks' / 'index.html').resolve()}", flush=True)
    return 0


def register(subparsers) -> None:
    """Add ``getok demo`` (wired by :mod:`getok.cli.main`)."""
    p = subparsers.add_parser(
        "demo",
        help="the whole pipeline in miniature: data, SFT, GRPO 1 + 2, evaluation, report (~12.5 min on 2 idle cores)",
        description="Procedural scenes → tiny VLM with grid + offset tokens → SFT → GRPO stage 1 → stage 2 → "
        "evaluation with two-turn self-correction and polygon answers → DIR/summary.md. Re-running skips "
        "finished stages.",
    )
    p.add_argument("--out", required=True, type=Path, help="report / work directory (e.g. runs/demo)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of model, token rows, training and sampling (default 0)"
    )
    p.add_argument(
        "--fast", action="store_true", help="a 1-2 minute smoke run of the same pipeline (numbers mean nothing)"
    )
    p.add_argument("--config", default=None, help="YAML of DemoConfig fields (e.g. configs/demo/tiny-cpu.yaml)")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars (stage banners stay)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="DemoConfig overrides, e.g. sft_steps=300")
    p.set_defaults(func=_cmd_demo)


def main(argv: list[str] | None = None) -> int:
    """``python -m getok_lab.demo --out DIR [...]`` (the same as ``getok demo``)."""
    from getok.cli.main import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)], modules=["getok_lab.demo"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
