"""What getok's trainers (SFT and GRPO) change in how the HF ``Trainer`` writes and reads checkpoints.

:class:`CheckpointMixin` goes before the TRL trainer class in the bases of both getok trainers:

* **LoRA**: adapters are saved without full embedding matrices. peft's ``save_embedding_layers="auto"``
  writes the whole embedding and head whenever the vocabulary grew (1+ GB at 7B); the new rows already live
  in the adapter (``trainable_token_indices``) and the base rows are reproduced by
  :func:`~getok.vocab.add_spatial_tokens` on load.
* **Full fine-tuning**: ``checkpoint-N`` is written with the model's own parameter names
  (``save_pretrained(save_original_format=False)``). transformers 5 otherwise reverts Qwen-VL names to the
  original checkpoint layout (``visual.*``, ``model.layers.*``) on save, while ``Trainer`` resumes with a
  plain ``load_state_dict(strict=False)`` that applies no renaming: every weight was silently missing and
  training went on from the freshly initialised model (upstream: transformers #43701). ``from_pretrained``
  reads both layouts, so such a checkpoint still loads everywhere.
* **Resume is strict**: a checkpoint whose weights do not cover the model (missing or unexpected names,
  tied aliases excepted) raises :class:`~getok.errors.DataError` instead of the Trainer's warning.

:func:`truncate_jsonl` drops the rows a killed attempt logged after the checkpoint a run resumes from.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write_text

__all__ = ["CheckpointMixin", "unloaded_keys", "truncate_jsonl"]

log = logging.getLogger("getok.train.checkpoints")


def _save_kwargs(model) -> dict:
    """The ``save_pretrained`` keywords of a checkpoint save (see the module docstring)."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - the train extra installs peft
        PeftModel = ()
    if isinstance(model, PeftModel):
        return {"save_embedding_layers": False}
    if "save_original_format" in inspect.signature(type(model).save_pretrained).parameters:
        return {"save_original_format": False}
    return {}


def unloaded_keys(model, load_result) -> tuple[list[str], list[str]]:
    """``(missing, unexpected)`` of a ``load_state_dict(strict=False)`` result, tied aliases excepted.

    A missing name is fine when its tensor is the same storage as a loaded one (a tied ``lm_head``).
    """
    state = model.state_dict(keep_vars=True)
    missing = set(load_result.missing_keys)
    loaded_ptrs = {t.data_ptr() for k, t in state.items() if k not in missing}
    real_missing = sorted(k for k in missing if k not in state or state[k].data_ptr() not in loaded_ptrs)
    return real_missing, sorted(load_result.unexpected_keys)


class CheckpointMixin:
    """Compact, resumable checkpoints for a ``transformers.Trainer`` subclass (module docstring)."""

    def _save(self, output_dir=None, state_dict=None):
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        kwargs = _save_kwargs(model)
        if not kwargs:
            return super()._save(output_dir, state_dict)
        model.save_pretrained = functools.partial(type(model).save_pretrained, model, **kwargs)
        try:
            return super()._save(output_dir, state_dict)
        finally:
            del model.save_pretrained

    def _issue_warnings_after_load(self, load_result):
        missing, unexpected = unloaded_keys(self.model, load_result)
        if missing or unexpected:
            raise DataError(
                f"the checkpoint's weights do not match the model: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); resuming would train from wrong weights. "
                "(full fine-tuning checkpoints written before getok saved them under the model's own parameter "
                "names cannot be resumed: use train.resume=never, or start a new run from one with "
                "model.path=CHECKPOINT)"
            )
        return super()._issue_warnings_after_load(load_result)


def truncate_jsonl(path: str | Path, step: int, key: str = "step") -> int:
    """Keep only the rows of a JSONL log with ``row[key] <= step`` (atomically); returns how many were dropped.

    A run killed after its last checkpoint logged steps that the resumed run logs again; without this the
    file would hold both copies.
    """
    p = Path(path)
    if not p.is_file():
        return 0
    keep, dropped = [], 0
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            dropped += 1
            continue
        if isinstance(row, dict) and isinstance(row.get(key), (int, float)) and row[key] > step:
            dropped += 1
            continue
        keep.append(line)
    if dropped:
        atomic_write_text(p, "".join(x + "\n" for x in keep))
        log.info("%s: dropped %d row(s) logged after step %d by the interrupted attempt", p, dropped, step)
    return dropped
