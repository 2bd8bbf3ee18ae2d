"""The config sections SFT (:mod:`getok.train.config`) and GRPO (:mod:`getok.rl.grpo_config`) share: the tiny
model source, the vocabulary, the tuning, procedural scenes, the optimisation settings and the held-out
evaluation — each defined once, with its validation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..codecs.base import get_codec
from ..config import check_numbers
from ..data_builders.scenes import SceneConfig
from ..data_builders.tasks import TASKS
from ..errors import ConfigError
from ..vocab.tiny import TinyModelConfig

__all__ = ["TinyModelSource", "VocabConfig", "TuningConfig", "ScenesConfig", "OptimConfig", "EvalConfig"]

_DTYPES = ("auto", "float32", "bfloat16", "float16")


class TinyModelSource:
    """What SFT's and GRPO's ``model`` sections share: ``path: tiny`` names the embedded tiny model, built from
    ``tiny_seed``, the pixel bounds and the ``tiny`` overrides."""

    @property
    def is_tiny(self) -> bool:
        return self.path == "tiny"

    def tiny_config(self):
        """The :class:`~getok.vocab.tiny.TinyModelConfig` of ``path: tiny`` (seed, pixel bounds, overrides)."""

        return TinyModelConfig.for_run(self)


@dataclass
class VocabConfig:
    """The spatial vocabulary added to the model before training.

    Attributes
    ----------
    codecs : list of str
        Codec specs; their new tokens are added (once each, in order). Every mixture entry's codec must be
        one of them (checked). A model that already has the tokens (a merged getok checkpoint) is validated
        against them instead.
    init : str
        Row init strategy (``mean``, ``text``, ``2d``, ``random``; :mod:`getok.vocab.init`).
    init_seed : int
    pad_to_multiple_of : int, optional
        Round the embedding rows up (GPU-friendly shapes).
    """

    codecs: list[str] = field(default_factory=lambda: ["grid_offset:n=8,r=1,step=0.5"])
    init: str = "2d"
    init_seed: int = 0
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if not self.codecs:
            raise ConfigError("vocab.codecs must name at least one codec")
        specs = []
        for c in self.codecs:
            try:
                specs.append(get_codec(c).spec)
            except ConfigError as exc:
                raise ConfigError(f"vocab.codecs: {exc}") from exc
        self.codecs = specs
        check_numbers(self, "vocab", positive=("pad_to_multiple_of",))


@dataclass
class TuningConfig:
    """What trains: LoRA on the language model (+ the new rows), or full fine-tuning.

    Attributes
    ----------
    mode : str
        ``lora`` (GETok: rank 64 + trainable new rows) or ``full``.
    rank, alpha, dropout : LoRA rank, scaling numerator (``None`` = ``2 * rank``), dropout (``None`` = 0.05, or 0
        when mixture-of-experts weights are targeted: peft's parameter LoRA has no dropout).
    target_modules : str, optional
        Regex of the LoRA targets (default: every linear layer of the language model, found from the
        model's structure by :func:`getok.vocab.peft_utils.language_model_lora_regex` — the attention and
        MLP projections for Qwen-VL, LLaVA's ``language_model``, Idefics3's ``text_model`` ...).
    experts : bool
        LoRA on a mixture-of-experts language model: also adapt the fused expert weights (peft's
        ``target_parameters``; :func:`getok.vocab.peft_utils.language_model_expert_parameters`). Without them
        LoRA trains the attention (and any dense MLP) only.
    train_new_rows : bool
        LoRA: train the spatial tokens' embedding and head rows (``trainable_token_indices`` in dict form).
        Full: with ``new_rows_only`` the old rows stay frozen.
    train_vision, train_merger, train_embeddings, new_rows_only : bool
        Full fine-tuning: train the vision blocks, the vision → language merger, the embedding / head
        (all rows, or only the new ones with ``new_rows_only``). The vision blocks stay frozen by default:
        a pretrained encoder, or the tiny model's warmed-up one, whose per-token features full-rate SFT
        would wash out (docs/tiny_grounding.md: text>mask 0.134 trained vs 0.28 frozen at 300-600 steps).
    """

    mode: str = "full"
    rank: int = 64
    alpha: float | None = None
    dropout: float | None = None
    target_modules: str | None = None
    experts: bool = True
    train_new_rows: bool = True
    train_vision: bool = False
    train_merger: bool = True
    train_embeddings: bool = True
    new_rows_only: bool = False

    def __post_init__(self):
        if self.mode not in ("lora", "full"):
            raise ConfigError(f"tuning.mode must be 'lora' or 'full', got {self.mode!r}")
        check_numbers(self, "tuning", positive=("rank", "alpha"))
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"tuning.dropout must be in [0, 1), got {self.dropout}")
        if self.target_modules is not None:
            try:
                re.compile(self.target_modules)
            except re.error as exc:
                raise ConfigError(f"tuning.target_modules is not a valid regex: {exc}") from exc


#: The fields of :class:`ScenesConfig` about the training set; its other fields are scene settings.
_SERIES_FIELDS = ("n", "seed")


def _scene_default(name: str):
    """:class:`~getok.data_builders.scenes.SceneConfig`'s default of a scene setting (a tuple as a list, the
    YAML form)."""

    value = getattr(SceneConfig, name)
    return list(value) if isinstance(value, tuple) else value


@dataclass
class ScenesConfig:
    """Procedural scenes (:mod:`getok.data_builders.scenes`) for the ``tasks`` / ``offsets`` / ``polygons`` entries:
    which series trains (``n``, ``seed``) and how its scenes are drawn.

    Every field but ``n`` and ``seed`` is the :class:`~getok.data_builders.scenes.SceneConfig` field of the same
    name, passed to it as it is (lists as tuples) and validated by it (:meth:`scene_config`); SceneConfig's other
    settings keep its defaults. The defaults are SceneConfig's, except for the smaller training scenes
    (``min_objects`` 1, ``max_objects`` 3) and ``None`` for ``shapes`` / ``colors`` (all of them).

    Attributes
    ----------
    n : int
        Training scenes (series ``seed``; evaluation uses another series, :class:`EvalConfig`).
    seed : int
    size : [H, W]
    min_objects, max_objects : int
    shapes, colors : list of str, optional
        Subsets of the scene generator's shapes / colours (``None`` or empty: all).
    background : str
        ``plain``, ``noise``, ``texture`` or ``mixed``.
    """

    n: int = 1500
    seed: int = 0
    size: list[int] = field(default_factory=lambda: _scene_default("size"))
    min_objects: int = 1
    max_objects: int = 3
    shapes: list[str] | None = None
    colors: list[str] | None = None
    background: str = field(default_factory=lambda: _scene_default("background"))

    def __post_init__(self):
        check_numbers(self, "data.scenes", positive=("n",))
        self.scene_config()  # validates

    def scene_settings(self) -> dict:
        """The :class:`~getok.data_builders.scenes.SceneConfig` keyword arguments this section sets (unset
        ``shapes`` / ``colors`` are left to SceneConfig: all of them)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SERIES_FIELDS or (f.name in ("shapes", "colors") and not value):
                continue
            out[f.name] = tuple(value) if isinstance(value, list) else value
        return out

    def scene_config(self):
        """The :class:`~getok.data_builders.scenes.SceneConfig` (raises ConfigError on bad values)."""

        try:
            return SceneConfig(**self.scene_settings())
        except ConfigError as exc:
            raise ConfigError(f"data.scenes: {exc}") from exc


