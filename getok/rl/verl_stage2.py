"""GRPO stage 2 on verl with true multi-turn rollouts: the data rows and the proposal rule (no verl import).

verl (>= 0.8; pinned 0.9.1 in ``requirements/verl.txt``) runs multi-turn rollouts through *agent loops*:
an ``AgentLoopBase`` subclass talks to the rollout server token in, token out, for as many turns as it
likes. (verl 0.7's ``verl.interactions.BaseInteraction`` — a simulated user turn configured by an
interaction YAML — was deleted in 0.8, verl PR #6074; its maintainers point to a custom agent loop instead.)
getok's loop, :class:`getok.rl.verl_agent.GetokRefineAgentLoop` (registered as :data:`AGENT_NAME` by
``configs/verl/agent_loop.yaml``), plays one stage-2 conversation per rollout, token for token the one TRL's
stage 2 (:mod:`getok.rl.stage2`) and ``getok eval --turns 2`` use::

    user:      <image>Segment the red disc.             (the dataset row: a stage-1 question)
    assistant: <g32_r03_c02>...                         (turn 1: the CURRENT policy, greedy; not trained)
    user:      Refine your answer: for each proposed cell, in order, give an offset token or <DELETE>.
    assistant: <off_0_0><DELETE>...                     (turn 2: sampled, the response GRPO trains)

and :mod:`getok.rl.verl_reward` scores turn 2 with :func:`~getok.rl.rewards_stage2.score_stage2` against the
proposal the loop recorded (verl hands the loop's ``extra_fields`` to the reward as ``extra_info``).

Decisions (the same as TRL's stage 2, ``proposals.refresh_steps: 1``; docs/rl.md):

* **turn 1 is greedy and part of the prompt** — the G rollouts of a prompt see the same proposal (one GRPO
  group refines one proposal), and only the refinement is trained (``response_mask`` covers turn 2 only);
* **invalid / ``none`` / too long / truncated proposals** (:func:`resolve_proposal`) are replaced by the
  row's builder-made noisy proposal (``extra_info.interaction_kwargs.fallback``,
  :func:`~getok.rl.stage2.fallback_proposal`, fixed per sample at export) written as the assistant's turn 1,
  so the step still trains refinement (``on_invalid: fallback``); ``on_invalid: mask`` rolls out the same
  fallback but the reward gives it 0 (with a shared greedy proposal the whole group scores alike: zero
  advantage). Both are counted (``proposal_*`` reward metrics).

Rows (:func:`export_verl_stage2`, ``getok rl export-verl``) are verl ``RLHFDataset`` rows built from getok's
EasyR1 export (:func:`~getok.data_builders.export.export_easyr1`: the same question text, SFT's
``<image>`` rule, embedded image bytes and packed truth): ``data_source``, ``prompt`` (one user message),
``images``, ``reward_model.ground_truth`` (the packed truth, reward task ``stage2``), ``agent_name``
(:data:`AGENT_NAME`) and ``extra_info`` (``index``, ``sample_id`` and ``interaction_kwargs``: codec spec,
image size, fallback proposal — what the loop needs to judge a proposal).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..codecs.base import get_codec
from ..data_builders.dataset import Dataset, read_dataset
from ..data_builders.export import export_easyr1
from ..errors import ConfigError, DataError, require
from ..io import atomic_dir
from ..vocab.layout import LAYOUT_FILE
from .easyr1 import STAGE2_TASKS, _model_layout, check_model_for_data, check_spatial_tokens
from .rewards import RewardConfig
from .rewards_common import clean_response
from .stage2 import REFINE_PROMPT, check_proposal, fallback_proposal

__all__ = [
    "AGENT_NAME",
    "DATA_SOURCE",
    "ON_INVALID",
    "RefineProposal",
    "resolve_proposal",
    "stage2_candidates",
    "export_verl_stage2",
    "check_verl",
    "REFINE_PROMPT",
]

log = logging.getLogger("getok.rl.verl_stage2")

#: The agent loop's name (``configs/verl/agent_loop.yaml``, the rows' ``agent_name``).
AGENT_NAME = "getok_refine"

#: The rows' ``data_source``.
DATA_SOURCE = "getok/stage2"

#: What to do with a proposal that cannot be refined (module docstring).
ON_INVALID = ("fallback", "mask")


#: The settings of ``configs/verl/agent_loop.yaml`` (keyword arguments of getok's verl agent loop,
#: :mod:`getok.rl.verl_agent`) and their defaults.
AGENT_LOOP_KWARGS = {"on_invalid": "fallback", "max_cells": None, "proposal_max_tokens": None,
                     "refine_prompt": REFINE_PROMPT}  # fmt: skip


@dataclass(frozen=True)
class RefineProposal:
    """The proposal of one stage-2 rollout.

    Attributes
    ----------
    text : str
        The assistant's turn 1 as it stands in the conversation (the policy's text, or the fallback).
    answer : str
        What the refinement is scored against (envelope removed).
    source : str
        ``policy``, ``fallback`` or ``masked`` (:data:`getok.rl.stage2.PROPOSAL_SOURCES`).
    reason : str
        Why the policy's answer was replaced (``""`` when it was used): ``invalid:<why>``, ``none``,
        ``too_long``, ``truncated`` or ``prompt_too_long``.
    """

    text: str
    answer: str
    source: str
    reason: str

    def extra_fields(self) -> dict:
        """What the agent loop records for the reward (verl passes it on as ``extra_info``)."""
        return {"proposal": self.answer, "proposal_source": self.source, "proposal_reason": self.reason}


def resolve_proposal(text: str, *, codec: str, size, fallback: str, max_cells: int, on_invalid: str = "fallback",
                     closed: bool = True, reason: str = "") -> RefineProposal:  # fmt: skip
    """The proposal a rollout's turn 1 gives (:func:`~getok.rl.stage2.check_proposal`), or the fallback.

    Parameters
    ----------
    text : str
        The policy's turn-1 text (decoded without special tokens; end-of-turn markers are dropped).
    codec, size : str, (H, W)
        The row's ``interaction_kwargs``.
    fallback : str
        The row's builder-made proposal.
    max_cells : int
        Refinement tokens the response budget holds.
    on_invalid : {"fallback", "mask"}
    closed : bool
        Whether turn 1 ended with an end-of-turn token (``False``: cut by the token budget → ``truncated``).
    reason : str
        Force the fallback for this reason (e.g. ``prompt_too_long``).

    >>> p = resolve_proposal("<g4_r0_c0>", codec="grid_offset:n=4", size=(32, 32), fallback="<g4_r1_c1>", max_cells=8)
    >>> (p.answer, p.source)
    ('<g4_r0_c0>', 'policy')
    >>> p = resolve_proposal("none", codec="grid_offset:n=4", size=(32, 32), fallback="<g4_r1_c1>", max_cells=8)
    >>> (p.text, p.source, p.reason)
    ('<g4_r1_c1>', 'fallback', 'none')
    """
    if on_invalid not in ON_INVALID:
        raise ConfigError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
    if not reason:
        if not closed:
            reason = "truncated"
        else:
            answer, reason = check_proposal(text if isinstance(text, str) else "", codec, tuple(size), max_cells)
            if answer is not None:
                return RefineProposal(text=clean_response(text), answer=answer, source="policy", reason="")
    if not isinstance(fallback, str) or not fallback:
        raise DataError("the row has no fallback proposal (extra_info.interaction_kwargs.fallback): export it with "
                        "getok rl export-verl")  # fmt: skip
    source = "fallback" if on_invalid == "fallback" else "masked"
    return RefineProposal(text=fallback, answer=fallback, source=source, reason=reason)


# ---------------------------------------------------------------------------------------------- rows
def stage2_candidates(ds, tasks: tuple[str, ...] | None = None) -> tuple[list, Counter]:
    """The samples of a dataset that stage 2 can refine: single-turn, single-target mask questions of a
    ``grid_offset`` codec among ``tasks`` (default :data:`getok.rl.easyr1.STAGE2_TASKS`); returns them and
    the counts of the rest (``wrong_task``, ``not_single_target``)."""

    tasks = tuple(tasks or STAGE2_TASKS)
    bad = [t for t in tasks if t not in STAGE2_TASKS]
    if bad:
        raise ConfigError(f"stage-2 tasks must be among {STAGE2_TASKS}, got {bad}")
    chosen, counts = [], Counter()
    for s in ds:
        if s.task not in tasks or s.kind != "mask" or get_codec(s.codec).name != "grid_offset" or len(s.turns) != 1:
            counts["wrong_task"] += 1
        elif len(s.truth.get("masks") or []) != 1:
            counts["not_single_target"] += 1
        else:
            chosen.append(s)
    return chosen, counts


def _verl_row(
    row: dict, index: int, fallbacks: dict[str, str], sizes: dict[str, list[int]], codecs: dict[str, str]
) -> dict:
    sid = row["sample_id"]
    truth = json.loads(row["answer"])
    truth["task"] = "stage2"  # the proposal comes from the rollout (the reward's proposal=)
    return {
        "data_source": DATA_SOURCE,
        "agent_name": AGENT_NAME,
        "prompt": [{"role": "user", "content": row["problem"]}],
        "reward_model": {"style": "rule", "ground_truth": json.dumps(truth, separators=(",", ":"))},
        "extra_info": {
            "index": index,
            "sample_id": sid,
            "interaction_kwargs": {"name": AGENT_NAME, "codec": codecs[sid], "size": sizes[sid], "fallback": fallbacks[sid]},
        },
    }  # fmt: skip


def export_verl_stage2(data: str | Path, out: str | Path, *, model: str | Path | None = None,
                       tasks: tuple[str, ...] | None = None, fallback_k: int = 6, seed: int = 0,
                       limit: int | None = None, overwrite: bool = False, progress: bool = False) -> tuple[Path, Counter]:  # fmt: skip
    """verl rows (``OUT/train.parquet``) for stage 2 from a dataset of stage-1 questions (module docstring).

    Parameters
    ----------
    data : path
        A getok dataset directory (``getok build tasks ... --codec grid_offset:...``); the samples of
        :func:`stage2_candidates` are exported, the others counted.
    out : path
        Written atomically: ``train.parquet``, ``manifest.json`` (``export.format: verl``, the counts),
        ``getok_layout.json``.
    model : path, optional
        The model verl will train: its spatial tokens must be single non-special ids (verl's reward manager
        decodes with ``skip_special_tokens=True``) and its layout the data's
        (:func:`getok.rl.easyr1.check_spatial_tokens`).
    fallback_k, seed : int
        The fallback proposal's cells and seed (:func:`~getok.rl.stage2.fallback_proposal`).
    limit : int, optional
        At most this many rows.

    Returns
    -------
    (Path, Counter)
        The directory and the counts (``rows``, ``wrong_task``, ``not_single_target``).
    """

    datasets = require("datasets", "data", "verl export")
    ds = read_dataset(data)
    chosen, counts = stage2_candidates(ds, tasks)
    chosen = chosen[:limit] if limit is not None else chosen
    if not chosen:
        raise DataError(f"{data}: no single-target mask question of a grid_offset codec to refine ({dict(counts)})")
    if model is not None:
        check_model_for_data(model, data, ds.manifest)
    fallbacks = {s.sample_id: fallback_proposal(s, s.codec, k=fallback_k, seed=seed) for s in chosen}
    sizes = {s.sample_id: [int(v) for v in s.size] for s in chosen}
    codecs = {s.sample_id: s.codec for s in chosen}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        # getok's EasyR1 export writes the question (SFT's <image> rule), the packed truth and the image bytes
        e1 = export_easyr1(Dataset(ds.root, ds.manifest, chosen), tmp / "easyr1", progress=progress)
        if not progress:
            datasets.disable_progress_bars()
        rows = datasets.Dataset.from_parquet(str(e1 / "train.parquet"), keep_in_memory=True)
        rows = rows.map(lambda r, i: _verl_row(r, i, fallbacks, sizes, codecs), with_indices=True,
                        remove_columns=["problem", "answer", "sample_id"], keep_in_memory=True,
                        desc="verl rows")  # fmt: skip
        rows.to_parquet(str(tmp / "train.parquet"))
        man = json.loads((e1 / "manifest.json").read_text())
        counts["rows"] = len(rows)
        man["export"] = {**man["export"], "format": "verl", "rows": len(rows), "columns": list(rows.column_names),
                         "files": ["train.parquet"], "agent_name": AGENT_NAME, "fallback_k": fallback_k, "seed": seed,
                         "counts": dict(counts)}  # fmt: skip
        (tmp / "manifest.json").write_text(json.dumps(man, indent=1))
        shutil.copy(e1 / LAYOUT_FILE, tmp / LAYOUT_FILE)
        shutil.rmtree(e1)
        datasets.enable_progress_bars()
    log.info("verl stage-2 rows: %s", dict(counts))
    return Path(out), counts


# ---------------------------------------------------------------------------------------------- guards
#: The agent loop class the YAML must name, and the reward module verl must load.
AGENT_TARGET = "getok.rl.verl_agent.GetokRefineAgentLoop"
REWARD_PATHS = ("pkg://getok.rl.verl_reward", "pkg://getok/rl/verl_reward")


def _own_verl_checks(cfg) -> list[str]:
    """getok's checks of a composed verl config (what verl's schema cannot know)."""
    import yaml

    rollout = cfg.actor_rollout_ref.rollout
    path = rollout.agent.agent_loop_config_path
    if not path or not Path(str(path)).is_file():
        raise ConfigError(f"actor_rollout_ref.rollout.agent.agent_loop_config_path is {path!r}: give configs/verl/agent_loop.yaml "
                          "(an absolute path: verl resolves relative ones against each worker's directory)")  # fmt: skip
    entries = {e.get("name"): e for e in (yaml.safe_load(Path(str(path)).read_text()) or [])}
    entry = entries.get(AGENT_NAME)
    if entry is None or entry.get("_target_") != AGENT_TARGET:
        raise ConfigError(f"{path} must list name: {AGENT_NAME} with _target_: {AGENT_TARGET}")
    unknown = sorted(set(entry) - {"name", "_target_", *AGENT_LOOP_KWARGS})
    if unknown:
        raise ConfigError(f"{path}: {AGENT_NAME} has unknown settings {unknown}; known: {sorted(AGENT_LOOP_KWARGS)}")
    if entry.get("on_invalid", "fallback") not in ON_INVALID:
        raise ConfigError(f"{path}: on_invalid must be one of {ON_INVALID}")
    response = int(rollout.response_length)
    if int(entry.get("max_cells") or response - 2) >= response:
        raise ConfigError(
            f"{path}: max_cells {entry.get('max_cells')} leaves no room in rollout.response_length {response}"
        )
    if rollout.agent.default_agent_loop != AGENT_NAME:
        log.warning("default_agent_loop is %s: only rows naming agent_name=%s run getok's loop",
                    rollout.agent.default_agent_loop, AGENT_NAME)  # fmt: skip
    crf = cfg.reward.custom_reward_function
    if crf.path not in REWARD_PATHS and not str(crf.path or "").endswith("getok/rl/verl_reward.py"):
        raise ConfigError(f"reward.custom_reward_function.path is {crf.path!r}; use {REWARD_PATHS[0]}")
    if crf.name != "compute_score":
        raise ConfigError(f"reward.custom_reward_function.name is {crf.name!r}; use compute_score")
    from omegaconf import OmegaConf

    kw = OmegaConf.to_container(crf.get("reward_kwargs") or {}, resolve=True)
    RewardConfig.from_dict(kw.get("config"))  # ConfigError on an unknown section / key
    for key, want in (("prompt_key", "prompt"), ("image_key", "images")):
        if cfg.data.get(key) != want:
            raise ConfigError(f"data.{key} is {cfg.data.get(key)!r}; getok rl export-verl writes {want!r}")
    return [f"ok: agent loop {AGENT_NAME} ({path}, on_invalid {entry.get('on_invalid', 'fallback')}), "
            f"reward {crf.path}:{crf.name}, rollout.n {rollout.n}, prompt / response length "
            f"{rollout.prompt_length} / {response}"]  # fmt: skip


def check_verl(config: str | Path, overrides: list[str] | tuple[str, ...] = (), *, model: str | Path | None = None,
               data: str | Path | None = None) -> list[str]:  # fmt: skip
    """Guards before a verl launch; report lines, :class:`~getok.errors.ConfigError` on a problem.

    ``config`` (a YAML whose defaults include verl's ``ppo_trainer``) and the launch's ``key=value``
    ``overrides`` are composed by Hydra exactly as ``python -m verl.trainer.main_ppo --config-path DIR
    --config-name NAME k=v ...`` composes them (an unknown override fails there), then checked by verl's own
    ``validate_config`` and turned into verl's config dataclasses (``FSDPActorConfig``, ``RolloutConfig``
    with its ``MultiTurnConfig`` / ``AgentLoopConfig``, ``AlgoConfig``, and ``HFModelConfig`` when the model
    directory is here: an unknown key in the YAML fails there), then by :func:`_own_verl_checks`. With
    ``model`` (default: ``actor_rollout_ref.model.path`` when it exists) the spatial tokens are checked; with
    ``data`` (an :func:`export_verl_stage2` directory) its layout must be the model's. Needs verl's
    environment (``requirements/verl.txt``).
    """
    try:
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import omega_conf_to_dataclass, validate_config
    except ImportError as exc:
        raise ConfigError(f"verl's config code does not import here ({exc}): run in verl's environment "
                          "(requirements/verl.txt, make install-verl)") from exc  # fmt: skip
    p = Path(config).resolve()
    if not p.is_file():
        raise ConfigError(f"verl config {p} not found")
    try:
        with initialize_config_dir(config_dir=str(p.parent), version_base=None):
            cfg = compose(config_name=p.stem, overrides=list(overrides))
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        for key in ("actor_rollout_ref.rollout", "algorithm"):
            omega_conf_to_dataclass(OmegaConf.select(cfg, key))
        model = model or cfg.actor_rollout_ref.model.path
        if model is not None and Path(str(model)).is_dir():
            omega_conf_to_dataclass(OmegaConf.merge(cfg.actor_rollout_ref.model, {"path": str(model)}))
    except Exception as exc:  # Hydra's, OmegaConf's and verl's own errors (assertions included)
        raise ConfigError(
            f"verl's config code rejects {p} with {list(overrides)}: {type(exc).__name__}: {exc}"
        ) from exc
    lines = [f"ok: verl's own config code (Hydra over ppo_trainer, validate_config, config dataclasses) accepts {p}"
             + (f" with {len(overrides)} overrides" if overrides else "")]  # fmt: skip
    lines += _own_verl_checks(cfg)
    if model is not None and Path(str(model)).is_dir():
        ml = _model_layout(model)
        if ml is None:
            raise ConfigError(f"{model} has no getok_layout.json: give a getok checkpoint (copy the SFT model's)")
        lines += check_spatial_tokens(model, ml.codecs, skip_special_tokens=True)
        if data is not None:
            man = json.loads((Path(data) / "manifest.json").read_text())
            if man.get("export", {}).get("format") != "verl":
                raise ConfigError(f"{data} is not a getok rl export-verl directory")
            if man.get("layout_hash") != ml.hash:
                raise ConfigError(f"the rows' vocabulary layout {man.get('layout_hash')} is not the model's {ml.hash}")
            lines.append(f"ok: {man['export'].get('rows')} verl rows, layout {ml.hash}")
    else:
        lines.append(f"note: the model {model} is not here: its tokenizer is not checked")
    return lines
