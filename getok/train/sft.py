"""Supervised fine-tuning on the spatial vocabulary with TRL's ``SFTTrainer``.

:func:`run_sft` is the whole run, in this order (everything that can fail on bad input fails before the
first optimiser step):

1. the base model: ``model.path`` or, for ``tiny``, the embedded tiny model written to ``OUTPUT/base`` (so
   adapters and merges refer to a real directory); with vision warm-up steps (by default only for the tiny model) its
   vision tower is warmed up first (:mod:`getok.train.vision_warmup`) and ``OUTPUT/base-warm`` becomes the base;
2. the vocabulary: :func:`~getok.vocab.add_spatial_tokens` with ``vocab.codecs`` (a model that already has
   them, e.g. a merged getok checkpoint, is validated instead); image size bounds on the processor;
3. the data: the mixture as a dataset directory (``OUTPUT/data/train``), every mixture codec / dataset
   layout checked against the model's, images loaded (unreadable ones skipped and counted), samples
   longer than ``data.max_length`` dropped and counted;
4. tuning: LoRA on the language model with the new rows trainable through the dict form of
   ``trainable_token_indices`` (and TRL's fused-head fix, :func:`~getok.vocab.apply_trl_fused_head_fix`),
   or full fine-tuning (:func:`~getok.vocab.full_finetune_setup`);
5. optional held-out evaluation of the untrained model (``OUTPUT/eval/before``);
6. ``SFTTrainer`` with the conversational ``messages`` + ``images`` columns, the processor's chat
   template and ``assistant_only_loss=True`` (loss on assistant tokens only); progress bar; metrics to
   ``OUTPUT/metrics.jsonl`` (+ TensorBoard when installed); self-describing checkpoints
   (:mod:`getok.train.callbacks`); resume from the last complete checkpoint;
7. the final adapter / model in ``OUTPUT/final`` (atomic) and the held-out evaluation ``OUTPUT/eval/after``;
   ``OUTPUT/summary.json`` records data counts, timings (wall and CPU) and the metrics.

The pieces live by idea: the model (:mod:`getok.train.model_setup`: base, warm-up, vocabulary, tuning) and the
trainer (:mod:`getok.train.trainer`: arguments, ``SFTTrainer``, CPU / cores); this module is the run itself
(held-out evaluation, resume, the final save, timings) and re-exports their names.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .._version import __version__
from ..eval.runner import evaluate
from ..io import atomic_dir, atomic_write_json, atomic_write_text
from ..provenance import Clock
from ..vocab import save_adapter, save_with_layout
from ..vocab.adapters import adapter_for, check_supported_dir
from .callbacks import (
    CONFIG_FILE,
    CheckpointInfoCallback,
    JsonlMetricsCallback,
    last_complete_checkpoint,
    read_checkpoint_info,
    read_metrics,
    write_checkpoint_info,
)
from .checkpoints import truncate_jsonl
from .config import SFTRunConfig, config_yaml
from .data import build_eval_set, build_mixture, prepare_examples
from .model_setup import WARM_DIR, prepare_base, prepare_warm_base, set_pixel_bounds, setup_model, setup_tuning  # noqa: F401
from .trainer import (  # noqa: F401  (the unused ones: imported from here by GRPO, the demo, the tests)
    LastTurnCollator,
    common_trainer_kwargs,
    last_turn_labels,
    make_trainer,
    report_to,
    resolve_use_cpu,
    training_arguments,
    usable_cores,
)

__all__ = [
    "run_sft",
    "prepare_base",
    "prepare_warm_base",
    "setup_model",
    "setup_tuning",
    "set_pixel_bounds",
    "training_arguments",
    "resolve_use_cpu",
    "make_trainer",
    "evaluate_heldout",
    "headline",
    "resolve_resume",
    "checkpoint_info",
    "config_yaml",
]

log = logging.getLogger("getok.train.sft")


# ---------------------------------------------------------------------------------------------- eval
def evaluate_heldout(
    model, processor, eval_dir: str | Path, cfg: SFTRunConfig, out_dir: str | Path, *, progress: bool = False
) -> dict:
    """Held-out evaluation with :func:`getok.eval.runner.evaluate`.

    Returns the runner's summary (``overall`` and ``per_task`` tables: ``gIoU``, ``cIoU``, ``Acc@0.5``,
    ``invalid_rate``, ...); records and tables are written under ``out_dir`` (always recomputed: a
    resumed training run must not reuse the records of an earlier model state).
    """
    ev = cfg.eval
    was_training = model.training
    model.eval()
    try:
        summary = evaluate(
            model, processor, str(eval_dir), decoder=ev.decoder, out_dir=str(out_dir), limit=ev.limit,
            batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens, resume=False, progress=progress,
            seed=cfg.seed, model_name=f"{cfg.output_dir} ({Path(out_dir).name})",
        )  # fmt: skip
    finally:
        model.train(was_training)
    return summary


def headline(summary: dict) -> dict:
    """The numbers worth a line: overall and per-task gIoU, cIoU, Acc@0.5 and invalid rate."""
    if "skipped" in summary:
        return dict(summary)
    keys = ("n", "gIoU", "cIoU", "Acc@0.5", "invalid_rate")
    out = {k: summary.get("overall", {}).get(k) for k in keys}
    for task, s in (summary.get("per_task") or {}).items():
        out[task] = {k: s.get(k) for k in keys}
    return out


# ---------------------------------------------------------------------------------------------- run
def checkpoint_info(cfg: SFTRunConfig, base: Path) -> dict:
    """What a checkpoint records besides layout and config."""

    return {
        "base_model": str(Path(base).resolve()),
        "tuning": cfg.tuning.mode,
        "getok_version": __version__,
    }


def resolve_resume(cfg: SFTRunConfig, output_dir: Path) -> Path | None:
    """The checkpoint to resume from (``train.resume``: ``auto`` / ``never`` / a path)."""
    r = cfg.train.resume
    if r == "never":
        return None
    if r == "auto":
        return last_complete_checkpoint(output_dir)
    p = Path(r)
    read_checkpoint_info(p)  # raises when it is not a complete getok checkpoint
    return p


def zero3_state_dict(trainer):
    """The full state dict, gathered onto rank 0, when DeepSpeed ZeRO-3 shards the parameters (``None``
    otherwise: every rank holds them whole). Collective: every rank calls it before rank 0 saves."""
    ds = getattr(trainer.args, "hf_deepspeed_config", None)
    if ds is None or not ds.is_zero3() or not getattr(trainer, "is_deepspeed_enabled", False):
        return None
    return trainer.accelerator.get_state_dict(trainer.deepspeed)


def save_model_dir(model, processor, layout, out: Path, *, lora: bool, state_dict=None) -> Path:
    """:func:`~getok.vocab.save_adapter` (``lora``) or :func:`~getok.vocab.save_with_layout`; with a gathered
    ZeRO-3 ``state_dict`` the same files, the weights taken from it (the local parameters are shards)."""

    if state_dict is None:
        return (save_adapter if lora else save_with_layout)(model, processor, layout, out, overwrite=True)

    extra = {"save_embedding_layers": False} if lora else {}
    with atomic_dir(out, overwrite=True) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict, **extra)
        processor.save_pretrained(tmp)
        layout.save(tmp)
    return Path(out)


def _save_final(model, processor, layout, cfg: SFTRunConfig, base: Path, out: Path, step: int,
                state_dict=None) -> Path:  # fmt: skip
    save_model_dir(model, processor, layout, out, lora=cfg.tuning.mode == "lora", state_dict=state_dict)
    write_checkpoint_info(out, layout, config_yaml(cfg), {**checkpoint_info(cfg, base), "step": step, "final": True})
    return out


def is_rank_zero() -> bool:
    """Whether this process is rank 0 (or the only one) of ``torchrun`` / ``accelerate launch``: the CLI
    prints a run's summary lines there only."""
    return os.environ.get("RANK", "0") == "0"


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _can_generate(args) -> bool:
    """Held-out generation runs on the main process only: fine unless ZeRO-3 shards the parameters."""
    if args.world_size <= 1:
        return True
    ds = getattr(args, "hf_deepspeed_config", None)
    return not (ds is not None and ds.is_zero3())


