"""Rewards for GRPO: one entry point over the three tasks, a typed contract, never raising.

* ``stage1`` — grid proposals: :mod:`getok.rl.rewards_stage1`;
* ``stage2`` — offset / ``<DELETE>`` refinement of a proposal: :mod:`getok.rl.rewards_stage2`;
* ``polygon`` — SimpleSeg polygons: :mod:`getok.rl.rewards_polygon`.

The pieces they share are in :mod:`getok.rl.rewards_common` (envelope, non-repeat, shaping functions),
:mod:`getok.rl.rewards_decoding` (decoder sessions, decoded instances), :mod:`getok.rl.matching` and
:mod:`getok.rl.truth` (the packed ground truth); adapters for TRL are in :mod:`getok.rl.rewards_trl`
and for EasyR1 in :mod:`getok.rl.easyr1_reward`.

Examples
--------
>>> import numpy as np
>>> from getok.rl.truth import pack_truth
>>> m = np.zeros((64, 64), bool); m[0:32, 0:16] = True
>>> truth = pack_truth((64, 64), [m], codec="grid:n=4")
>>> s = score_response("<think>left strip</think><answer><g4_r0_c0><g4_r1_c0></answer>", truth)
>>> s["overall"] > 0.85, s["mask_iou"], s["invalid"]
(True, 1.0, 0.0)
>>> score_response("no envelope", truth)["reason"]
'format'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DataError
from .matching import MatchConfig
from .rewards_common import RewardInput, RewardScore, invalid_score
from .rewards_decoding import DecoderSession
from .rewards_polygon import POLYGON_KEYS, PolygonRewardConfig, score_polygon
from .rewards_stage1 import STAGE1_KEYS, Stage1Config, score_stage1
from .rewards_stage2 import STAGE2_KEYS, Stage2Config, score_stage2
from .truth import TASKS, Truth, unpack_truth

__all__ = [
    "RewardInput",
    "RewardScore",
    "RewardConfig",
    "RewardScorer",
    "Stage1Config",
    "Stage2Config",
    "PolygonRewardConfig",
    "MatchConfig",
    "DecoderSession",
    "KEYS",
    "score_stage1",
    "score_stage2",
    "score_polygon",
    "score_response",
    "score_batch",
]

#: Numeric keys of each task's score (besides ``invalid``); every score also has ``reason``.
KEYS = {"stage1": STAGE1_KEYS, "stage2": STAGE2_KEYS, "polygon": POLYGON_KEYS}


def _sub(cls, value, name):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"RewardConfig.{name} must be a mapping or {cls.__name__}, got {type(value).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"RewardConfig.{name} has no field(s) {unknown}; known: {sorted(known)}")
    value = dict(value)
    if isinstance(value.get("match"), dict):
        value["match"] = MatchConfig(**value["match"])
    return cls(**value)


@dataclass(frozen=True)
class RewardConfig:
    """The reward configuration of every task (nested dataclasses; YAML / kwargs fill them).

    >>> RewardConfig.from_dict({"stage1": {"mask_floor": 0.2}}).stage1.mask_floor
    0.2
    """

    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    polygon: PolygonRewardConfig = field(default_factory=PolygonRewardConfig)

    def __post_init__(self):
        for name, cls in (("stage1", Stage1Config), ("stage2", Stage2Config), ("polygon", PolygonRewardConfig)):
            object.__setattr__(self, name, _sub(cls, getattr(self, name), name))

    @classmethod
    def from_dict(cls, d: dict | None) -> RewardConfig:
        """From ``{"stage1": {...}, "stage2": {...}, "polygon": {...}}``; unknown keys are errors."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(TASKS))
        if unknown:
            raise ConfigError(f"RewardConfig has no section(s) {unknown}; known: {list(TASKS)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class RewardScorer:
    """Scores responses against packed truths with one decoder session.

    Parameters
    ----------
    config : RewardConfig or dict, optional
    decoder : MaskDecoder or str, optional
        Default: the weight-free ``raster`` decoder (:mod:`getok.decoding.raster`).
    task : str, optional
        Force a task; default: each truth's ``task``.
    """

    def __init__(self, config: RewardConfig | dict | None = None, decoder=None, task: str | None = None) -> None:
        if isinstance(config, dict):
            config = RewardConfig.from_dict(config)
        self.config = config or RewardConfig()
        if task is not None and task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.session = decoder if isinstance(decoder, DecoderSession) else DecoderSession(decoder)

    def score(
        self,
        response: str,
        truth: str | dict | Truth,
        *,
        task: str | None = None,
        codec: str | None = None,
        proposal: str | None = None,
        image=None,
    ) -> dict:
        """Score one response (see :func:`score_response`)."""
        try:
            t = unpack_truth(truth)
        except DataError:
            return invalid_score(KEYS.get(task or self.task or "stage1", STAGE1_KEYS), "bad_truth")
        task = task or self.task or t.task
        if task not in TASKS:
            return invalid_score(STAGE1_KEYS, "bad_task", t.n_targets)
        if not isinstance(response, str):
            return invalid_score(KEYS[task], "not_text", t.n_targets)
        if task == "stage1":
            return score_stage1(response, t, self.session, self.config.stage1, codec=codec, image=image)
        if task == "stage2":
            return score_stage2(
                response, t, self.session, self.config.stage2, codec=codec, proposal=proposal, image=image
            )
        return score_polygon(response, t, self.session, self.config.polygon, codec=codec, image=image)

    def score_batch(self, inputs: Sequence[RewardInput], task: str | None = None) -> list[dict]:
        """Score many inputs; items of the same image are scored together (one ``set_image`` each),
        results come back in input order."""
        keyed = []
        for k, item in enumerate(inputs):
            try:
                key = unpack_truth(item["truth"]).key
            except (DataError, KeyError, TypeError):
                key = ""
            keyed.append((key, k))
        out: list[Any] = [None] * len(inputs)
        for _, k in sorted(keyed, key=lambda x: x[0]):
            item = inputs[k]
            out[k] = self.score(
                item.get("response"),
                item.get("truth"),
                task=task,
                codec=item.get("codec"),
                proposal=item.get("proposal"),
                image=item.get("image"),
            )
        return out


_DEFAULT: RewardScorer | None = None


def _default() -> RewardScorer:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RewardScorer()
    return _DEFAULT


def score_response(
    response: str,
    truth: str | dict | Truth,
    *,
    task: str | None = None,
    codec: str | None = None,
    proposal: str | None = None,
    config: RewardConfig | None = None,
    decoder=None,
    image=None,
) -> dict:
    """Score one response against a packed truth; never raises on model output or a bad truth.

    Parameters
    ----------
    response : str
        The completion (``<think>…</think><answer>…</answer>``).
    truth : str, dict or Truth
        Packed ground truth (:mod:`getok.rl.truth`).
    task : str, optional
        ``stage1`` / ``stage2`` / ``polygon``; default ``truth.task``.
    codec, proposal : str, optional
        Override the truth's codec spec / stage-1 proposal.
    config : RewardConfig, optional
    decoder : MaskDecoder, str or DecoderSession, optional
        Default: the weight-free raster decoder (module-level session, reused across calls).
    image : (H, W, 3) uint8, optional

    Returns
    -------
    dict
        ``overall`` in [0, 1], the task's components (:data:`KEYS`), ``invalid`` and ``reason``.
    """
    scorer = _default() if config is None and decoder is None else RewardScorer(config, decoder)
    return scorer.score(response, truth, task=task, codec=codec, proposal=proposal, image=image)


def score_batch(inputs: Sequence[RewardInput], *, task=None, config=None, decoder=None) -> list[dict]:
    """:meth:`RewardScorer.score_batch` with a default or given configuration."""
    scorer = _default() if config is None and decoder is None else RewardScorer(config, decoder)
    return scorer.score_batch(inputs, task=task)
