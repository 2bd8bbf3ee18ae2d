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
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ..errors import ConfigError, DataError
from ..io import atomic_write_json, atomic_write_text
from ..provenance import cpu_seconds
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


# ---------------------------------------------------------------------------------------------- model
def set_pixel_bounds(processor, min_pixels: int | None, max_pixels: int | None) -> bool:
    """Bound ``H * W`` after the image processor's resize (``min_pixels`` / ``max_pixels``) where the
    processor has such bounds, through the family's adapter (:mod:`getok.vocab.adapters`): Qwen2 / 2.5-VL
    ``size`` ``shortest_edge`` / ``longest_edge``, Qwen3-VL the same in its patch x merge unit; a CLIP /
    SigLIP / Idefics3 processor keeps its own sizes (logged). Returns whether the processor was changed."""
    from ..vocab.adapters import adapter_for

    return adapter_for(processor).set_pixel_bounds(processor, min_pixels, max_pixels)


def prepare_base(cfg: SFTRunConfig, output_dir: str | Path) -> Path:
    """The base model directory: ``model.path``, or the tiny model built into ``OUTPUT/base`` (once)."""
    if not cfg.model.is_tiny:
        p = Path(cfg.model.path)
        if not (p / "config.json").is_file():
            raise ConfigError(f"model.path {p} is not a model directory (no config.json); use 'tiny' or a local dir")
        return p
    from ..vocab.tiny import build_tiny_model, read_tiny_config

    base = Path(output_dir) / "base"
    want = cfg.model.tiny_config()
    if base.exists():
        have = read_tiny_config(base)
        if have != want:
            raise DataError(f"{base} holds a tiny model built with other settings; remove it or change output_dir")
        return base
    build_tiny_model(base, want)
    return base


WARM_DIR = "base-warm"
_WARM_INFO = "getok_vision_warmup.json"


def prepare_warm_base(cfg: SFTRunConfig, base: Path, output_dir: str | Path, *, progress: bool = True) -> Path:
    """``base`` with the vocabulary added and the vision tower warmed up (``vision_warmup.steps > 0``),
    written once to ``OUTPUT/base-warm`` (reused when its settings match); ``base`` itself otherwise.

    The warmed directory is the base of the run: LoRA adapters and resumed runs refer to it, so the vision
    weights the warm-up changed are part of every checkpoint's starting point.
    """
    wc = cfg.vision_warmup
    steps = wc.steps_for(cfg.model)
    if not steps:
        return Path(base)
    import dataclasses

    from ..data_builders.scenes import generate_scenes
    from ..vocab import add_spatial_tokens, load_model_and_processor, save_with_layout, validate_layout
    from ..vocab.tiny import read_tiny_config
    from .vision_warmup import warm_up_vision

    out = Path(output_dir) / WARM_DIR
    wc = dataclasses.replace(wc, steps=steps)
    tiny = read_tiny_config(base)  # a tiny base is named by its settings, so a moved run directory still matches
    key = {"base": tiny.to_dict() if tiny is not None else str(Path(base).resolve()),
           "vision_warmup": dataclasses.asdict(wc), "codecs": cfg.vocab.codecs, "init": cfg.vocab.init,
           "init_seed": cfg.vocab.init_seed, "scenes": dataclasses.asdict(cfg.data.scenes),
           "min_pixels": cfg.model.min_pixels, "max_pixels": cfg.model.max_pixels}  # fmt: skip
    if (out / _WARM_INFO).is_file():
        info = json.loads((out / _WARM_INFO).read_text())
        if info.get("key") == key:
            return out
        raise DataError(f"{out} was warmed up with other settings; remove it or change output_dir")
    m = cfg.model
    model, processor = load_model_and_processor(base, dtype=None if m.dtype == "auto" else m.dtype,
                                                 trust_remote_code=m.trust_remote_code)  # fmt: skip
    set_pixel_bounds(processor, m.min_pixels, m.max_pixels)
    layout = add_spatial_tokens(processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed,
                                pad_to_multiple_of=cfg.vocab.pad_to_multiple_of)  # fmt: skip
    validate_layout(layout, processor, model)
    sc = cfg.data.scenes
    # no more scenes than the warm-up can draw (a short warm-up on a large scene series)
    scenes = generate_scenes(min(sc.n, steps * wc.batch_size), seed=sc.seed, cfg=sc.scene_config())
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(wc.torch_threads or usable_cores())
    try:
        stats = warm_up_vision(model, processor, layout, scenes, wc, progress=progress)
    finally:
        torch.set_num_threads(threads)
    save_with_layout(model, processor, layout, out, overwrite=True)  # a directory without the marker is redone
    atomic_write_json(out / _WARM_INFO, {"key": key, "stats": stats})  # the marker, last
    return out


