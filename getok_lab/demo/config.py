"""The demo's settings: its stages, models and baselines, :class:`DemoConfig` (the budget and task mix,
repeated in ``configs/demo/tiny-cpu.yaml``), ``--fast``, and the SFT / GRPO configs derived from it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from getok.config import config_to_dict
from getok.errors import ConfigError
from getok.eval.baselines import BASELINES as _BASELINE_LABELS
from getok.train.sections import ScenesConfig
from getok_lab.series import SERIES

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
TASK_DECODER = "point_masks:proposer=exact,n=8"
POLYGON_DECODER = "polygon"
#: Scene series (:data:`getok_lab.series.SERIES`): SFT, GRPO prompts, and the held-out ``test`` series that no
#: design decision looked at (the tiny recipe was tuned on ``dev``).
TRAIN_SERIES, GRPO_SERIES, EVAL_SERIES = SERIES["train"], SERIES["grpo"], SERIES["test"]


# ---- config
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
        Held-out scenes of the ``test`` series (30000; each gives the ``eval_tasks`` samples and one ``box>polygon``
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
    """The training scenes of a stage: :class:`~getok.train.sections.ScenesConfig`'s defaults (112 px, 1-3
    objects, mixed backgrounds), ``n`` scenes of series ``seed``."""
    return config_to_dict(ScenesConfig(n=int(n), seed=int(seed)))


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