def run_sft(cfg: SFTRunConfig, *, progress: bool = True) -> dict:
    """Run SFT as configured; returns (and writes to ``OUTPUT/summary.json``) the run summary.

    Returns
    -------
    dict
        ``output_dir``, ``final`` (the final adapter / model directory), ``data`` (kept / dropped counts),
        ``params``, ``train`` (steps, first / last logged loss, wall and CPU seconds), ``eval_before`` /
        ``eval_after`` (the evaluation summaries; absent when ``eval.enabled`` is false).
    """
    from accelerate import PartialState
    from transformers import set_seed

    if not cfg.model.is_tiny:  # a family getok cannot drive (PaliGemma) fails here, in one line

        saved = check_supported_dir(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
        if saved is not None:  # a chat template TRL cannot mask fails here too, before anything is written
            adapter_for(saved).training_chat_template(saved)
    run_clock = Clock()  # total_wall_s / total_cpu_s, and setup_wall_s
    state = PartialState(cpu=resolve_use_cpu(cfg.train))  # several CPU processes: one gloo group
    out = Path(cfg.output_dir)
    set_seed(cfg.seed)
    if cfg.train.torch_threads is not None:
        import torch

        torch.set_num_threads(cfg.train.torch_threads)

    eval_dir = out / "data" / "eval" if cfg.eval.enabled else None
    with state.main_process_first():  # rank 0 builds base and data; the other ranks then reuse them
        if state.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / CONFIG_FILE, config_yaml(cfg))
        base = prepare_warm_base(cfg, prepare_base(cfg, out), out, progress=progress)
        train_dir = build_mixture(cfg.data, cfg.vocab.codecs, out / "data" / "train", seed=cfg.seed, progress=progress)
        if eval_dir is not None:
            build_eval_set(cfg.eval, cfg.data, cfg.eval.codec or cfg.vocab.codecs[0], eval_dir)

    model, processor, layout, counts = setup_model(cfg, base)
    log.info("parameters: %d trainable, %d frozen (%s)", counts["trainable"], counts["frozen"], cfg.tuning.mode)
    examples, stats = prepare_examples(train_dir, processor, cfg.data.max_length, progress=progress)
    log.info("training examples: %d kept of %d (%d too long, %d unreadable images)",
             stats.kept, stats.total, stats.too_long, stats.image_errors)  # fmt: skip
    summary: dict = {"output_dir": str(out), "data": stats.to_dict(), "params": counts, "layout_hash": layout.hash}
    setup_times = run_clock.split("setup_", digits=1)

    resume = resolve_resume(cfg, out)
    args = training_arguments(cfg, out, progress=progress)
    evaluate_here = cfg.eval.enabled and state.is_main_process and _can_generate(args)
    if cfg.eval.enabled and not _can_generate(args):
        log.warning("held-out evaluation skipped under ZeRO-3 (sharded parameters); evaluate the merged model")
    if evaluate_here and cfg.eval.before and resume is None:
        summary["eval_before"] = headline(
            evaluate_heldout(model, processor, eval_dir, cfg, out / "eval" / "before", progress=progress)
        )
    elif (out / "summary.json").is_file():  # resumed: keep the untrained model's numbers of the first attempt
        prev = json.loads((out / "summary.json").read_text())
        if "eval_before" in prev:
            summary["eval_before"] = prev["eval_before"]

    info = checkpoint_info(cfg, base)
    callbacks = [JsonlMetricsCallback(out / "metrics.jsonl"), CheckpointInfoCallback(layout, config_yaml(cfg), info)]
    trainer = make_trainer(model, processor, examples, args, callbacks, loss_turns=cfg.train.loss_turns)
    if resume is not None:
        log.info("resuming from %s", resume)
        if state.is_main_process:
            truncate_jsonl(out / "metrics.jsonl", read_checkpoint_info(resume)["step"])
    train_clock = Clock()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_times = train_clock.stop("train_", digits=1)  # train_wall_s, train_cpu_s
    step = int(trainer.state.global_step)
    state_dict = zero3_state_dict(trainer)  # every rank: ZeRO-3 gathers the shards
    if trainer.is_world_process_zero():
        final = _save_final(trainer.model, processor, layout, cfg, base, out / "final", step, state_dict)
        summary["final"] = str(final)
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    summary["train"] = {
        "steps": step,
        "resumed_from": str(resume) if resume else None,
        "train_loss": float(result.training_loss),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        **train_times,
        "setup_wall_s": setup_times["setup_wall_s"],
        "torch_threads": torch_threads(),
        "dataloader_workers": cfg.train.dataloader_workers,
    }
    if evaluate_here:
        summary["eval_after"] = headline(
            evaluate_heldout(trainer.model, processor, eval_dir, cfg, out / "eval" / "after", progress=progress)
        )
    summary.update(run_clock.stop("total_", digits=1))  # total_wall_s, total_cpu_s
    if trainer.is_world_process_zero():
        atomic_write_json(out / "summary.json", summary)
    state.wait_for_everyone()  # several processes: no rank exits while rank 0 still writes
    return summary
