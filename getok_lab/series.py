"""The procedural scene series of every experiment, fixed in one place and named in every result file.

A series is the seed of :func:`getok.data_builders.scenes.make_scenes`: the same series draws the same
scenes on any machine. Training draws from ``train`` (SFT) and ``grpo`` (the RL prompts); design decisions
(the tiny recipe's diagnostics, the studies' ``dev`` split) were taken on ``dev`` and, for the GRPO sweep,
``grpo_dev``; the reported tables — the demo's held-out evaluation and the studies' ``test`` split — use
``test``, which no decision has looked at.
"""

SERIES = {"train": 0, "grpo": 1, "dev": 10_000, "grpo_dev": 20_000, "test": 30_000}

__all__ = ["SERIES"]
