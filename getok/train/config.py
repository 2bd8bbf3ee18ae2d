"""The SFT configuration schema: nested dataclasses filled from YAML and ``a.b=c`` overrides.

``load_sft_config("configs/sft/tiny-cpu.yaml", ["train.max_steps=50"])`` reads, merges and validates a
configuration with :func:`getok.config.load_config`: an unknown key, a wrong type or a value out of range
raises :class:`~getok.errors.ConfigError` naming the field, before any model is loaded or any sample built.

The defaults *are* the embedded CPU recipe (``configs/sft/tiny-cpu.yaml`` repeats them): the tiny offline
Qwen2.5-VL, the ``grid_offset:n=8`` vocabulary, procedural scenes, full fine-tuning of the language model.

Sections (YAML keys):

* ``model`` — :class:`ModelConfig`: ``path`` (a local model directory, or ``tiny`` for the embedded tiny
  model, with ``tiny`` overrides of its :class:`~getok.vocab.tiny.TinyModelConfig`), dtype, image size
  bounds (``min_pixels`` / ``max_pixels``).
* ``vision_warmup`` — :class:`VisionWarmupConfig`: the tiny recipe's synthetic warm-up of the vision tower
  before SFT (:mod:`getok.train.vision_warmup`; ``steps: 0`` turns it off, as for a pretrained encoder).
* ``vocab`` — :class:`VocabConfig`: codec specs whose tokens are added, row init and its seed.
* ``tuning`` — :class:`TuningConfig`: ``mode: lora | full``; LoRA rank / alpha / dropout / target regex;
  whether the new token rows train; what full fine-tuning trains.
* ``data`` — :class:`DataConfig`: the training mixture (:class:`MixtureEntry` list with weights) over
  procedural scenes (:class:`ScenesConfig`) or dataset directories, total sample count, max length.
* ``train`` — :class:`TrainConfig`: optimiser, schedule, batch / accumulation, epochs / steps, logging,
  checkpoints, resume, DeepSpeed config.
* ``eval`` — :class:`EvalConfig`: held-out scenes evaluated before and after training.
* ``seed``, ``output_dir``.

>>> cfg = load_sft_config(None, ["train.max_steps=5", "tuning.mode=lora"])
>>> cfg.train.max_steps, cfg.tuning.mode, cfg.vocab.codecs
(5, 'lora', ['grid_offset:n=8,r=1,step=0.5'])
>>> load_sft_config(None, ["train.lr=fast"])
Traceback (most recent call last):
...
getok.errors.ConfigError: config key 'train.lr' must be a number, got 'fast'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codecs.base import get_codec
from ..config import check_numbers, config_to_dict, load_config
from ..data_builders.tasks import TASKS
from ..errors import ConfigError
from .sections import EvalConfig, OptimConfig, ScenesConfig, TinyModelSource, TuningConfig, VocabConfig

__all__ = [
    "ModelConfig",
    "VocabConfig",
    "TuningConfig",
    "ScenesConfig",
    "MixtureEntry",
    "DataConfig",
    "TrainConfig",
    "EvalConfig",
    "VisionWarmupConfig",
    "SFTRunConfig",
    "MIXTURE_TYPES",
    "load_sft_config",
    "sft_config_to_dict",
    "config_yaml",
]

#: Kinds of mixture entries: query tasks, two-turn offset refinement, polygon outlines, a dataset directory.
MIXTURE_TYPES = ("tasks", "offsets", "polygons", "dataset")

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ModelConfig(TinyModelSource):
    """Which VLM to fine-tune.

    Attributes
    ----------
    path : str
        A local model directory (``Qwen2.5-VL-7B-Instruct``, a merged getok checkpoint) or ``tiny``: build
        the embedded tiny model (a Qwen3-VL by default; random weights, :mod:`getok.vocab.tiny`) into ``OUTPUT/base``.
    tiny_seed : int
        Weight seed of the tiny model.
    tiny : dict
        Overrides of the tiny model's :class:`~getok.vocab.tiny.TinyModelConfig` (``family``, sizes, chat
        template); empty: the embedded default. Ignored for a model directory.
    dtype : str
        ``auto`` (the checkpoint's), ``float32``, ``bfloat16``, ``float16``.
    min_pixels, max_pixels : int, optional
        Bounds on ``H * W`` after the processor's resize (Qwen's ``min_pixels`` / ``max_pixels``); ``None``
        keeps the processor's own.
    attn_implementation : str, optional
        ``sdpa``, ``eager``, ``flash_attention_2`` (GPU); ``None`` lets transformers choose.
    trust_remote_code : bool
        Off unless asked.
    """

    path: str = "tiny"
    tiny_seed: int = 0
    tiny: dict[str, Any] = field(default_factory=dict)
    dtype: str = "auto"
    min_pixels: int | None = 56 * 56
    max_pixels: int | None = 112 * 112
    attn_implementation: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self):
        if not self.path:
            raise ConfigError("model.path must be a model directory or 'tiny'")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"model.dtype must be one of {_DTYPES}, got {self.dtype!r}")
        check_numbers(self, "model", positive=("min_pixels", "max_pixels"))
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ConfigError(f"model.min_pixels ({self.min_pixels}) must be <= model.max_pixels ({self.max_pixels})")
        if self.tiny:
            self.tiny_config()  # unknown fields / bad values fail here, before anything is built



@dataclass
class MixtureEntry:
    """One part of the training mixture.

    Attributes
    ----------
    type : str
        ``tasks`` — query tasks (:func:`~getok.data_builders.tasks.build_tasks`) on the scenes;
        ``offsets`` — two-turn offset refinement samples (:func:`~getok.data_builders.offsets.offset_sample`),
        one per object; ``polygons`` — polygon outlines (:func:`~getok.data_builders.polygons.polygon_sample`);
        ``dataset`` — a getok dataset directory (``path``), layout checked against the model's.
    weight : float
        Share of the mixture (weights are normalised); an entry whose pool is smaller than its share is
        repeated (reshuffled each pass), a larger one subsampled.
    codec : str, optional
        Answer codec (default: the first of ``vocab.codecs``; ``offsets`` needs a ``grid_offset`` codec,
        ``polygons`` a ``polygon`` codec).
    tasks : list of str, optional
        ``tasks`` entries: the query tasks (default :class:`~getok.data_builders.tasks.TaskConfig`'s).
        ``offsets`` entries: single-target mask tasks (``text>mask``, ``point>mask``, ``box>mask``) whose
        question is turn 1 of the refinement sample (:func:`~getok.data_builders.refine.refine_from_tasks`);
        without it turn 1 asks ``Segment {query}.``
    greedy : str, optional
        Mask answers of grid codecs as greedy cells over this proposer (``exact`` for scenes, the default
        for grid codecs); ``none`` = the cells whose centres lie on the mask.
    k : int
        ``offsets``: proposed cells per sample.
    ks : list of int, optional
        ``offsets`` with ``tasks``: proposal sizes, one drawn per sample (default ``[k]``).
    anchor : bool
        ``offsets`` with ``point>mask`` in ``tasks``: the named cell is always proposed and refined by the
        question's own move (:mod:`getok.data_builders.refine`).
    inside_steps : float, optional
        ``offsets``: the Inside band's half-width in offset steps (:class:`~getok.data_builders.offsets.BandConfig`;
        ``None``: ``r``, DESIGN.md's band). ``0`` labels every proposed point that lies on the object
        ``<off_0_0>`` (keep) and moves only the points beside it — the same masks under an exact-region
        decoder, and a keep / move / delete decision instead of a sub-cell direction for correct proposals.
    path : str, optional
        ``dataset`` entries: the directory.
    name : str, optional
        Label in the logs (default: the type).
    """

    type: str = "tasks"
    weight: float = 1.0
    codec: str | None = None
    tasks: list[str] | None = None
    greedy: str | None = "exact"
    k: int = 8
    ks: list[int] | None = None
    anchor: bool = True
    inside_steps: float | None = None
    path: str | None = None
    name: str | None = None

    def __post_init__(self):
        if self.type not in MIXTURE_TYPES:
            raise ConfigError(f"data.mixture[].type must be one of {MIXTURE_TYPES}, got {self.type!r}")
        check_numbers(self, f"data.mixture[{self.label}]", positive=("weight", "k"), non_negative=("inside_steps",))
        if self.type == "dataset" and not self.path:
            raise ConfigError(f"data.mixture[{self.label}] of type 'dataset' needs a path")
        if self.tasks is not None:
            bad = [t for t in self.tasks if t not in TASKS]
            if bad or not self.tasks:
                raise ConfigError(f"data.mixture[{self.label}].tasks must be a non-empty subset of {TASKS}, got {bad}")
            single = ("text>mask", "point>mask", "box>mask")
            if self.type == "offsets" and any(t not in single for t in self.tasks):
                raise ConfigError(f"data.mixture[{self.label}].tasks of an offsets entry must be among {single}, "
                                  f"got {self.tasks}")  # fmt: skip
        if self.ks is not None:
            self.ks = [int(k) for k in self.ks]
            if not self.ks or min(self.ks) < 1:
                raise ConfigError(f"data.mixture[{self.label}].ks must be proposal sizes >= 1, got {self.ks}")
        if self.codec is not None:
            self.codec = get_codec(self.codec).spec

    @property
    def label(self) -> str:
        return self.name or self.type


def _default_mixture() -> list[MixtureEntry]:
    return [
        MixtureEntry(type="tasks", weight=0.6, tasks=["text>mask", "text>box"]),
        MixtureEntry(type="tasks", weight=0.25, tasks=["point>mask", "box>mask"]),
        MixtureEntry(type="offsets", weight=0.15, k=6),
    ]


@dataclass
class DataConfig:
    """The training data.

    Attributes
    ----------
    mixture : list of MixtureEntry
    scenes : ScenesConfig
        Source of the ``tasks`` / ``offsets`` / ``polygons`` entries.
    num_samples : int
        Size of the mixed training set (spread over the entries by weight).
    max_length : int
        Longest sample in tokens (image tokens included). Longer samples are dropped and counted, never
        truncated (a cut answer would teach broken grammar).
    task_seed : int
        Seed of prompt templates and expression choices.
    workers : int
        Processes building samples.
    """

    mixture: list[MixtureEntry] = field(default_factory=_default_mixture)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    num_samples: int = 9000
    max_length: int = 256
    task_seed: int = 0
    workers: int = 1

    def __post_init__(self):
        if not self.mixture:
            raise ConfigError("data.mixture must have at least one entry")
        check_numbers(self, "data", positive=("num_samples", "max_length", "workers"))


@dataclass
class TrainConfig(OptimConfig):
    """SFT's optimisation and bookkeeping (passed to TRL's ``SFTConfig`` / transformers' ``TrainingArguments``):
    :class:`OptimConfig`'s settings plus the ones below.

    Attributes
    ----------
    batch_size : int
        Per device.
    epochs : float
    dataloader_workers : int
        Processes preparing batches (chat template, image preprocessing: ~15 ms a sample on a CPU); on a
        2-core machine one worker overlaps them with the model's step on the other core.
    loss_turns : str
        Which assistant turns of a multi-turn sample carry the loss: ``all`` (default; TRL's
        ``assistant_only_loss`` as is) or ``last`` — the final answer only, earlier turns as context (such
        as the *noisy* stage-1 proposal of a two-turn refinement sample). ``last`` is the cleaner target,
        but on the tiny model the runs that combined it with point questions answered by their named cell
        stayed at the location prior where the same run with ``all`` learned (the demo's seed 0; the
        self-correction study at the demo's budget: 0.114 vs 0.619; docs/training.md). Single-turn
        samples are the same either way.
    """

    batch_size: int = 16
    epochs: float = 1.0
    dataloader_workers: int = 1
    loss_turns: str = "all"

    def __post_init__(self):
        if self.loss_turns not in ("last", "all"):
            raise ConfigError(f"train.loss_turns must be 'last' or 'all', got {self.loss_turns!r}")
        super().__post_init__()
        check_numbers(self, "train", positive=("batch_size", "epochs"), non_negative=("dataloader_workers",))
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"train.max_steps must be -1 (use epochs) or > 0, got {self.max_steps}")


#: Vision warm-up steps of the embedded tiny model when ``vision_warmup.steps`` is not set (docs/tiny_grounding.md).
TINY_WARMUP_STEPS = 300


@dataclass
class VisionWarmupConfig:
    """The synthetic warm-up of the vision tower before SFT (:func:`getok.train.vision_warmup.warm_up_vision`).

    Attributes
    ----------
    steps : int, optional
        Optimiser steps; 0 skips it. ``None`` (the default): :data:`TINY_WARMUP_STEPS` for the embedded tiny
        model, 0 for a model directory (a pretrained encoder needs no warm-up).
    batch_size : int
        Images per step (training scenes of ``data.scenes``).
    lr : float
        AdamW learning rate (cosine schedule with a 5 % warm-up).
    align : float
        Weight of the cell-alignment loss (an object's image token names its cell through the grid tokens'
        input rows); 0 trains only the colour / shape heads.
    background : float
        Weight (relative to ``align``) of pushing background tokens to name no cell.
    words : float
        Weight of the word-alignment loss (an object's image token resembles the input rows of the words
        naming its colour and shape); 0 leaves it out.
    moves : float
        Weight of the refine-move head: each image token names the refinement of its cell's centre point
        (the ``grid_offset`` codec's move onto the nearest object, keep on an object, delete far from every
        object) through a linear head; 0 leaves it out (and out of the warm-up's cache key).
    temperature : float
        Of the cosine similarities in the alignment loss.
    seed : int
    torch_threads : int, optional
        Intra-op threads while warming up (``None``: every core this process may use). Unlike an SFT step
        (one thread beside a data-loader worker, :class:`TrainConfig`), the warm-up's batches of 32 images
        leave no other work to overlap: two threads took 0.22 s a step where one took 0.40 s (2 cores).
    """

    steps: int | None = None
    batch_size: int = 32
    lr: float = 2.0e-3
    align: float = 1.0
    background: float = 1.0
    words: float = 0.0
    moves: float = 0.0
    temperature: float = 0.1
    seed: int = 0
    torch_threads: int | None = None

    def __post_init__(self):
        check_numbers(self, "vision_warmup", positive=("batch_size", "lr", "temperature", "torch_threads"),
                      non_negative=("steps", "align", "background", "words", "moves", "seed"))  # fmt: skip

    def steps_for(self, model: ModelConfig) -> int:
        """The steps this run warms up for (``steps``, or the default for ``model``)."""
        if self.steps is not None:
            return int(self.steps)
        return TINY_WARMUP_STEPS if model.is_tiny else 0


@dataclass
class SFTRunConfig:
    """One SFT run (see the module docstring for the sections)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    vision_warmup: VisionWarmupConfig = field(default_factory=VisionWarmupConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    output_dir: str = "runs/sft-tiny"

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Cross-section checks: mixture codecs in the vocabulary, codec kinds per entry, disjoint scene series."""

        vocab = set(self.vocab.codecs)
        for e in self.data.mixture:
            if e.type == "dataset":
                continue
            spec = e.codec or self.vocab.codecs[0]
            if spec not in vocab:
                raise ConfigError(
                    f"data.mixture[{e.label}].codec {spec!r} is not in vocab.codecs {sorted(vocab)}: add it there"
                )
            name = get_codec(spec).name
            if e.type == "offsets" and name != "grid_offset":
                raise ConfigError(f"data.mixture[{e.label}]: offset samples need a grid_offset codec, got {spec!r}")
            if e.type == "polygons" and name != "polygon":
                raise ConfigError(f"data.mixture[{e.label}]: polygon samples need a polygon codec, got {spec!r}")
        if self.eval.codec is not None:
            self.eval.codec = get_codec(self.eval.codec).spec
            if self.eval.codec not in vocab:
                raise ConfigError(f"eval.codec {self.eval.codec!r} is not in vocab.codecs")
        if self.eval.enabled and self.eval.seed == self.data.scenes.seed:
            raise ConfigError(
                f"eval.seed ({self.eval.seed}) equals data.scenes.seed: held-out scenes must come from another series"
            )
        if not self.output_dir:
            raise ConfigError("output_dir must be set")

    @property
    def mixture_codecs(self) -> list[str]:
        return [e.codec or self.vocab.codecs[0] for e in self.data.mixture if e.type != "dataset"]


def load_sft_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SFTRunConfig:
    """Defaults ← YAML file ← ``a.b=c`` overrides, validated (raises :class:`ConfigError`)."""
    return load_config(SFTRunConfig, path, overrides)


def sft_config_to_dict(cfg: SFTRunConfig) -> dict:
    """Plain, YAML-safe data (what is saved beside checkpoints)."""
    return config_to_dict(cfg)


def config_yaml(cfg: SFTRunConfig) -> str:
    """The config as YAML text (what ``getok_train.yaml`` beside every checkpoint holds)."""
    import yaml

    return yaml.safe_dump(sft_config_to_dict(cfg), sort_keys=False)
