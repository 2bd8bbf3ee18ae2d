"""EasyR1 reward file: ``worker.reward.reward_function=<path to this file>:compute_score``.

EasyR1 loads this file by path (``importlib.util.spec_from_file_location``, so imports here are
absolute), reads the module-level ``REWARD_TYPE`` (``"batch"``: one call per batch; EasyR1 has no config key
for it) and ``REWARD_NAME`` (printed at start-up) and calls ``compute_score`` with a list of
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

Missing dependencies fail at start-up, loudly: loading this file imports what the packed truths need
(pycocotools for their COCO RLE masks) and raises :class:`~getok.errors.MissingDependencyError` if it is
absent — EasyR1 then stops with "Failed to load reward function" instead of training on rewards that a
failed decode turned into 0; an import error while scoring is raised too, never scored 0.

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

from getok.errors import require

# What every packed truth needs: fail here, when EasyR1 loads the file, not per response at scoring time.
require("pycocotools.mask", "coco", "getok's EasyR1 reward (decoding the truths' COCO RLE masks)")

from getok.records import load_image_rgb  # noqa: E402
from getok.rl.rewards import KEYS, RewardScorer  # noqa: E402
from getok.rl.rewards_common import invalid_score  # noqa: E402
from getok.rl.rewards_decoding import DecoderSession  # noqa: E402

__all__ = ["REWARD_TYPE", "REWARD_NAME", "compute_score"]

#: EasyR1 calls ``compute_score`` once per batch with a list of inputs (read from the module, not the YAML).
REWARD_TYPE = "batch"

#: The name EasyR1 prints when it loads the reward.
REWARD_NAME = "getok"

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
        raise ValueError("getok's EasyR1 reward is a batch reward (REWARD_TYPE = 'batch'): it takes a list of inputs")
    scorer = _scorer(decoder, task, config, image_root)
    items = [{"response": r.get("response"), "truth": r.get("ground_truth")} for r in reward_inputs]
    try:
        scores = scorer.score_batch(items)
    except ImportError:  # a missing dependency is not a bad response: stop the run rather than score 0
        raise
    except Exception:  # a bug must not kill a cluster run: log it and score item by item
        log.exception("getok reward failed on a batch; scoring item by item")
        scores = []
        for item in items:
            try:
                scores.extend(scorer.score_batch([item]))
            except ImportError:
                raise
            except Exception:
                log.exception("getok reward failed on one response; scored 0")
                scores.append(invalid_score(KEYS.get(task or "stage1"), "internal_error"))
    keys = sorted({k for s in scores for k, v in s.items() if k != "reason" and isinstance(v, (int, float))})
    return [{k: float(s.get(k, 0.0)) for k in keys} for s in scores]
