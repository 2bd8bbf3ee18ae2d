"""The GRPO configuration schema: nested dataclasses filled from YAML and ``a.b=c`` overrides.

``load_grpo_config("configs/grpo/tiny-cpu-stage1.yaml", ["train.max_steps=20"])`` reads, merges and
validates a configuration with :func:`getok.config.load_config` (the same loader and style as SFT's
:mod:`getok.train.config`): an unknown key, a wrong type or a value out of range raises
:class:`~getok.errors.ConfigError` naming the field, before any model is loaded.

Sections (YAML keys):

* ``model`` — :class:`PolicyConfig`: the starting policy: an SFT checkpoint directory of
  ``getok train sft`` (full, LoRA adapter or merged), a plain local model directory, or ``tiny``
  (the embedded tiny model with the vocabulary added, untrained: for tests).
* ``vocab`` — :class:`~getok.train.config.VocabConfig` (SFT's): the codecs added to ``tiny`` / a plain
  model directory; an SFT checkpoint brings its own layout (checked against ``data.codec``).
* ``tuning`` — :class:`~getok.train.config.TuningConfig` (SFT's): ``lora`` (LoRA on the language model +
  trainable new rows, TRL's fused-head fix applied) or ``full`` (a local reference model is written when
  ``rl.beta > 0``, see :mod:`getok.rl.grpo`).
* ``rl`` — :class:`RLConfig`: stage, group size, KL beta, ratio level (``sequence`` = GSPO), clipping,
  loss aggregation, sampling temperature, completion budget.
* ``proposals`` — :class:`ProposalConfig`: stage 2's stage-1 proposals (real two-turn rollouts): refresh
  policy, what happens to invalid / ``none`` proposals.
* ``reward`` — :class:`RewardSection`: the mask decoder of the rewards and the stage-1 / stage-2 / polygon
  reward weights (:class:`~getok.rl.rewards_stage1.Stage1Config`, :class:`~getok.rl.rewards_stage2.Stage2Config`,
  :class:`~getok.rl.rewards_polygon.PolygonRewardConfig`).
* ``data`` — :class:`GRPODataConfig`: prompts from procedural scenes (default) or a getok dataset dir.
* ``train`` — :class:`GRPOTrainConfig`: optimiser, steps, logging, checkpoints, resume.
* ``eval`` — :class:`GRPOEvalConfig`: held-out scenes (or ``eval.dataset``) before / after (and every N
  steps); stage 2 is evaluated with the two-turn self-correction protocol.
* ``seed``, ``output_dir``.

**Polygon answers.** A stage-1 run whose ``data.tasks`` are polygon tasks (:data:`POLYGON_TASKS`, e.g.
``box>polygon``) trains polygon answers with the polygon reward (``reward.polygon``): its prompts come from
``data.dataset``, its answer codec is a polygon codec (``data.codec``, default the model's first) and its
held-out set is ``eval.dataset``. :attr:`GRPORunConfig.reward_task` names the reward of a run.

>>> cfg = load_grpo_config(None, ["rl.stage=2", "train.max_steps=3"])
>>> cfg.rl.stage, cfg.train.max_steps, cfg.per_device_batch
(2, 3, 8)
>>> load_grpo_config(None, ["rl.importance_sampling_level=seq"])
Traceback (most recent call last):
...
getok.errors.ConfigError: rl.importance_sampling_level must be 'token' or 'sequence' (GSPO), got 'seq'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codecs.base import get_codec
from ..config import apply_overrides, check_numbers, config_to_dict, load_config, read_yaml_mapping
from ..data_builders.export import POLYGON_CODECS
from ..errors import ConfigError
from ..train.sections import EvalConfig, OptimConfig, ScenesConfig, TinyModelSource, TuningConfig, VocabConfig
from .rewards import RewardConfig
from .rewards_polygon import PolygonRewardConfig
from .rewards_stage1 import Stage1Config
from .rewards_stage2 import Stage2Config

__all__ = ["PolicyConfig", "RLConfig", "ProposalConfig", "RewardSection", "GRPODataConfig", "GRPOTrainConfig",
           "GRPOEvalConfig", "GRPORunConfig", "STAGE_TASKS", "POLYGON_TASKS", "load_grpo_config",
           "grpo_config_yaml"]  # fmt: skip

#: Query tasks each stage can train on (stage 2 refines a single-target mask proposal).
STAGE_TASKS = {
    1: ("text>mask", "point>mask", "box>mask", "multi>mask", "none>mask"),
    2: ("text>mask", "point>mask", "box>mask"),
}
#: Query tasks answered with a polygon (stage 1 only, from ``data.dataset``; ``polygon``: the task of
#: :func:`~getok.data_builders.polygons.polygon_sample`).
POLYGON_TASKS = ("box>polygon", "text>polygon", "polygon")

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class PolicyConfig(TinyModelSource):
    """The starting policy (the SFT model GRPO improves, and the KL anchor).

    Attributes
    ----------
    path : str
        ``OUTPUT/final`` (or ``checkpoint-N``) of ``getok train sft`` — full, LoRA adapter (merged into its
        base in memory: the merged weights are the SFT policy) or a ``getok train merge`` directory —, a
        plain local model directory (``vocab.codecs`` are added or validated), or ``tiny`` (the embedded
        tiny model with the vocabulary added; untrained, for tests).
    base : str, optional
        Base model of a LoRA checkpoint (default: the one its ``getok_checkpoint.json`` records).
    tiny_seed : int
    tiny : dict
        Overrides of the tiny model's :class:`~getok.vocab.tiny.TinyModelConfig` (as in SFT's ``model.tiny``).
    dtype : str
        ``auto`` (the checkpoint's), ``float32``, ``bfloat16``, ``float16``.
    min_pixels, max_pixels : int, optional
        Image size bounds of the processor (as in SFT: train with the SFT run's values).
    attn_implementation : str, optional
    trust_remote_code : bool
    """

    path: str = "tiny"
    base: str | None = None
    tiny_seed: int = 0
    tiny: dict[str, Any] = field(default_factory=dict)
    dtype: str = "auto"
    min_pixels: int | None = 56 * 56
    max_pixels: int | None = 112 * 112
    attn_implementation: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self):
        if not self.path:
            raise ConfigError("model.path must be an SFT checkpoint, a model directory or 'tiny'")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"model.dtype must be one of {_DTYPES}, got {self.dtype!r}")
        check_numbers(self, "model", positive=("min_pixels", "max_pixels"))
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ConfigError(f"model.min_pixels ({self.min_pixels}) must be <= model.max_pixels ({self.max_pixels})")
        if self.tiny:
            self.tiny_config()  # unknown fields / bad values fail here



@dataclass
class RLConfig:
    """The GRPO algorithm (TRL ``GRPOConfig`` fields in brackets).

    Attributes
    ----------
    stage : int
        1 — propose grid cells (stage-1 reward); 2 — refine the policy's own stage-1 proposal with offsets /
        ``<DELETE>`` in a second turn (stage-2 reward).
    num_generations : int
        Group size G: completions sampled per prompt [``num_generations``].
    prompts_per_step : int
        Distinct prompts per optimiser step and device; ``prompts_per_step * num_generations`` completions
        make the step [``per_device_train_batch_size``].
    beta : float
        KL coefficient to the reference (= starting SFT) policy; 0 drops the reference model [``beta``].
    importance_sampling_level : str
        ``token`` (GRPO) or ``sequence`` (GSPO's sequence-level ratio: the mean of the token log-ratios,
        one clipped ratio per completion) [``importance_sampling_level``].
    loss_type : str
        Token-loss aggregation [``loss_type``]: ``dapo`` (TRL's default), ``grpo``, ``dr_grpo``, ``bnpo``.
    epsilon, epsilon_high : float
        Clipping range ``[1 - epsilon, 1 + epsilon_high]`` (GSPO: 3e-4 / 4e-4) [``epsilon``, ``epsilon_high``].
    temperature, top_p : float
        Sampling of the rollouts.
    max_completion_length : int
        Completion budget in tokens (the answer grammar: one token per cell / offset plus line breaks).
    scale_rewards : str
        ``group`` (divide advantages by the group's std), ``batch`` or ``none`` [``scale_rewards``].
    num_iterations : int
        Optimiser passes over each generation batch (>1 makes the ratio matter) [``num_iterations``].
    mask_truncated_completions : bool
        Leave completions that hit the budget out of the loss.
    entropy_coef : float
        Entropy bonus (keeps rarely sampled answers — e.g. offset moves after SFT's ``<DELETE>`` habit —
        in play) [``entropy_coef``].
    """

    stage: int = 1
    num_generations: int = 4
    prompts_per_step: int = 2
    beta: float = 0.04
    importance_sampling_level: str = "token"
    loss_type: str = "dapo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_length: int = 32
    scale_rewards: str = "group"
    num_iterations: int = 1
    mask_truncated_completions: bool = False
    entropy_coef: float = 0.0

    def __post_init__(self):
        if self.stage not in (1, 2):
            raise ConfigError(f"rl.stage must be 1 or 2, got {self.stage!r}")
        if self.num_generations < 2:
            raise ConfigError(f"rl.num_generations must be >= 2 (GRPO compares a group), got {self.num_generations}")
        check_numbers(
            self, "rl",
            positive=("prompts_per_step", "temperature", "max_completion_length", "num_iterations", "epsilon",
                      "epsilon_high"),
            non_negative=("beta", "entropy_coef"),
        )  # fmt: skip
        if self.importance_sampling_level not in ("token", "sequence"):
            raise ConfigError(
                f"rl.importance_sampling_level must be 'token' or 'sequence' (GSPO), got {self.importance_sampling_level!r}"
            )
        if self.loss_type not in ("dapo", "grpo", "dr_grpo", "bnpo"):
            raise ConfigError(f"rl.loss_type must be one of dapo, grpo, dr_grpo, bnpo; got {self.loss_type!r}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"rl.top_p must be in (0, 1], got {self.top_p}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ConfigError(f"rl.scale_rewards must be group, batch or none; got {self.scale_rewards!r}")


#: What stage 2 does with a stage-1 proposal that does not decode, is ``none`` or is too long to refine.
ON_INVALID = ("fallback", "mask")


@dataclass
class ProposalConfig:
    """Stage 2's proposals: the policy's own greedy stage-1 answer, put in the conversation as turn 1.

    Attributes
    ----------
    refresh_steps : int
        1 (default) — *fresh*: each sample's proposal is generated by the current policy at the step that
        uses it; N > 1 — a sample's proposal is reused for N optimiser steps, then regenerated; 0 — generated
        once (by the policy of that moment) and kept. Only the prompts of the current generation batch are
        generated, never the whole dataset (see ``docs/rl.md``).
    on_invalid : str
        A proposal that does not decode under the codec, is ``none``, has no cell or more cells than
        ``max_cells``: ``fallback`` — replaced by a builder-made noisy proposal of the target
        (:func:`~getok.data_builders.offsets.noisy_proposal`, deterministic per sample), so the step still
        trains refinement; ``mask`` — the same fallback prompt is rolled out but every completion of the
        group gets the same reward (zero advantage: the group teaches nothing). Counted either way
        (``proposals/*`` metrics).
    max_new_tokens : int
        Budget of the proposal (stage-1) generation.
    max_cells : int, optional
        Proposals with more cells are treated as invalid (a refinement needs one token per cell; default:
        ``rl.max_completion_length - 2``).
    fallback_k : int
        Cells of a fallback proposal.
    batch_size : int
        Generation batch of the proposals.
    """

    refresh_steps: int = 1
    on_invalid: str = "fallback"
    max_new_tokens: int = 32
    max_cells: int | None = None
    fallback_k: int = 6
    batch_size: int = 16

    def __post_init__(self):
        if self.refresh_steps < 0:
            raise ConfigError(f"proposals.refresh_steps must be >= 0 (0 = never refresh), got {self.refresh_steps}")
        if self.on_invalid not in ON_INVALID:
            raise ConfigError(f"proposals.on_invalid must be one of {ON_INVALID}, got {self.on_invalid!r}")
        check_numbers(self, "proposals", positive=("max_new_tokens", "max_cells", "fallback_k", "batch_size"))


@dataclass
class RewardSection:
    """Rewards: the mask decoder and the weights of each stage (see :mod:`getok.rl.rewards`).

    Attributes
    ----------
    decoder : str
        Mask decoder spec of the rewards: ``point_masks:proposer=exact,n=N`` (procedural scenes: each scene's
        exact regions, rebuilt from its id — greedy grid answers decode to the builder's masks, and a point
        moved onto an object selects that object's region, so refinement is meaningful), ``raster``
        (weight-free cell squares; note that it shifts whole cell squares, so even the oracle refinement can
        lower IoU), ``sam:checkpoint=...``.
    stage1, stage2, polygon : Stage1Config, Stage2Config, PolygonRewardConfig
        Weights and parameters (``envelope: any`` accepts a bare answer: the tiny SFT model answers without
        ``<think>``); ``polygon`` scores polygon answers (``polygon`` decoder: the rings rasterised).
    """

    decoder: str = "point_masks:proposer=exact,n=8"
    stage1: Stage1Config = field(default_factory=lambda: Stage1Config(envelope="any"))
    stage2: Stage2Config = field(default_factory=lambda: Stage2Config(envelope="any"))
    polygon: PolygonRewardConfig = field(default_factory=lambda: PolygonRewardConfig(envelope="any"))

    def __post_init__(self):
        if not self.decoder:
            raise ConfigError("reward.decoder must be a decoder spec")

    def reward_config(self) -> RewardConfig:
        return RewardConfig(stage1=self.stage1, stage2=self.stage2, polygon=self.polygon)


@dataclass
class GRPODataConfig:
    """The prompts.

    Attributes
    ----------
    scenes : ScenesConfig
        Procedural scenes (SFT's section; default series 1, disjoint from SFT's series 0 and the held-out
        series 10000).
    tasks : list of str, optional
        Query tasks (default: ``text>mask``); stage 2 allows single-target mask tasks only
        (:data:`STAGE_TASKS`); polygon tasks (:data:`POLYGON_TASKS`, stage 1, from ``dataset``) make a
        polygon-answer run.
    codec : str, optional
        Answer codec (default: the model's first ``grid_offset`` codec, or polygon codec for polygon tasks);
        stage 2 needs ``grid_offset``, polygon tasks a polygon codec.
    dataset : str, optional
        A getok dataset directory to take the prompts from instead of scenes (its samples of ``tasks``).
    num_samples : int, optional
        Use at most this many prompts (shuffled with ``seed``).
    task_seed : int
        Seed of prompt templates and expressions.
    """

    scenes: ScenesConfig = field(default_factory=lambda: ScenesConfig(n=1000, seed=1))
    tasks: list[str] | None = None
    codec: str | None = None
    dataset: str | None = None
    num_samples: int | None = None
    task_seed: int = 0

    def __post_init__(self):
        check_numbers(self, "data", positive=("num_samples",))
        if self.codec is not None:
            self.codec = get_codec(self.codec).spec


@dataclass
class GRPOTrainConfig(OptimConfig):
    """GRPO's optimisation and bookkeeping (TRL ``GRPOConfig`` / transformers ``TrainingArguments``): SFT's
    :class:`~getok.train.config.OptimConfig` with GRPO's defaults — a small constant learning rate, 200
    optimiser steps (``grad_accum``: each accumulation step generates ``rl.prompts_per_step`` groups), a reward
    record every step, a checkpoint every 100."""

    lr: float = 1e-5
    scheduler: str = "constant_with_warmup"
    warmup_ratio: float = 0.0
    max_steps: int = 200
    logging_steps: int = 1
    save_steps: int = 100

    def __post_init__(self):
        super().__post_init__()
        check_numbers(self, "train", positive=("max_steps",))


@dataclass
class GRPOEvalConfig(EvalConfig):
    """Held-out evaluation (SFT's :class:`~getok.train.config.EvalConfig` plus a periodic evaluation).

    Stage 1 evaluates single-turn answers (mIoU = the runner's gIoU on ``text>mask``); stage 2 runs the
    self-correction protocol with two turns (:mod:`getok.eval.selfcorrect`): the IoU of the model's own
    proposal (turn 1), of its refinement (turn 2) and of the oracle refinement of the same proposal. A
    polygon run evaluates ``dataset`` in one turn and adds tokens per object (and per answer).

    Attributes
    ----------
    every_steps : int
        Also evaluate every N optimiser steps (0: only before / after); rows go to
        ``OUTPUT/eval_curve.jsonl``.
    dataset : str, optional
        A getok dataset directory to evaluate (every sample) instead of held-out scenes of ``tasks``; a
        polygon run needs one (a held-out polygon set, with ``decoder: polygon``).
    """

    tasks: list[str] = field(default_factory=lambda: ["text>mask"])
    every_steps: int = 0
    max_new_tokens: int = 32
    dataset: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.every_steps < 0:
            raise ConfigError(f"eval.every_steps must be >= 0, got {self.every_steps}")
        bad = [t for t in self.tasks if not t.endswith(">mask")]
        if bad:
            raise ConfigError(f"eval.tasks must be mask tasks for GRPO evaluation, got {bad}")


@dataclass
class GRPORunConfig:
    """One GRPO run (see the module docstring for the sections)."""

    model: PolicyConfig = field(default_factory=PolicyConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    reward: RewardSection = field(default_factory=RewardSection)
    data: GRPODataConfig = field(default_factory=GRPODataConfig)
    train: GRPOTrainConfig = field(default_factory=GRPOTrainConfig)
    eval: GRPOEvalConfig = field(default_factory=GRPOEvalConfig)
    seed: int = 0
    output_dir: str = "runs/grpo-tiny"

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Cross-section checks: tasks per stage, codec kind, disjoint scene series, output dir."""

        stage = self.rl.stage
        tasks = self.tasks
        if any(t in POLYGON_TASKS for t in tasks):
            self._check_polygon()
        elif (bad := [t for t in tasks if t not in STAGE_TASKS[stage]]) or not tasks:
            raise ConfigError(
                f"data.tasks for stage {stage} must be a non-empty subset of {STAGE_TASKS[stage]}, got {bad}"
            )
        if self.data.codec is not None and stage == 2 and get_codec(self.data.codec).name != "grid_offset":
            raise ConfigError(
                f"stage 2 refines with offsets: data.codec must be a grid_offset codec, got {self.data.codec!r}"
            )
        scenes_eval = self.eval.enabled and not self.eval.dataset
        if scenes_eval and self.data.dataset is None and self.eval.seed == self.data.scenes.seed:
            raise ConfigError(
                f"eval.seed ({self.eval.seed}) equals data.scenes.seed: held-out scenes must come from another series"
            )
        ev, dd = self.eval.dataset, self.data.dataset
        if ev and dd and Path(ev).resolve() == Path(dd).resolve():
            raise ConfigError(f"eval.dataset is data.dataset ({self.data.dataset}): evaluate on a held-out set")
        if not self.output_dir:
            raise ConfigError("output_dir must be set")

    def _check_polygon(self) -> None:
        tasks, d = self.tasks, self.data
        if self.rl.stage != 1:
            raise ConfigError(f"data.tasks {tasks}: polygon answers train in stage 1 (stage 2 refines grid-cell "
                              "proposals with offsets); set rl.stage=1")  # fmt: skip
        if self.reward_task != "polygon":
            raise ConfigError(f"data.tasks mixes polygon tasks {POLYGON_TASKS} and mask tasks: {tasks}; a run trains "
                              "one kind of answer")  # fmt: skip
        if d.codec is not None and get_codec(d.codec).name not in POLYGON_CODECS:
            raise ConfigError(f"polygon tasks {tasks} need a polygon codec ({', '.join(POLYGON_CODECS)}), got "
                              f"data.codec={d.codec!r}")  # fmt: skip
        if d.dataset is None:
            raise ConfigError(f"polygon tasks {tasks} come from a getok dataset directory: set data.dataset")
        if self.eval.enabled and not self.eval.dataset:
            raise ConfigError("a polygon run evaluates on a held-out polygon set: set eval.dataset (a getok dataset "
                              "directory, with eval.decoder=polygon) or eval.enabled=false")  # fmt: skip

    @property
    def tasks(self) -> list[str]:
        return list(self.data.tasks) if self.data.tasks else ["text>mask"]

    @property
    def reward_task(self) -> str:
        """The reward of the run (:data:`getok.rl.truth.TASKS`): ``polygon`` when every task is a polygon task,
        else ``stage1`` / ``stage2``."""
        tasks = self.tasks
        return "polygon" if all(t in POLYGON_TASKS for t in tasks) else f"stage{self.rl.stage}"

    @property
    def per_device_batch(self) -> int:
        """Completions per optimiser (micro-)step: ``prompts_per_step * num_generations``."""
        return self.rl.prompts_per_step * self.rl.num_generations

    @property
    def max_cells(self) -> int:
        """Largest proposal stage 2 refines (one token per cell must fit the completion budget)."""
        return self.proposals.max_cells or max(1, self.rl.max_completion_length - 2)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_grpo_config(path: str | Path | None = None, overrides: list[str] | None = None) -> GRPORunConfig:
    """Defaults ← YAML file ← ``a.b=c`` overrides, validated (raises :class:`ConfigError`).

    Unlike a plain :func:`getok.config.load_config`, the YAML and the overrides are merged onto the
    *defaults of this schema* key by key, so ``reward.stage1.w_mask=3`` keeps the section's other
    defaults (``envelope: any``) instead of rebuilding it from :class:`Stage1Config`'s class defaults.

    >>> load_grpo_config(None, ["reward.stage1.w_mask=3"]).reward.stage1.envelope
    'any'
    """

    data = config_to_dict(GRPORunConfig())
    if path is not None:
        data = _merge(data, read_yaml_mapping(path))
    data = _merge(data, apply_overrides({}, overrides or []))
    return load_config(GRPORunConfig, None, _flatten(data))


def _flatten(data: dict, prefix: str = "") -> list[str]:
    """``a.b=<yaml>`` strings for every leaf of nested plain data (lists stay whole)."""

    out = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, key + "."))
        else:
            out.append(f"{key}={json.dumps(v)}")
    return out


def grpo_config_yaml(cfg: GRPORunConfig) -> str:
    """The config as YAML text (saved as ``getok_train.yaml`` beside every checkpoint)."""
    import yaml

    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