@dataclass
class OptimConfig:
    """The optimisation and bookkeeping settings SFT (:class:`TrainConfig`) and GRPO
    (:class:`getok.rl.grpo_config.GRPOTrainConfig`) share, with their one validation; each stage sets its own
    defaults and adds its own fields.

    Attributes
    ----------
    lr : float
    scheduler : str
        transformers ``lr_scheduler_type`` (``cosine``, ``linear``, ``constant_with_warmup``, ...).
    warmup_ratio, weight_decay : float
    grad_accum : int
    max_steps : int
        Optimiser steps (SFT: ``-1`` = run ``epochs``).
    max_grad_norm : float
    bf16, fp16 : bool
        Mixed precision (GPU). TRL 1.x turns bf16 on by default; getok passes these explicitly.
    gradient_checkpointing : bool
    logging_steps, save_steps : int
    save_total_limit : int, optional
    resume : str
        ``auto`` (the last checkpoint under the output dir, if any), ``never``, or a checkpoint path.
    deepspeed : str, optional
        DeepSpeed JSON (``configs/deepspeed/zero2.json``); launch with ``accelerate launch``.
    torch_threads : int, optional
        ``torch.set_num_threads`` for the run (``None``: torch's default). The tiny model's steps are too
        small to gain from intra-op threads, and on a shared CPU two spinning threads ran 4x slower than one
        (measured); 1 is the CPU default.
    report_to : list of str
        Extra transformers integrations (``tensorboard`` is added automatically when installed).
    use_cpu : bool, optional
        Train on the CPU (transformers' ``use_cpu``). ``None`` (default): automatic, true exactly when torch
        sees no CUDA device. It matters for several processes: ``torchrun`` / ``accelerate launch --multi_gpu``
        ranks on a machine without GPUs then join one gloo group (without it each rank trained alone, with
        world size 1); one process trains as before either way.
    """

    lr: float = 2e-3
    scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_accum: int = 1
    max_steps: int = -1
    max_grad_norm: float = 1.0
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    save_steps: int = 200
    save_total_limit: int | None = 2
    resume: str = "auto"
    deepspeed: str | None = None
    torch_threads: int | None = 1
    report_to: list[str] = field(default_factory=list)
    use_cpu: bool | None = None

    def __post_init__(self):
        check_numbers(
            self, "train",
            positive=("lr", "grad_accum", "logging_steps", "save_steps", "save_total_limit", "max_grad_norm",
                      "torch_threads"),
            non_negative=("warmup_ratio", "weight_decay"),
        )  # fmt: skip
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.bf16 and self.fp16:
            raise ConfigError("train.bf16 and train.fp16 cannot both be true")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ConfigError(f"train.deepspeed: no such file {self.deepspeed}")
        if not self.resume:
            raise ConfigError("train.resume must be 'auto', 'never' or a checkpoint directory")


