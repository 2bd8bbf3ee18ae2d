"""EasyR1 reward file: ``worker.reward.reward_function=<path to this file>:compute_score``.

EasyR1 loads this file by path (``importlib.util.spec_from_file_location``, so imports here are
absolute), reads the module-level ``REWARD_TYPE`` and calls ``compute_score`` with a list of
``{"response": str, "response_length": int, "ground_truth": str}`` — the ground truth being the packed
JSON of :mod:`getok.rl.truth` (the dataset's ``answer`` column) — plus the keyword arguments of
``worker.reward.reward_function_kwargs``. It expects one ``{"overall": float, ...}`` per input; every
other key is averaged into a metric, so every score here has the same keys and only float values
(the string ``reason`` of :mod:`getok.rl.rewards` is left out; ``invalid`` is 0.0 / 1.0).

Settings (``reward_function_kwargs``):

* ``decoder`` — a decoder spec (``"raster"``, ``"sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b"``);
  default: the weight-free raster decoder. Decoders that need pixels read the truth's ``image`` path,
  relative to ``image_root`` when given.
* ``task`` — force ``stage1`` / ``stage2`` / ``polygon`` (default: each truth's ``task``).
* ``config`` — nested overrides of :class:`~getok.rl.rewards.RewardConfig`,
  e.g. ``{"stage1": {"mask_floor": 0.2}}``.

Pitfalls handled: responses decoded with ``skip_special_tokens=False`` end in ``<|im_end|>`` (dropped
before parsing); with ``skip_special_tokens=True`` spatial tokens survive only if they were added as
non-special tokens (DESIGN.md conventions) — a response stripped of them scores as invalid.

Example of the call EasyR1 makes::

    compute_score([{"response": "<think>…</think><answer><g32_r03_c04></answer>",
                    "response_length": 12, "ground_truth": pack_truth(...)}])
    # → [{"overall": 0.87, "format": 1.0, "mask": 0.95, ..., "invalid": 0.0}]
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from getok.data_builders.records import load_image_rgb
from getok.rl.rewards import KEYS, RewardScorer
from getok.rl.rewards_common import invalid_score
from getok.rl.rewards_decoding import DecoderSession

__all__ = ["REWARD_TYPE", "compute_score"]

#: EasyR1 calls ``compute_score`` once per batch with a list of inputs.
REWARD_TYPE = "batch"

log = logging.getLogger("getok.rl.easyr1_reward")

_SCORERS: dict[str, RewardScorer] = {}


def _scorer(decoder: str | None, task: str | None, config: dict | None, image_root: str | None) -> RewardScorer:
    key = json.dumps([decoder, task, config, image_root], sort_keys=True, default=str)
    if key not in _SCORERS:
        loader = None
        if image_root is not None:
            root = Path(image_root)
            loader = lambda path: load_image_rgb(root / path)  # noqa: E731
        _SCORERS[key] = RewardScorer(config, DecoderSession(decoder, image_loader=loader), task)
    return _SCORERS[key]


def compute_score(
    reward_inputs: list[dict[str, Any]],
    decoder: str | None = None,
    task: str | None = None,
    config: dict | None = None,
    image_root: str | None = None,
) -> list[dict[str, float]]:
    """Score a batch of EasyR1 reward inputs (module docstring); one float-valued dict per input."""
    if not isinstance(reward_inputs, list):
        raise ValueError("getok's EasyR1 reward is a batch reward: set worker.reward.reward_type=batch")
    scorer = _scorer(decoder, task, config, image_root)
    items = [{"response": r.get("response"), "truth": r.get("ground_truth")} for r in reward_inputs]
    try:
        scores = scorer.score_batch(items)
    except Exception:  # a bug must not kill a cluster run: log it and score item by item
        log.exception("getok reward failed on a batch; scoring item by item")
        scores = []
        for item in items:
            try:
                scores.extend(scorer.score_batch([item]))
            except Exception:
                log.exception("getok reward failed on one response; scored 0")
                scores.append(invalid_score(KEYS.get(task or "stage1"), "internal_error"))
    keys = sorted({k for s in scores for k, v in s.items() if k != "reason" and isinstance(v, (int, float))})
    return [{k: float(s.get(k, 0.0)) for k in keys} for s in scores]