def setup_model(cfg: SFTRunConfig, base: str | Path):
    """Load the base, add (or validate) the vocabulary, set up LoRA or full fine-tuning.

    Returns
    -------
    (model, processor, layout, counts)
        ``model`` is a ``PeftModel`` (LoRA) or the base model (full); ``layout`` has ids; ``counts`` are
        ``{"trainable": ..., "frozen": ...}`` parameter counts.
    """
    from ..vocab import add_spatial_tokens, load_model_and_processor, validate_layout

    m = cfg.model
    model, processor = load_model_and_processor(
        base, dtype=None if m.dtype == "auto" else m.dtype, trust_remote_code=m.trust_remote_code,
        attn_implementation=m.attn_implementation,
    )  # fmt: skip
    set_pixel_bounds(processor, m.min_pixels, m.max_pixels)
    layout = add_spatial_tokens(
        processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed,
        pad_to_multiple_of=cfg.vocab.pad_to_multiple_of,
    )  # fmt: skip
    validate_layout(layout, processor, model)
    model, counts = setup_tuning(model, layout, cfg.tuning)
    return model, processor, layout, counts


def setup_tuning(model, layout, t):
    """LoRA (+ trainable new rows, TRL's fused-head fix) or full fine-tuning per a ``tuning:`` section
    (:class:`~getok.train.config.TuningConfig`, shared by SFT and GRPO); returns ``(model, counts)`` with
    ``counts = {"trainable": ..., "frozen": ...}`` parameter counts, the model in train mode."""
    from ..vocab import apply_trl_fused_head_fix, full_finetune_setup, get_peft_model_for

    if t.mode == "lora":
        apply_trl_fused_head_fix()
        model = get_peft_model_for(
            model, layout, rank=t.rank, alpha=t.alpha, dropout=t.dropout, train_new_rows=t.train_new_rows,
            target_modules=t.target_modules, experts=t.experts,
        )  # fmt: skip
        counts = {"trainable": 0, "frozen": 0}
        for p in model.parameters():
            counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    else:
        counts = full_finetune_setup(
            model, train_vision=t.train_vision, train_merger=t.train_merger, train_embeddings=t.train_embeddings,
            layout=layout, new_rows_only=t.new_rows_only,
        )  # fmt: skip
    model.train()
    return model, counts


# ---------------------------------------------------------------------------------------------- trainer
def report_to(train) -> list[str]:
    """Trackers of a run: ``train.report_to`` plus TensorBoard when it is installed (``["none"]`` if empty)."""
    out = list(train.report_to)
    if "tensorboard" not in out:
        import importlib.util

        if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
            out.append("tensorboard")
    return out or ["none"]


def resolve_use_cpu(train) -> bool:
    """``train.use_cpu``, with ``None`` resolved: on the CPU exactly when torch sees no CUDA device.

    transformers' ``TrainingArguments`` (and accelerate's ``PartialState``) only form a gloo group across the
    ranks of ``torchrun`` / ``accelerate launch`` when told to use the CPU; otherwise, without a GPU, each
    rank trains alone with world size 1.
    """
    if train.use_cpu is not None:
        return bool(train.use_cpu)
    import torch

    return not torch.cuda.is_available()