@dataclass
class EvalConfig:
    """Held-out evaluation before and after training (:func:`getok.eval.runner.evaluate`).

    Attributes
    ----------
    enabled : bool
    before : bool
        Also evaluate the untrained model (vocabulary added, nothing trained) for the comparison.
    n_scenes, seed : held-out scene series (``seed`` must differ from ``data.scenes.seed``).
    tasks : list of str
        Query tasks of the held-out set.
    codec : str, optional
        Default: the first ``vocab`` codec.
    decoder : str
        Mask decoder spec (``raster``; ``point_masks:proposer=exact`` for greedy grid answers on scenes).
    limit : int, optional
        At most this many samples.
    batch_size, max_new_tokens : generation settings.
    """

    enabled: bool = True
    before: bool = True
    n_scenes: int = 60
    seed: int = 10_000
    tasks: list[str] = field(default_factory=lambda: ["text>mask", "text>box", "point>mask", "box>mask"])
    codec: str | None = None
    decoder: str = "point_masks:proposer=exact,n=8"
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: int = 24

    def __post_init__(self):
        check_numbers(self, "eval", positive=("n_scenes", "limit", "batch_size", "max_new_tokens"))

        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ConfigError(f"eval.tasks must be a non-empty subset of {TASKS}, got {bad}")
