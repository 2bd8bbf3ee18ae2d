"""verl reward for getok's stage 2: ``reward.custom_reward_function.path=pkg://getok.rl.verl_reward``.

verl's reward loop (``RewardLoopWorker`` → the ``naive`` reward manager) calls ``compute_score`` once per
rollout with ``data_source``, ``solution_str`` (the response — the refine turn of
:class:`getok.rl.verl_agent.GetokRefineAgentLoop` — decoded with ``skip_special_tokens=True``: spatial tokens
survive because getok adds them as non-special), ``ground_truth`` (the row's packed truth,
:func:`getok.rl.verl_stage2.export_verl_stage2`) and ``extra_info`` (the row's ``extra_info`` updated with the
agent loop's ``extra_fields``: ``proposal``, ``proposal_source``, ``proposal_reason``), plus the keyword
arguments of ``reward.custom_reward_function.reward_kwargs`` (``decoder``, ``config``, ``image_root``: as
:mod:`getok.rl.easyr1_reward`'s, whose cached scorers this reuses). It returns ``{"score": overall, ...}``:
verl trains on ``score`` and logs every other key (the same float keys for every rollout).

The refinement is scored by :func:`~getok.rl.rewards_stage2.score_stage2` against the rollout's own proposal
(``proposal=``) — the reward TRL's stage 2 gives for the same answer. A masked proposal
(``on_invalid: mask``) scores 0. A rollout without a ``proposal`` (the run did not use the ``getok_refine``
agent loop) raises instead of scoring 0: a misconfigured run stops instead of training on zeros. Loading this
module imports what the truths need (pycocotools), so a missing dependency fails at start-up too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from getok.rl.easyr1_reward import _scorer  # importing it checks pycocotools, loudly
from getok.rl.rewards_common import invalid_score
from getok.rl.rewards_stage2 import STAGE2_KEYS

__all__ = ["compute_score", "REWARD_KEYS"]

#: The keys of every result (verl stacks each key over the batch: they must be the same for all rollouts).
REWARD_KEYS = ("score", *STAGE2_KEYS, "invalid", "proposal_policy", "proposal_fallback", "proposal_masked")


def _plain(x):
    """verl hands ``reward_kwargs`` over as OmegaConf containers: plain dicts / lists for getok's config."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return [_plain(v) for v in x]
    return x


def compute_score(data_source: str | None = None, solution_str: str | None = None, ground_truth: str | None = None,
                  extra_info: dict[str, Any] | None = None, *, decoder: str | None = None, config: dict | None = None,
                  image_root: str | None = None, **_: Any) -> dict[str, float]:  # fmt: skip
    """Score one stage-2 rollout for verl (module docstring); ``{"score": ..., **components}``, all floats."""
    info = extra_info or {}
    if "proposal" not in info:
        raise ValueError(
            "getok's verl stage-2 reward got no 'proposal' in extra_info: the rollout did not run getok's agent loop "
            "(set actor_rollout_ref.rollout.agent.agent_loop_config_path to configs/verl/agent_loop.yaml and "
            "default_agent_loop / the rows' agent_name to getok_refine)"
        )
    source = str(info.get("proposal_source") or "policy")
    if source == "masked":
        s = invalid_score(STAGE2_KEYS, "masked_proposal")
        s["invalid"] = 0.0  # the policy's refinement was fine; the group is masked on purpose
    else:
        s = _scorer(decoder, "stage2", _plain(config) if config is not None else None, image_root).score(solution_str, ground_truth, task="stage2",
                                                                 proposal=info["proposal"])  # fmt: skip
    out = {k: float(s.get(k, 0.0)) for k in (*STAGE2_KEYS, "invalid")}
    out["score"] = out["overall"]
    for k in ("policy", "fallback", "masked"):
        out[f"proposal_{k}"] = float(source == k)
    return {k: out[k] for k in REWARD_KEYS}
