"""GRPO's start policy and prompts (:mod:`getok.rl.grpo` runs them): the policy to train and its KL anchor
(:func:`load_start_policy`, :func:`ensure_start_dir`), its tuning, the answer codec, and the prompt dataset
as TRL rows (:func:`build_prompt_data`, :func:`grpo_rows`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codecs.base import get_codec
from ..config import config_to_dict
from ..data_builders.dataset import read_dataset, reuse_built, write_dataset
from ..data_builders.export import POLYGON_CODECS, easyr1_truth, reward_task
from ..data_builders.scenes import generate_scenes
from ..data_builders.tasks import SampleList
from ..errors import ConfigError, DataError, require
from ..eval.generate import prompt_messages
from ..provenance import fingerprint
from ..train.callbacks import (
    CHECKPOINT_INFO_FILE,
    read_checkpoint_info,
    write_checkpoint_info,
)
from ..train.config import MixtureEntry
from ..train.data import _scenes_source, build_pool, check_dataset_layout
from ..train.sft import prepare_base, set_pixel_bounds
from ..train.sft import setup_tuning as _setup
from ..vocab import (
    add_spatial_tokens,
    load_adapter,
    load_model_and_processor,
    save_with_layout,
    tokenizer_of,
    validate_layout,
)
from ..vocab.layout import VocabLayout
from .grpo_config import GRPORunConfig, grpo_config_yaml

__all__ = ["StartPolicy", "load_start_policy", "ensure_start_dir", "setup_tuning", "answer_codec",
           "build_prompt_data", "sample_truth", "grpo_rows", "START_DIR"]  # fmt: skip

log = logging.getLogger("getok.rl.grpo")

START_DIR = "start"


# ---------------------------------------------------------------------------------------------- policy
@dataclass
class StartPolicy:
    """The starting (SFT) policy.

    Attributes
    ----------
    model, processor
    layout : VocabLayout
        With ids.
    source_dir : Path or None
        A directory whose ``from_pretrained`` reproduces ``model`` exactly (``None``: in memory only).
    origin : str
        What it was loaded from (for the summary).
    """

    model: object
    processor: object
    layout: VocabLayout
    source_dir: Path | None
    origin: str


def _dtype(cfg: GRPORunConfig):
    return None if cfg.model.dtype == "auto" else cfg.model.dtype


def load_start_policy(cfg: GRPORunConfig, output_dir: str | Path) -> StartPolicy:
    """Load ``model.path`` (module docstring, step 1) with the vocabulary; pixel bounds set."""

    m = cfg.model
    kw = {"dtype": _dtype(cfg), "trust_remote_code": m.trust_remote_code, "attn_implementation": m.attn_implementation}
    path = Path(m.path)
    if m.is_tiny:
        base = prepare_base(cfg, output_dir)  # the embedded tiny model in OUTPUT/base (SFT's helper)
        model, processor = load_model_and_processor(base, **kw)
        layout = add_spatial_tokens(processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed)
        source, origin = None, f"tiny (untrained, seed {m.tiny_seed}) + {cfg.vocab.codecs}"
    elif (path / CHECKPOINT_INFO_FILE).is_file():
        info = read_checkpoint_info(path)
        layout = VocabLayout.load(path)
        if (path / "adapter_config.json").is_file():
            peft_model, processor, got = load_adapter(path, base=m.base or info.get("base_model"), **{
                k: v for k, v in kw.items() if v is not None})  # fmt: skip
            got.check_matches(layout, what=f"checkpoint {path}")
            model = peft_model.merge_and_unload()  # the SFT policy = base + LoRA + trained rows
            source, origin = None, f"{path} (LoRA, merged in memory)"
        else:
            model, processor = load_model_and_processor(path, **kw)
            source, origin = path, f"{path} ({info.get('tuning', 'full')})"
        validate_layout(layout, processor, model)
        layout = layout.with_ids(tokenizer_of(processor)) if layout.ids is None else layout
    else:
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.path {path} is neither an SFT checkpoint, a model directory nor 'tiny'")
        model, processor = load_model_and_processor(path, **kw)
        n_before = len(tokenizer_of(processor))
        layout = add_spatial_tokens(processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed)
        source = path if len(tokenizer_of(processor)) == n_before else None
        origin = f"{path} (+ {cfg.vocab.codecs})" if source is None else str(path)
    set_pixel_bounds(processor, m.min_pixels, m.max_pixels)
    validate_layout(layout, processor, model)
    return StartPolicy(model, processor, layout, source, origin)


def ensure_start_dir(policy: StartPolicy, cfg: GRPORunConfig, output_dir: str | Path) -> StartPolicy:
    """Make the start policy reloadable from a directory (module docstring, step 1).

    A policy with a ``source_dir`` is returned as it is. Otherwise it is written to ``OUTPUT/start``
    (weights, processor, layout, marker; kept on resume when its layout hash matches) and reloaded from
    there, so that ``model.config._name_or_path`` names that directory.
    """

    if policy.source_dir is not None:
        return policy
    d = Path(output_dir) / START_DIR
    if (d / CHECKPOINT_INFO_FILE).is_file():
        if read_checkpoint_info(d).get("layout_hash") != policy.layout.hash:
            raise DataError(f"{d} holds a start policy with another vocabulary; remove it or change output_dir")
    else:
        save_with_layout(policy.model, policy.processor, policy.layout, d, overwrite=True)
        write_checkpoint_info(d, policy.layout, grpo_config_yaml(cfg), {"tuning": "merged", "start_of": "grpo",
                                                                         "origin": policy.origin})  # fmt: skip
    model, processor = load_model_and_processor(
        d, dtype=_dtype(cfg), trust_remote_code=cfg.model.trust_remote_code, attn_implementation=cfg.model.attn_implementation
    )  # fmt: skip

    set_pixel_bounds(processor, cfg.model.min_pixels, cfg.model.max_pixels)
    return StartPolicy(model, processor, policy.layout, d, policy.origin)


def setup_tuning(model, layout: VocabLayout, cfg: GRPORunConfig):
    """LoRA (+ trainable new rows, TRL fused-head fix) or full fine-tuning; returns ``(model, counts)``
    (:func:`getok.train.sft.setup_tuning` with the run's ``tuning`` section)."""

    return _setup(model, layout, cfg.tuning)


def answer_codec(cfg: GRPORunConfig, layout: VocabLayout) -> str:
    """``data.codec`` (checked against the model's layout), else the layout's first ``grid_offset`` codec
    (a polygon run: its first polygon codec)."""

    if cfg.data.codec is not None:
        if cfg.data.codec not in layout.codecs and get_codec(cfg.data.codec).new_tokens():
            raise ConfigError(f"data.codec {cfg.data.codec!r} is not in the model's vocabulary {layout.codecs}")
        return cfg.data.codec
    if cfg.reward_task == "polygon":
        spec = next((c for c in layout.codecs if get_codec(c).name in POLYGON_CODECS), None)
        if spec is None:
            raise ConfigError(f"polygon tasks need a polygon codec: set data.codec (the model's vocabulary has "
                              f"{layout.codecs})")  # fmt: skip
        return spec
    for spec in layout.codecs:
        if get_codec(spec).name == "grid_offset":
            return spec
    if cfg.rl.stage == 2:
        raise ConfigError(f"stage 2 needs a grid_offset codec in the model's vocabulary, got {layout.codecs}")
    return layout.codecs[0]


def _single_target(s) -> bool:
    return len(s.truth.get("masks") or []) == 1


def build_prompt_data(cfg: GRPORunConfig, spec: str, out_dir: str | Path, *, progress: bool = False) -> Path:
    """The prompts as a getok dataset directory (reused when already built with the same settings).

    Procedural scenes (``data.scenes``) → query tasks ``data.tasks`` in ``spec`` (mask answers: greedy
    cells over the exact regions, the SFT targets), or the samples of ``data.dataset`` with those tasks;
    stage 2 keeps single-target samples; at most ``data.num_samples`` (shuffled with ``seed``). A polygon
    run's samples must be polygon answers in ``spec`` (else :class:`~getok.errors.DataError`).
    """

    out = Path(out_dir)
    d = cfg.data
    spec_fp = {"data": config_to_dict(d), "codec": spec, "tasks": cfg.tasks, "stage": cfg.rl.stage, "seed": cfg.seed}
    fp = fingerprint(spec_fp)
    if reuse_built(out, fp, "GRPO prompts"):
        return out
    images, sources = {}, []
    if d.dataset is not None:
        ds = read_dataset(d.dataset)
        check_dataset_layout(ds.manifest, [spec], where=str(d.dataset))
        pool = SampleList(settings={"type": "dataset", "path": str(Path(d.dataset).resolve())})
        for s in ds:
            if s.task in cfg.tasks:
                s.image = str(ds.image_path(s).resolve())
                pool.append(s)
        sources = list(ds.manifest.get("sources") or [])
    else:
        scenes = generate_scenes(d.scenes.n, d.scenes.seed, d.scenes.scene_config())
        entry = MixtureEntry(type="tasks", tasks=list(cfg.tasks), codec=spec, greedy="exact")
        pool = build_pool(entry, [spec], scenes, d.task_seed)
        images = dict(getattr(pool, "images", {}))
        sources = [_scenes_source(d.scenes.n, d.scenes.seed, d)]
    samples = list(pool)
    if cfg.reward_task == "polygon":
        _check_polygon_samples(samples, spec, str(d.dataset))
    dropped = 0
    if cfg.rl.stage == 2:
        keep = [s for s in samples if _single_target(s)]
        dropped = len(samples) - len(keep)
        samples = keep
    if d.num_samples is not None and len(samples) > d.num_samples:
        rng = np.random.default_rng(cfg.seed)
        samples = [samples[i] for i in sorted(rng.choice(len(samples), d.num_samples, replace=False))]
    if not samples:
        raise DataError(f"no prompts for stage {cfg.rl.stage} with tasks {cfg.tasks}")
    used = {s.image_id for s in samples}
    images = {k: v for k, v in images.items() if k in used}
    manifest = {
        "builder": {"fingerprint": fp, **spec_fp, "not_single_target": dropped, "kind": "grpo-prompts"},
        "sources": sources,
        "skipped": list(getattr(pool, "skipped", [])),
    }
    return write_dataset(samples, out, manifest, images=images)


def _check_polygon_samples(samples, spec: str, where: str) -> None:
    bad = [s.sample_id for s in samples if reward_task(s) != "polygon" or s.codec != spec]
    if bad:
        raise DataError(f"{where}: {len(bad)} prompt(s) are not polygon answers in {spec!r} (e.g. {bad[0]}); "
                        "build the polygon set with the run's codec")  # fmt: skip


def sample_truth(sample, task: str, layout_hash: str | None) -> str:
    """The packed truth of a prompt (:func:`~getok.data_builders.export.easyr1_truth`) for the reward ``task``
    (``stage1``, ``stage2`` or ``polygon``: :attr:`~getok.rl.grpo_config.GRPORunConfig.reward_task`)."""

    t = easyr1_truth(sample, layout_hash)
    t["task"] = task
    t.pop("proposal", None)  # stage 2: the policy's own proposal comes with each rollout
    return json.dumps(t, separators=(",", ":"))


def grpo_rows(ds, task: str, layout_hash: str | None = None):
    """TRL rows of a prompt dataset: ``prompt`` (conversational), ``images``, ``truth`` (packed for the reward
    ``task``, as :func:`sample_truth`), ``sample_id``.

    Returns
    -------
    datasets.Dataset
        ``images`` is a list of ``datasets.Image`` (file paths, decoded to PIL when read).
    """

    datasets = require("datasets", "train", "GRPO prompts")
    f = datasets
    rows = {"prompt": [], "images": [], "truth": [], "sample_id": []}
    for s in ds:
        rows["prompt"].append(prompt_messages(s))
        rows["images"].append([{"path": str(ds.image_path(s).resolve()), "bytes": None}])
        rows["truth"].append(sample_truth(s, task, layout_hash))
        rows["sample_id"].append(s.sample_id)
    content = f.List({"type": f.Value("string"), "text": f.Value("string")})
    features = f.Features({
        "prompt": f.List({"role": f.Value("string"), "content": content}),
        "images": f.List(f.Image()),
        "truth": f.Value("string"),
        "sample_id": f.Value("string"),
    })  # fmt: skip
    return f.Dataset.from_dict(rows, features=features)
