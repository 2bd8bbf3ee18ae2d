"""GRPO on one machine with TRL's ``GRPOTrainer``: stage 1 (propose grid cells) and stage 2 (refine them),
and polygon answers (stage 1 with polygon tasks, below).

:func:`run_grpo` is the whole run, in this order (everything that can fail on bad input fails before the
first rollout):

1. **Start policy** (:func:`load_start_policy`): an SFT checkpoint of ``getok train sft`` (full, LoRA —
   merged into its base in memory —, or merged), a plain model directory (``vocab.codecs`` added or
   validated) or ``tiny``. It is also the KL anchor, so it must be reloadable from a directory
   (:func:`ensure_start_dir`): a LoRA run's adapter refers to it as its base, and full fine-tuning with
   ``rl.beta > 0`` makes TRL rebuild the reference model from ``config._name_or_path``. A policy that
   only exists in memory (merged LoRA, vocabulary just added) is written to ``OUTPUT/start`` and
   reloaded from there; a full / merged checkpoint directory is used as it is.
2. **Prompts** (:func:`build_prompt_data`): query tasks on procedural scenes (or a dataset dir) as a
   getok dataset directory ``OUTPUT/data/train`` (reused on resume), then TRL rows
   (:func:`grpo_rows`): ``prompt`` (conversational, the SFT / evaluation prompt), ``images``,
   ``truth`` (packed, :mod:`getok.rl.truth`), ``sample_id``. Stage 2 keeps single-target mask samples.
3. **Tuning**: LoRA on the language model + trainable new rows (dict-form ``trainable_token_indices``,
   TRL's fused-head fix) or full fine-tuning, as in SFT.
4. **Rewards**: :func:`getok.rl.rewards_trl.make_reward_fn` for the stage with the configured decoder
   (``point_masks:proposer=exact`` on scenes via :class:`~getok.decoding.scenes.SceneExactDecoder`) and weights.
5. **Stage 2's real two-turn rollouts**: before each generation batch :class:`GetokGRPOTrainer` asks a
   :class:`~getok.rl.stage2.ProposalStore` for the current policy's greedy stage-1 answer of each
   prompt (fresh by default), writes it into the conversation as the assistant's first turn followed by
   the refine prompt, and passes it to the reward as the ``proposal`` column; invalid / ``none``
   proposals fall back to a builder-made noisy proposal (or mask the group), counted as
   ``proposals/*`` metrics.
6. Held-out evaluation before, every ``eval.every_steps`` and after (stage 2: the two-turn
   self-correction protocol: turn-1 IoU, turn-2 IoU, the oracle's); metrics per step in
   ``OUTPUT/metrics.jsonl``; self-describing checkpoints (SFT's layout: weights or adapter +
   ``getok_layout.json`` + ``getok_train.yaml`` + the ``getok_checkpoint.json`` marker, written last);
   ``OUTPUT/final``; ``OUTPUT/summary.json`` (timings wall and CPU, evaluation, proposal counts);
   ``OUTPUT/reward_curve.png``.

**Polygon answers** (:data:`~getok.rl.grpo_config.POLYGON_TASKS`: ``data.tasks: [box>polygon]`` and / or
``text>polygon``, stage 1): the prompts are ``data.dataset``'s polygon samples (e.g. the demo's box>polygon
set), each packed with truth task ``polygon`` and scored by :func:`~getok.rl.rewards_polygon.score_polygon`
with ``reward.polygon``'s weights (components logged as ``getok_polygon/<name>``: ``iou``, ``centroid``,
``mask_iou`` ...); the answer codec is a polygon codec (``data.codec``, default the model's first). The
held-out set is ``eval.dataset`` (a getok dataset dir of polygon samples, one turn, ``eval.decoder:
polygon``): before, every ``eval.every_steps`` and after, mIoU, invalid rate and tokens per object (the
evaluation summary's, :func:`getok.eval.metrics.summarize`) go to ``eval_curve.jsonl`` and the summary.
``configs/grpo/tiny-cpu-polygon.yaml`` runs it on the demo's outputs (docs/rl.md "Polygon answers").
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .._version import __version__
from ..data_builders.dataset import read_dataset
from ..decoding import get_decoder
from ..errors import ConfigError
from ..eval.generate import generate_answers
from ..io import atomic_write_json, atomic_write_text
from ..provenance import Clock
from ..train.callbacks import (
    CONFIG_FILE,
    CheckpointInfoCallback,
    JsonlMetricsCallback,
    last_complete_checkpoint,
    read_checkpoint_info,
    read_metrics,
    write_checkpoint_info,
)
from ..train.checkpoints import CheckpointMixin, truncate_jsonl
from ..train.data import build_eval_set, check_dataset_layout
from ..train.sft import common_trainer_kwargs, resolve_use_cpu, save_model_dir, zero3_state_dict
from ..vocab.adapters import adapter_for, check_supported_dir
from .grpo_config import GRPORunConfig, grpo_config_yaml
from .grpo_eval import _periodic_eval_callback, evaluate_policy, fork_torch_rng, plot_reward_curve
from .grpo_policy import (
    StartPolicy,
    answer_codec,
    build_prompt_data,
    ensure_start_dir,
    grpo_rows,
    load_start_policy,
    setup_tuning,
)
from .rewards_decoding import DecoderSession
from .rewards_trl import make_reward_fn
from .stage2 import ProposalStore

__all__ = [
    "StartPolicy",
    "load_start_policy",
    "ensure_start_dir",
    "setup_tuning",
    "build_prompt_data",
    "grpo_rows",
    "reward_functions",
    "grpo_arguments",
    "make_trainer",
    "evaluate_policy",
    "plot_reward_curve",
    "run_grpo",
]

log = logging.getLogger("getok.rl.grpo")

PROPOSALS_FILE = "getok_proposals.json"  # stage 2's proposal store in a checkpoint (exact resume)


# ---------------------------------------------------------------------------------------------- rewards
def reward_functions(cfg: GRPORunConfig, manifest: dict | None = None) -> list:
    """The run's TRL reward function (one; components logged as ``getok_<task>/<name>``, ``task`` =
    :attr:`~getok.rl.grpo_config.GRPORunConfig.reward_task`: ``stage1``, ``stage2`` or ``polygon``).

    With ``proposals.on_invalid = "mask"``, completions whose prompt carries a fallback proposal
    (``proposal_source == "masked"``) all score 0, so their group has zero advantage.
    """

    stage, task = cfg.rl.stage, cfg.reward_task
    session = DecoderSession(get_decoder(cfg.reward.decoder, manifest=manifest))
    fn = make_reward_fn(task, cfg.reward.reward_config(), decoder=session, name=f"getok_{task}")
    if stage == 2 and cfg.proposals.on_invalid == "mask":
        inner = fn

        def reward(completions, **kwargs):
            r = inner(completions, **kwargs)
            src = kwargs.get("proposal_source")
            return r if src is None else [0.0 if s == "masked" else v for v, s in zip(r, src)]

        reward.__name__ = inner.__name__
        reward.scorer = inner.scorer
        fn = reward
    return [fn]


# ---------------------------------------------------------------------------------------------- trainer
def grpo_arguments(cfg: GRPORunConfig, output_dir: str | Path, *, progress: bool = True):
    """TRL ``GRPOConfig`` of a run."""
    from trl import GRPOConfig

    rl, tr = cfg.rl, cfg.train
    return GRPOConfig(
        **common_trainer_kwargs(tr, output_dir, seed=cfg.seed, progress=progress),
        per_device_train_batch_size=cfg.per_device_batch,
        num_generations=rl.num_generations,
        dataloader_num_workers=0,  # stage 2 rewrites rows in the main process; images are small
        # the algorithm
        beta=rl.beta,
        importance_sampling_level=rl.importance_sampling_level,
        loss_type=rl.loss_type,
        epsilon=rl.epsilon,
        epsilon_high=rl.epsilon_high,
        temperature=rl.temperature,
        top_p=rl.top_p,
        max_completion_length=rl.max_completion_length,
        scale_rewards=rl.scale_rewards,
        num_iterations=rl.num_iterations,
        mask_truncated_completions=rl.mask_truncated_completions,
        entropy_coef=rl.entropy_coef,
        log_completions=False,
    )


def _trainer_class():
    from trl import GRPOTrainer

    class GetokGRPOTrainer(CheckpointMixin, GRPOTrainer):
        """``GRPOTrainer`` with stage 2's real two-turn rollouts and getok's checkpoints.

        With a :class:`~getok.rl.stage2.ProposalStore` (``proposal_store=``), every generation batch is
        rewritten before the rollouts: each row's prompt becomes the two-turn conversation with the
        current policy's own greedy stage-1 answer (module docstring, step 5). The proposal generation
        runs in eval mode under a forked torch RNG, so the rollouts' sampling stream is unchanged.
        Checkpoints as SFT's (:mod:`getok.train.checkpoints`: compact adapters, exact full resume).
        """

        def __init__(self, *args, proposal_store=None, proposal_kwargs=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.getok_proposals = proposal_store
            self.getok_proposal_kwargs = dict(proposal_kwargs or {})

        def _getok_generate(self, samples):
            model = self.accelerator.unwrap_model(self.model)
            was = model.training
            model.eval()
            try:
                with fork_torch_rng():
                    return generate_answers(model, self.processing_class, samples, progress=False,
                                            **self.getok_proposal_kwargs)  # fmt: skip
            finally:
                model.train(was)

        def _generate(self, prompts):
            # an MoE config with output_router_logits=True (TRL sets it for the aux loss) makes generate()
            # compute the load-balancing loss against the padded prompt mask, which fails after the first
            # token: off while generating (the loss forward asks for router logits itself)
            cfg = self.accelerator.unwrap_model(self.model).config
            text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
            was = getattr(text_cfg, "output_router_logits", None)
            if was:
                text_cfg.output_router_logits = False
            try:
                return super()._generate(prompts)
            finally:
                if was:
                    text_cfg.output_router_logits = was

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            for k in adapter_for(self.processing_class).trl_dropped_inputs:  # e.g. LLaVA-OneVision's
                v = kwargs.pop(k, None)
                if v is not None and any(int(n) != 1 for n in np.asarray(v.cpu() if hasattr(v, "cpu") else v).ravel()):
                    raise ConfigError(f"{k}: TRL cannot pass it to the model; getok drops it only when every "
                                      "sample has one image")  # fmt: skip
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)  # the marker (CheckpointInfoCallback.on_save) comes after
            if self.getok_proposals is not None and self.is_world_process_zero():
                d = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
                atomic_write_json(d / PROPOSALS_FILE, self.getok_proposals.state_dict())

        def _generate_and_score_completions(self, inputs):
            if self.getok_proposals is not None:
                inputs = self.getok_proposals.fill(inputs, int(self.state.global_step), self._getok_generate)
                for k, v in self.getok_proposals.rates().items():
                    self._log_metric(f"proposals/{k}", v)
            return super()._generate_and_score_completions(inputs)

    return GetokGRPOTrainer


def make_trainer(model, processor, rows, args, reward_funcs, callbacks=(), proposal_store=None, proposal_kwargs=None):
    """The :class:`GetokGRPOTrainer` (a ``GRPOTrainer`` subclass) over :func:`grpo_rows`."""

    cls = _trainer_class()
    trainer = cls(
        model=model, reward_funcs=reward_funcs, args=args, train_dataset=rows, processing_class=processor,
        callbacks=list(callbacks), proposal_store=proposal_store, proposal_kwargs=proposal_kwargs,
    )  # fmt: skip
    extra = adapter_for(processor).trl_chat_template_kwargs(processor)  # e.g. Pixtral: token lists, not tensors
    if extra:
        trainer.chat_template_kwargs = {**trainer.chat_template_kwargs, **extra}
    return trainer


# ---------------------------------------------------------------------------------------------- run
def checkpoint_info(cfg: GRPORunConfig, start: StartPolicy) -> dict:
    return {
        "base_model": str(Path(start.source_dir).resolve()) if start.source_dir else None,
        "tuning": cfg.tuning.mode,
        "trainer": "grpo",
        "stage": cfg.rl.stage,
        "start_policy": start.origin,
        "getok_version": __version__,
    }


def resolve_resume(cfg: GRPORunConfig, output_dir: Path) -> Path | None:
    r = cfg.train.resume
    if r == "never":
        return None
    if r == "auto":
        return last_complete_checkpoint(output_dir)
    p = Path(r)
    read_checkpoint_info(p)
    return p


def _save_final(model, processor, layout, cfg, info: dict, out: Path, step: int, state_dict=None) -> Path:
    save_model_dir(model, processor, layout, out, lora=cfg.tuning.mode == "lora", state_dict=state_dict)
    write_checkpoint_info(out, layout, grpo_config_yaml(cfg), {**info, "step": step, "final": True})
    return out


def _reward_stats(metrics: list[dict], key: str = "reward", k: int = 20) -> dict:
    vals = [r[key] for r in metrics if key in r]
    if not vals:
        return {}
    k = max(1, min(k, len(vals) // 2 or 1))
    return {"first_mean": float(np.mean(vals[:k])), "last_mean": float(np.mean(vals[-k:])), "window": k,
            "steps_logged": len(vals)}  # fmt: skip


def _run_name(cfg: GRPORunConfig) -> str:
    return "polygon answers" if cfg.reward_task == "polygon" else f"stage {cfg.rl.stage}"


def _eval_set(cfg: GRPORunConfig, spec: str, layout, out: Path) -> Path:
    """``eval.dataset`` (its codecs checked against the model's), else held-out scenes built in ``OUTPUT/data/eval``."""
    if cfg.eval.dataset:
        check_dataset_layout(read_dataset(cfg.eval.dataset, check_images=False).manifest, list(layout.codecs),
                             where=f"eval.dataset {cfg.eval.dataset}")  # fmt: skip
        return Path(cfg.eval.dataset)
    return build_eval_set(cfg.eval, cfg.data, spec, out / "data" / "eval")


def run_grpo(cfg: GRPORunConfig, *, progress: bool = True) -> dict:
    """Run GRPO as configured; returns (and writes to ``OUTPUT/summary.json``) the run summary.

    Returns
    -------
    dict
        ``output_dir``, ``final``, ``start_policy``, ``data`` (prompt counts), ``params``, ``train``
        (steps, reward first / last window means, wall and CPU seconds, s/step), ``proposals`` (stage 2
        counts), ``eval_before`` / ``eval_after`` (:func:`eval_headline`), ``curve`` (the PNG).
    """
    from accelerate import PartialState
    from transformers import set_seed

    if not cfg.model.is_tiny:  # a family getok cannot drive (PaliGemma) fails here, in one line

        check_supported_dir(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
    run_clock = Clock()  # total_wall_s / total_cpu_s
    state = PartialState(cpu=resolve_use_cpu(cfg.train))  # several CPU processes: one gloo group
    out = Path(cfg.output_dir)
    set_seed(cfg.seed)
    if cfg.train.torch_threads is not None:
        import torch

        torch.set_num_threads(cfg.train.torch_threads)

    eval_dir = None
    with state.main_process_first():  # rank 0 writes base, start policy and prompts; the others reuse them
        if state.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / CONFIG_FILE, grpo_config_yaml(cfg))
        start = load_start_policy(cfg, out)
        start = ensure_start_dir(start, cfg, out)
        layout = start.layout
        spec = answer_codec(cfg, layout)
        train_dir = build_prompt_data(cfg, spec, out / "data" / "train", progress=progress)
        if cfg.eval.enabled:
            eval_dir = _eval_set(cfg, spec, layout, out)
    ds = read_dataset(train_dir)
    rows = grpo_rows(ds, cfg.reward_task, layout.hash)
    rewards = reward_functions(cfg, ds.manifest)

    processor = start.processor
    summary: dict = {"output_dir": str(out), "start_policy": start.origin, "start_dir": str(start.source_dir),
                     "codec": spec, "layout_hash": layout.hash, "stage": cfg.rl.stage, "reward_task": cfg.reward_task,
                     "data": {"prompts": len(ds), "path": str(train_dir)}}  # fmt: skip
    resume = resolve_resume(cfg, out)
    if cfg.eval.enabled and cfg.eval.before and resume is None and state.is_main_process:
        summary["eval_before"] = evaluate_policy(start.model, processor, eval_dir, cfg, out / "eval" / "before",
                                                 progress=progress)  # fmt: skip
        log.info("held-out before: %s", summary["eval_before"])
    elif (out / "summary.json").is_file():
        prev = json.loads((out / "summary.json").read_text())
        if "eval_before" in prev:
            summary["eval_before"] = prev["eval_before"]

    model, counts = setup_tuning(start.model, layout, cfg)
    summary["params"] = counts
    store, pkw = None, None
    if cfg.rl.stage == 2:
        p = cfg.proposals
        store = ProposalStore(
            ds.samples, spec, refresh_steps=p.refresh_steps, on_invalid=p.on_invalid, max_cells=cfg.max_cells,
            fallback_k=p.fallback_k, seed=cfg.seed,
        )  # fmt: skip
        pkw = {
            "max_new_tokens": p.max_new_tokens,
            "batch_size": p.batch_size,
            "seed": cfg.seed,
            "image_root": str(ds.root),
        }

    args = grpo_arguments(cfg, out, progress=progress)
    info = checkpoint_info(cfg, start)
    callbacks = [
        JsonlMetricsCallback(out / "metrics.jsonl"),
        CheckpointInfoCallback(layout, grpo_config_yaml(cfg), info),
    ]
    if cfg.eval.enabled and cfg.eval.every_steps:
        callbacks.append(_periodic_eval_callback(processor, eval_dir, cfg, out))
    trainer = make_trainer(model, processor, rows, args, rewards, callbacks, store, pkw)
    if resume is not None:
        log.info("resuming from %s", resume)
        done = read_checkpoint_info(resume)["step"]
        if trainer.is_world_process_zero():
            for log_file in ("metrics.jsonl", "eval_curve.jsonl"):
                truncate_jsonl(out / log_file, done)
        if store is not None and (resume / PROPOSALS_FILE).is_file():
            store.load_state_dict(json.loads((resume / PROPOSALS_FILE).read_text()))
    train_clock = Clock()
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_times = train_clock.stop("train_", digits=1)  # train_wall_s, train_cpu_s
    step = int(trainer.state.global_step)
    state_dict = zero3_state_dict(trainer)  # every rank: ZeRO-3 gathers the shards
    if trainer.is_world_process_zero():
        summary["final"] = str(_save_final(trainer.model, processor, layout, cfg, info, out / "final", step,
                                           state_dict))  # fmt: skip
    metrics = read_metrics(out / "metrics.jsonl")
    summary["train"] = {
        "steps": step,
        "resumed_from": str(resume) if resume else None,
        "reward": _reward_stats(metrics),
        **train_times,
        "s_per_step": round(train_clock.wall / max(1, step - (int(resume.name.split("-")[-1]) if resume else 0)), 3),
        "completions_per_step": cfg.per_device_batch * cfg.train.grad_accum * state.num_processes,
    }
    if store is not None:
        counts = dict(store.counts)
        if state.num_processes > 1:  # each rank fills the proposals of its own prompts: sum over ranks
            from accelerate.utils import gather_object

            counts = {}
            for c in gather_object([dict(store.counts)]):
                for k, v in c.items():
                    counts[k] = counts.get(k, 0) + v
        summary["proposals"] = counts
    if cfg.eval.enabled and trainer.is_world_process_zero():
        summary["eval_after"] = evaluate_policy(trainer.model, processor, eval_dir, cfg, out / "eval" / "after",
                                                progress=progress)  # fmt: skip
        log.info("held-out after: %s", summary["eval_after"])
    curve_rows = []
    if (out / "eval_curve.jsonl").is_file():
        curve_rows = [json.loads(x) for x in (out / "eval_curve.jsonl").read_text().splitlines() if x.strip()]
    if "eval_before" in summary:
        curve_rows = [{"step": 0, **summary["eval_before"]}] + [r for r in curve_rows if r["step"] != 0]
    if "eval_after" in summary:
        curve_rows = [r for r in curve_rows if r["step"] != step] + [{"step": step, **summary["eval_after"]}]
    png = None
    if trainer.is_world_process_zero():
        png = plot_reward_curve(out / "metrics.jsonl", out / "reward_curve.png", eval_rows=curve_rows,
                                title=f"GRPO {_run_name(cfg)}: {Path(cfg.output_dir).name}")  # fmt: skip
    summary["curve"] = str(png) if png else None
    summary.update(run_clock.stop("total_", digits=1))  # total_wall_s, total_cpu_s
    if trainer.is_world_process_zero():
        atomic_write_json(out / "summary.json", summary)
    state.wait_for_everyone()  # several processes: no rank exits while rank 0 still writes
    return summary