def common_trainer_kwargs(train, output_dir: str | Path, *, seed: int, progress: bool = True) -> dict:
    """The ``transformers.TrainingArguments`` that SFT and GRPO take alike from a ``train:`` section."""
    return dict(
        output_dir=str(output_dir),
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.lr,
        lr_scheduler_type=train.scheduler,
        warmup_steps=train.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=train.weight_decay,
        max_steps=train.max_steps,
        max_grad_norm=train.max_grad_norm,
        bf16=train.bf16,
        fp16=train.fp16,
        gradient_checkpointing=train.gradient_checkpointing,
        logging_steps=train.logging_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=seed,
        data_seed=seed,
        report_to=report_to(train),
        deepspeed=train.deepspeed,
        use_cpu=resolve_use_cpu(train),
        disable_tqdm=not progress,
        remove_unused_columns=False,
    )


def training_arguments(cfg: SFTRunConfig, output_dir: str | Path, *, progress: bool = True):
    """TRL ``SFTConfig`` for a run (conversational VLM data, assistant-only loss, no truncation)."""
    from trl import SFTConfig

    tr = cfg.train
    return SFTConfig(
        **common_trainer_kwargs(tr, output_dir, seed=cfg.seed, progress=progress),
        per_device_train_batch_size=tr.batch_size,
        num_train_epochs=tr.epochs,
        dataloader_num_workers=tr.dataloader_workers,
        # data: conversational messages + images, rendered by the processor's chat template in the collator
        assistant_only_loss=True,
        max_length=None,  # never truncate: prepare_examples already dropped (and counted) long samples
        packing=False,
        padding_free=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )


def last_turn_labels(labels):
    """Keep the labels of each row's last labelled run (its final assistant turn); the rest become -100.

    With assistant-only loss every assistant turn is one contiguous run of labels != -100, separated by
    masked user / image tokens, so the last run is the final answer.

    >>> import torch
    >>> last_turn_labels(torch.tensor([[-100, 5, 6, -100, -100, 7, 8, -100], [-100, 1, 2, -100, -100, -100, -100, -100]]))
    tensor([[-100, -100, -100, -100, -100,    7,    8, -100],
            [-100,    1,    2, -100, -100, -100, -100, -100]])
    """
    import torch

    valid = labels != -100
    prev = torch.zeros_like(valid)
    prev[:, 1:] = valid[:, :-1]
    starts = valid & ~prev
    pos = torch.arange(labels.shape[1], device=labels.device).expand_as(labels)
    last_start = torch.where(starts, pos, torch.full_like(pos, -1)).max(dim=1, keepdim=True).values
    return torch.where(pos >= last_start, labels, torch.full_like(labels, -100))


