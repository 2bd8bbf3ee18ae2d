"""Reinforcement learning with spatial tokens: GETok's two GRPO stages and their rewards.

Stage 1 proposes grid cells for a question; stage 2 refines the model's own proposal over a second turn
with offset tokens and ``<DELETE>``. One run::
    from getok.rl import load_grpo_config, run_grpo
    summary = run_grpo(load_grpo_config("configs/grpo/tiny-cpu-stage1.yaml", ["train.max_steps=20"]))

The rewards are plain functions of an answer and its truth (no torch): :func:`score_stage1`,
:func:`score_stage2`, or a :class:`RewardScorer` with a decoder session for many answers. Cluster engines
(EasyR1) call them through :mod:`getok.rl.easyr1_reward`. The training entry points import torch, TRL and
peft on first use; ``import getok.rl`` does not.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

__all__ = [
    "run_grpo",
    "load_grpo_config",
    "GRPORunConfig",
    "RewardConfig",
    "RewardScorer",
    "score_stage1",
    "score_stage2",
]

#: Public names and the submodule that defines each, imported on first use (PEP 562).
_LAZY = {
    "run_grpo": "grpo",
    "load_grpo_config": "grpo_config",
    "GRPORunConfig": "grpo_config",
    "RewardConfig": "rewards",
    "RewardScorer": "rewards",
    "score_stage1": "rewards",
    "score_stage2": "rewards",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
