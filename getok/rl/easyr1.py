"""EasyR1 on a cluster: stage-2 data from a stage-1 model, stage-1 / stage-2 row exports, launch guards.

EasyR1 (DESIGN.md "Engines") has no multi-turn rollouts and passes only ``ground_truth`` to the reward,
so both stages are single-turn prompts whose packed truth carries everything the reward needs:

* stage 1 — the query tasks of a dataset directory (grid mask answers), exported with
  :func:`~getok.data_builders.export.export_easyr1` (``problem`` / ``answer`` = packed truth / ``images``);
* stage 2 — :func:`make_stage2_data` runs a stage-1 policy greedily on the questions and writes two-turn
  refine samples (turn 1 = the question and the policy's answer, turn 2 = the refine prompt and the oracle
  refinement); the export folds turn 1 into the prompt (``Previous answer: …``) and packs the proposal
  into the truth, so ``getok/rl/easyr1_reward.py`` scores the refinement against it. Invalid / ``none``
  proposals are replaced by a builder-made noisy proposal (or dropped), as in the one-machine engine.

Guards before a launch (the model's spatial tokens survive EasyR1's decoding, the rows' layout is the
model's, EasyR1's own config schema and getok's checks accept the YAML) live in :mod:`getok.rl.easyr1_guards`;
this module re-exports them.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from ..codecs.base import get_codec
from ..data_builders.dataset import read_dataset, write_dataset
from ..data_builders.export import export_easyr1, reward_task
from ..errors import ConfigError, DataError
from ..eval.generate import generate_answers
from ..io import atomic_write_text
from ..train.callbacks import CHECKPOINT_INFO_FILE, read_checkpoint_info
from ..vocab import load_adapter, load_model_and_processor, validate_layout
from ..vocab.layout import LAYOUT_FILE, VocabLayout
from .easyr1_guards import (  # noqa: F401  (the private ones: imported from here by verl_stage2 and the engine tests)
    _SNAPSHOT,
    EASYR1_ENV,
    REWARD_FILE,
    _import_easyr1_config,
    _model_layout,
    check_easyr1,
    check_model_for_data,
    check_spatial_tokens,
    easyr1_schema_check,
    find_easyr1,
)
from .stage2 import make_stage2_samples

__all__ = [
    "REWARD_FILE",
    "STAGE2_TASKS",
    "load_policy",
    "make_stage2_data",
    "export_easyr1_stage",
    "check_spatial_tokens",
    "check_easyr1",
    "find_easyr1",
    "easyr1_schema_check",
    "EASYR1_ENV",
]

log = logging.getLogger("getok.rl.easyr1")

#: Stage-1 tasks whose samples can be refined (single target, mask answer).
STAGE2_TASKS = ("text>mask", "point>mask", "box>mask")


def load_policy(path: str | Path, *, base: str | Path | None = None, dtype=None, trust_remote_code: bool = False):
    """A getok checkpoint (SFT / GRPO; LoRA ones merged in memory) or a model directory that already has
    its spatial tokens (``getok_layout.json``) → ``(model, processor, layout)`` in eval mode."""

    p = Path(path)
    if not (p / LAYOUT_FILE).is_file():
        raise ConfigError(f"{p} has no {LAYOUT_FILE}: give a getok checkpoint (getok train sft / grpo / merge)")
    layout = VocabLayout.load(p)
    if (p / "adapter_config.json").is_file():
        info = read_checkpoint_info(p) if (p / CHECKPOINT_INFO_FILE).is_file() else {}
        kw = {} if dtype is None else {"dtype": dtype}
        peft_model, processor, got = load_adapter(p, base=base or info.get("base_model"), **kw)
        got.check_matches(layout, what=f"checkpoint {p}")
        model = peft_model.merge_and_unload()
    else:
        model, processor = load_model_and_processor(p, dtype=dtype, trust_remote_code=trust_remote_code)
    validate_layout(layout, processor, model)
    model.eval()
    return model, processor, layout


def make_stage2_data(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    tasks: tuple[str, ...] | None = None,
    on_invalid: str = "fallback",
    max_cells: int = 64,
    fallback_k: int = 6,
    limit: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    seed: int = 0,
    base: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    generate_fn=None,
) -> tuple[Path, Counter]:
    """Stage-2 samples whose turn 1 is a stage-1 model's own (greedy) answer; a getok dataset directory.

    Parameters
    ----------
    model : path
        The stage-1 policy (:func:`load_policy`); ignored when ``generate_fn`` is given.
    data : path
        A dataset directory with single-target mask samples of a ``grid_offset`` codec (other samples are
        skipped and counted).
    out : path
        Written atomically; images are copied in, so the directory is self-contained.
    tasks : tuple of str, optional
        Default :data:`STAGE2_TASKS`.
    on_invalid, max_cells, fallback_k, seed
        See :func:`getok.rl.stage2.make_stage2_samples`.
    generate_fn : callable, optional
        ``generate_fn(samples, image_root) -> texts`` instead of the model (tests).

    Returns
    -------
    (Path, Counter)
        The directory and the counts (``policy``, ``fallback``, ``skipped``, ``not_single_target``,
        ``wrong_task``, ``reason:*``), also recorded in the manifest's ``builder``.
    """

    ds = read_dataset(data)
    tasks = tuple(tasks or STAGE2_TASKS)
    bad = [t for t in tasks if t not in STAGE2_TASKS]
    if bad:
        raise ConfigError(f"stage-2 tasks must be among {STAGE2_TASKS}, got {bad}")
    counts: Counter = Counter()
    chosen = []
    for s in ds:
        if s.task not in tasks or s.kind != "mask" or get_codec(s.codec).name != "grid_offset" or len(s.turns) != 1:
            counts["wrong_task"] += 1
            continue
        if len(s.truth.get("masks") or []) != 1:
            counts["not_single_target"] += 1
            continue
        s.image = str(ds.image_path(s).resolve())
        chosen.append(s)
    if limit is not None:
        chosen = chosen[: int(limit)]
    if not chosen:
        raise DataError(f"{data}: no single-target mask samples of a grid_offset codec with tasks {tasks}")
    codecs = {s.codec for s in chosen}
    if len(codecs) != 1:
        raise DataError(f"{data}: samples use several codecs {sorted(codecs)}; stage 2 needs one")
    spec = codecs.pop()
    model_name = str(model)
    if generate_fn is None:
        m, processor, layout = load_policy(model, base=base)
        if spec not in layout.codecs:
            raise ConfigError(f"the model's vocabulary {layout.codecs} lacks the data's codec {spec!r}")
        texts = generate_answers(m, processor, chosen, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 progress=progress, seed=seed)  # fmt: skip
    else:
        texts = generate_fn(chosen, None)
    samples, c2 = make_stage2_samples(
        chosen, texts, spec, on_invalid=on_invalid, max_cells=max_cells, fallback_k=fallback_k, seed=seed
    )
    counts.update(c2)
    if not samples:
        raise DataError(f"no stage-2 sample left ({dict(counts)})")
    manifest = {
        "builder": {
            "kind": "stage2",
            "model": model_name,
            "source": str(Path(data).resolve()),
            "tasks": list(tasks),
            "on_invalid": on_invalid,
            "max_cells": max_cells,
            "fallback_k": fallback_k,
            "seed": seed,
            "counts": dict(counts),
        },  # fmt: skip
        "sources": ds.manifest.get("sources") or [],
    }
    path = write_dataset(samples, out, manifest, copy_images=True, overwrite=overwrite)
    log.info("stage-2 samples: %s", dict(counts))
    return path, counts


# ---------------------------------------------------------------------------------------------- export
def export_easyr1_stage(
    data: str | Path,
    out: str | Path,
    *,
    stage: int,
    model: str | Path | None = None,
    embed_images: bool = True,
    skip_special_tokens: bool = True,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """EasyR1 rows of one stage (:func:`~getok.data_builders.export.export_easyr1`), after the guards.

    Every sample must belong to the stage (:func:`~getok.data_builders.export.reward_task`: ``stage1``
    for grid mask answers, ``stage2`` for :func:`make_stage2_data` samples); with ``model`` the spatial
    tokens are checked (:func:`check_spatial_tokens`) and the data's layout must be the model's. Also
    writes ``OUT/easyr1_data.yaml``: the ``data`` settings as a nested mapping (EasyR1 merges config files
    as nested keys: flat ``data.x: ...`` keys would fail its schema).
    """

    if stage not in (1, 2):
        raise ConfigError(f"stage must be 1 or 2, got {stage!r}")
    ds = read_dataset(data)
    tasks = Counter(reward_task(s) for s in ds)
    want = f"stage{stage}"
    if set(tasks) != {want}:
        hint = " (stage 2 rows come from getok rl make-stage2-data)" if stage == 2 else ""
        raise DataError(f"{data}: every sample must be a {want} sample, found {dict(tasks)}{hint}")
    if model is not None:
        check_model_for_data(model, data, ds.manifest, skip_special_tokens=skip_special_tokens)
    path = export_easyr1(ds, out, embed_images=embed_images, overwrite=overwrite, progress=progress)
    import yaml

    keys = {
        "train_files": str((Path(out) / "train.parquet").resolve()),
        "prompt_key": "problem",
        "answer_key": "answer",
        "image_key": "images",
    }
    if not embed_images:
        keys["image_dir"] = str(Path(out).resolve())
    text = ("# EasyR1 data settings for this export: a config file EasyR1 merges (nested keys), or pass them as\n"
            "# data.<key>=<value> overrides\n")  # fmt: skip
    text += yaml.safe_dump({"data": keys}, sort_keys=False)
    atomic_write_text(Path(out) / "easyr1_data.yaml", text)
    return path
