"""The trainer of an SFT run: ``TrainingArguments`` from a ``train:`` section, TRL's ``SFTTrainer`` with
getok's checkpoints and the optional last-turn loss, and where the run executes (CPU or not, cores).

* :func:`common_trainer_kwargs` — the arguments SFT and GRPO share; :func:`training_arguments` — SFT's
  ``SFTConfig``; :func:`report_to` — the trackers;
* :func:`resolve_use_cpu`, :func:`usable_cores` — CPU or accelerator, and the cores this process may use;
* :func:`make_trainer` — the ``SFTTrainer`` subclass, with :class:`LastTurnCollator`
  (:func:`last_turn_labels`) for ``train.loss_turns: last``.

:mod:`getok.train.sft` re-exports every name here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from ..vocab.adapters import adapter_for
from .checkpoints import CheckpointMixin
from .config import SFTRunConfig

__all__ = [
    "report_to",
    "resolve_use_cpu",
    "usable_cores",
    "common_trainer_kwargs",
    "training_arguments",
    "last_turn_labels",
    "LastTurnCollator",
    "make_trainer",
]

log = logging.getLogger("getok.train.sft")  # the run's logger: its lines read as SFT's


def report_to(train) -> list[str]:
    """Trackers of a run: ``train.report_to`` plus TensorBoard when it is installed (``["none"]`` if empty)."""
    out = list(train.report_to)
    if "tensorboard" not in out:
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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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

    if adapter_for(processor).training_chat_template(processor) is not None:
        log.info("chat template without %s markers: TRL's training template renders the samples", "{% generation %}")
    cls = _trainer_class()
    return cls(model=model, args=args, train_dataset=examples, processing_class=processor,
               callbacks=list(callbacks), loss_turns=loss_turns)  # fmt: skip