class LastTurnCollator:
    """Wraps TRL's collator: the loss on the final assistant turn only (``train.loss_turns: last``)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples):
        out = self.inner(examples)
        out["labels"] = last_turn_labels(out["labels"])
        return out


def _trainer_class():
    from trl import SFTTrainer

    from .checkpoints import CheckpointMixin

    class GetokSFTTrainer(CheckpointMixin, SFTTrainer):
        """``SFTTrainer`` with getok's checkpoints (:mod:`getok.train.checkpoints`: compact adapters,
        full fine-tuning checkpoints that resume exactly) and the optional last-turn loss."""

        def __init__(self, *args, loss_turns: str = "all", **kwargs):
            super().__init__(*args, **kwargs)
            if self.compute_loss_func is None and self.label_smoother is None:
                # TRL's own loss (sum of token losses / num_items_in_batch) never hands num_items_in_batch to
                # the model, but the Qwen-VL classes declare accepts_loss_kwargs = False, so the Trainer passed
                # None and each rank / micro-batch took the mean over its own tokens: a mean of means, not the
                # global batch's token mean. With this, the Trainer counts the labelled tokens of the whole
                # global batch (all ranks, all accumulation steps): N ranks x batch B train as one process with
                # batch N x B (tests/train/test_multiprocess.py). One process without accumulation: the same
                # loss as before (its own tokens are the whole batch).
                self.model_accepts_loss_kwargs = True
            if loss_turns == "last":
                self.data_collator = LastTurnCollator(self.data_collator)

    return GetokSFTTrainer


def make_trainer(model, processor, examples, args, callbacks=(), loss_turns: str = "all"):
    """The ``SFTTrainer`` (subclass) over :func:`~getok.train.data.prepare_examples`'s dataset.

    The processor's chat template is checked first (:meth:`~getok.vocab.adapters.ModelAdapter.training_chat_template`):
    one with ``{% generation %}`` markers is used as is, a real template TRL knows (Qwen2.5-VL, Qwen3-VL ...) is
    swapped by TRL for its training template, any other raises :class:`~getok.errors.ConfigError`."""
    from ..vocab.adapters import adapter_for

    if adapter_for(processor).training_chat_template(processor) is not None:
        log.info("chat template without %s markers: TRL's training template renders the samples", "{% generation %}")
    cls = _trainer_class()
    return cls(model=model, args=args, train_dataset=examples, processing_class=processor,
               callbacks=list(callbacks), loss_turns=loss_turns)  # fmt: skip


# ---------------------------------------------------------------------------------------------- eval
def evaluate_heldout(
    model, processor, eval_dir: str | Path, cfg: SFTRunConfig, out_dir: str | Path, *, progress: bool = False
) -> dict:
    """Held-out evaluation with :func:`getok.eval.runner.evaluate` (``{"skipped": reason}`` if unavailable).

    Returns the runner's summary (``overall`` and ``per_task`` tables: ``gIoU``, ``cIoU``, ``Acc@0.5``,
    ``invalid_rate``, ...); records and tables are written under ``out_dir`` (always recomputed: a
    resumed training run must not reuse the records of an earlier model state).
    """
    try:
        from ..eval.runner import evaluate
    except ImportError as exc:
        log.warning("held-out evaluation skipped: %s", exc)
        return {"skipped": f"getok.eval.runner not available: {exc}"}
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
    from .._version import __version__

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
    from ..vocab import save_adapter, save_with_layout

    if state_dict is None:
        return (save_adapter if lora else save_with_layout)(model, processor, layout, out, overwrite=True)
    from ..io import atomic_dir

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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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

    from .data import build_eval_set, build_mixture, prepare_examples

    if not cfg.model.is_tiny:  # a family getok cannot drive (PaliGemma) fails here, in one line
        from ..vocab.adapters import adapter_for, check_supported_dir

        saved = check_supported_dir(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
        if saved is not None:  # a chat template TRL cannot mask fails here too, before anything is written
            adapter_for(saved).training_chat_template(saved)
    t_wall, t_cpu = time.perf_counter(), cpu_seconds()
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
    t_setup = time.perf_counter() - t_wall

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
    t0w, t0c = time.perf_counter(), cpu_seconds()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_wall, train_cpu = time.perf_counter() - t0w, cpu_seconds() - t0c
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
        "train_wall_s": round(train_wall, 1),
        "train_cpu_s": round(train_cpu, 1),
        "setup_wall_s": round(t_setup, 1),
        "torch_threads": torch_threads(),
        "dataloader_workers": cfg.train.dataloader_workers,
    }
    if evaluate_here:
        summary["eval_after"] = headline(
            evaluate_heldout(trainer.model, processor, eval_dir, cfg, out / "eval" / "after", progress=progress)
        )
    summary["total_wall_s"] = round(time.perf_counter() - t_wall, 1)
    summary["total_cpu_s"] = round(cpu_seconds() - t_cpu, 1)
    if trainer.is_world_process_zero():
        atomic_write_json(out / "summary.json", summary)
    state.wait_for_everyone()  # several processes: no rank exits while rank 0 still writes
    return summary
