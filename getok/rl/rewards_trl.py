"""TRL adapters: our rewards as ``GRPOTrainer`` reward functions.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every dataset
column by name (one value per completion), plus ``trainer_state``, ``log_metric`` and ``log_extra``.
Completions are strings (standard datasets) or lists of message dicts (conversational).
The adapters read the packed truth from the ``truth`` column (:mod:`getok.rl.truth`), an optional
``proposal`` column (stage 2 with real two-turn rollouts: the policy's own stage-1 answer) and, for
decoders that need pixels, the ``images`` / ``image`` column; they return ``overall`` per completion and
log the mean of every component as ``<name>/<component>`` through ``log_metric`` and the invalid
reasons as a ``<name>/reason`` column through ``log_extra``.

>>> import numpy as np
>>> from getok.rl.truth import pack_truth
>>> m = np.zeros((32, 32), bool); m[:16, :16] = True
>>> truth = pack_truth((32, 32), [m], codec="grid:n=2")
>>> r = stage1_reward(["<think>x</think><answer><g2_r0_c0></answer>", "junk"], truth=[truth, truth])
>>> [round(v, 3) for v in r], stage1_reward.last_scores[1]["reason"]
([0.856, 0.0], 'format')
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..errors import ConfigError
from .rewards import KEYS, RewardConfig, RewardScorer
from .rewards_common import completion_text, invalid_score

__all__ = ["make_reward_fn", "stage1_reward", "stage2_reward", "polygon_reward"]

log = logging.getLogger(__name__)


def _pick_image(value):
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def make_reward_fn(
    task: str | None = None,
    config: RewardConfig | dict | None = None,
    decoder=None,
    *,
    truth_column: str = "truth",
    proposal_column: str = "proposal",
    image_columns: tuple[str, ...] = ("images", "image"),
    name: str | None = None,
) -> Callable[..., list[float]]:
    """A TRL reward function for ``task`` (``stage1`` / ``stage2`` / ``polygon``; ``None``: each
    truth's own task).

    Parameters
    ----------
    task : str, optional
    config : RewardConfig or dict, optional
    decoder : MaskDecoder, str or DecoderSession, optional
        Default: the weight-free raster decoder.
    truth_column, proposal_column : str
        Dataset columns with the packed truth and (stage 2) the proposal to refine.
    image_columns : tuple of str
        Columns searched for the image when the decoder needs pixels.
    name : str, optional
        The function's ``__name__`` (TRL logs ``rewards/<name>``); default ``getok_<task>``.

    Returns
    -------
    callable
        ``reward(completions, **kwargs) -> list[float]``; its ``scorer`` attribute is the
        :class:`~getok.rl.rewards.RewardScorer` and ``last_scores`` the full scores of the last call.
    """
    scorer = RewardScorer(config, decoder, task)
    fname = name or f"getok_{task or 'reward'}"

    def reward(completions, **kwargs) -> list[float]:
        if truth_column not in kwargs:
            raise ConfigError(
                f"reward {fname!r} needs the dataset column {truth_column!r} (packed truth, getok.rl.truth); "
                f"got columns {sorted(k for k in kwargs if k not in ('trainer_state', 'log_metric', 'log_extra'))}"
            )
        truths = kwargs[truth_column]
        proposals = kwargs.get(proposal_column)
        images = None
        if scorer.session.needs_image:
            images = next((kwargs[c] for c in image_columns if kwargs.get(c) is not None), None)
        items = []
        for k, comp in enumerate(completions):
            item = {"response": completion_text(comp), "truth": truths[k]}
            if proposals is not None and proposals[k] is not None:
                item["proposal"] = proposals[k]
            if images is not None:
                item["image"] = _pick_image(images[k])
            items.append(item)
        scores = _score_items(scorer, items, fname)
        reward.last_scores = scores
        _log(scores, fname, kwargs.get("log_metric"), kwargs.get("log_extra"))
        return [float(s["overall"]) for s in scores]

    reward.__name__ = fname
    reward.__qualname__ = fname
    reward.scorer = scorer
    reward.last_scores = []
    return reward


def _score_items(scorer: RewardScorer, items: list[dict], fname: str) -> list[dict]:
    try:
        return scorer.score_batch(items)
    except Exception:  # a bug must not kill a long run: log it, score per item, count the failures
        log.exception("reward %s failed on a batch; scoring item by item", fname)
    out = []
    for item in items:
        try:
            out.extend(scorer.score_batch([item]))
        except Exception:
            log.exception("reward %s failed on %r; scored 0 (internal_error)", fname, item.get("response", "")[:200])
            out.append(invalid_score(KEYS.get(scorer.task or "stage1"), "internal_error"))
    return out


def _log(scores: list[dict], fname: str, log_metric, log_extra) -> None:
    if not scores:
        return
    if log_metric is not None:
        keys = sorted({k for s in scores for k, v in s.items() if isinstance(v, float)})
        for k in keys:
            vals = [s[k] for s in scores if k in s]
            log_metric(f"{fname}/{k}", float(np.mean(vals)))
    if log_extra is not None:
        log_extra(f"{fname}/reason", [s.get("reason", "") for s in scores])


stage1_reward = make_reward_fn("stage1", name="getok_stage1")
stage2_reward = make_reward_fn("stage2", name="getok_stage2")
polygon_reward = make_reward_fn("polygon", name="getok_polygon")
