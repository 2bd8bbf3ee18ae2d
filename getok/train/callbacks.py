"""Trainer callbacks: metrics to JSONL, and checkpoints that describe themselves.

* :class:`JsonlMetricsCallback` — every ``on_log`` record (loss, learning rate, grad norm, token accuracy,
  ...) as one JSON line ``{"step", "epoch", "time_s", ...}`` in ``OUTPUT/metrics.jsonl`` (appended, so a
  resumed run continues the file).
* :class:`CheckpointInfoCallback` — after the trainer has written ``checkpoint-N/`` it adds
  ``getok_layout.json`` (the vocabulary layout, ids included), ``getok_train.yaml`` (the run's config) and,
  last, ``getok_checkpoint.json`` (codec specs, layout hash, base model, tuning mode, step). The marker is
  written atomically after everything else, so a checkpoint without it is incomplete (a crash mid-save)
  and :func:`last_complete_checkpoint` skips it on resume.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write_json, atomic_write_text
from ..vocab.layout import VocabLayout

__all__ = [
    "CHECKPOINT_INFO_FILE",
    "CONFIG_FILE",
    "JsonlMetricsCallback",
    "CheckpointInfoCallback",
    "write_checkpoint_info",
    "read_checkpoint_info",
    "last_complete_checkpoint",
    "read_metrics",
]

log = logging.getLogger("getok.train.callbacks")

CHECKPOINT_INFO_FILE = "getok_checkpoint.json"
CONFIG_FILE = "getok_train.yaml"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class JsonlMetricsCallback(_callback_base()):
    """Append each log record to a JSONL file (main process only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        rec = {"step": int(state.global_step), "epoch": float(state.epoch or 0.0),
               "time_s": round(time.perf_counter() - self.t0, 3)}  # fmt: skip
        for k, v in logs.items():
            if isinstance(v, (int, float, str, bool)) or v is None:
                rec[k] = v
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics JSONL file."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def write_checkpoint_info(directory: str | Path, layout: VocabLayout, config_yaml: str, info: dict) -> Path:
    """Write layout, config and (last, atomically) the ``getok_checkpoint.json`` marker into ``directory``."""
    d = Path(directory)
    layout.save(d)
    atomic_write_text(d / CONFIG_FILE, config_yaml)
    full = {"format": "getok-checkpoint", "version": 1, "codecs": list(layout.codecs), "layout_hash": layout.hash,
            **info}  # fmt: skip
    atomic_write_json(d / CHECKPOINT_INFO_FILE, full)
    return d


def read_checkpoint_info(directory: str | Path) -> dict:
    """The ``getok_checkpoint.json`` of a checkpoint (raises :class:`~getok.errors.DataError` when absent)."""

    p = Path(directory) / CHECKPOINT_INFO_FILE
    if not p.is_file():
        raise DataError(f"{directory} is not a complete getok checkpoint (no {CHECKPOINT_INFO_FILE})")
    return json.loads(p.read_text())


class CheckpointInfoCallback(_callback_base()):
    """After each save, describe ``checkpoint-<step>`` (layout, config, marker)."""

    def __init__(self, layout: VocabLayout, config_yaml: str, info: dict) -> None:
        self.layout, self.config_yaml, self.info = layout, config_yaml, dict(info)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        d = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not d.is_dir():  # pragma: no cover - the trainer always writes it before on_save
            log.warning("checkpoint directory %s not found after save", d)
            return
        write_checkpoint_info(d, self.layout, self.config_yaml, {**self.info, "step": int(state.global_step)})


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-N`` with the largest N that carries the getok marker (``None`` when there is none)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = []
    for p in root.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir():
            if (p / CHECKPOINT_INFO_FILE).is_file():
                found.append((int(m.group(1)), p))
            else:
                log.warning("ignoring incomplete checkpoint %s (no %s)", p, CHECKPOINT_INFO_FILE)
    return max(found)[1] if found else None
