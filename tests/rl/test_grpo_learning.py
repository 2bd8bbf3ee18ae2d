"""The documented CPU chain (slow: ~40 min on 2 cores): SFT phase 1 (rl-copy) → SFT phase 2 (rl-start) →
GRPO stage 1 → GRPO stage 2.

The commands of docs/rl.md "Results" with the shipped configs, in a temporary directory, asserting what
that section reports: stage 1 does not lower the reward or the held-out answers (its held-out gains are
small and seed-dependent, so only "no loss" is asserted); the start's refine turn reads the question's move
(a positive held-out gain from turn 1 to turn 2), and stage 2 keeps every refinement valid, keeps the gain
positive and does not lower it. The fast, real version of the same machinery is tests/rl/test_grpo_run.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_stage_grpo_chain_on_cpu(tmp_path):
    from getok.rl.grpo import run_grpo
    from getok.rl.grpo_config import load_grpo_config
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft

    copy = load_sft_config(REPO / "configs/sft/tiny-cpu-rl-copy.yaml", [f"output_dir={tmp_path / 'copy'}"])
    run_sft(copy, progress=False)
    sft = load_sft_config(REPO / "configs/sft/tiny-cpu-rl-start.yaml",
                          [f"model.path={tmp_path / 'copy' / 'final'}", f"output_dir={tmp_path / 'sft'}",
                           "eval.enabled=false"])  # fmt: skip
    run_sft(sft, progress=False)

    c1 = load_grpo_config(REPO / "configs/grpo/tiny-cpu-stage1.yaml",
                          [f"model.path={tmp_path / 'sft' / 'final'}", f"output_dir={tmp_path / 's1'}"])  # fmt: skip
    s1 = run_grpo(c1, progress=False)
    assert s1["train"]["reward"]["last_mean"] > s1["train"]["reward"]["first_mean"] - 0.02
    before, after = s1["eval_before"]["per_task"], s1["eval_after"]["per_task"]
    assert before["point>mask"]["mIoU"] > 0.5  # the SFT start answers point questions (docs: 0.62)
    assert after["box>mask"]["mIoU"] > before["box>mask"]["mIoU"] - 0.02
    assert after["point>mask"]["mIoU"] > before["point>mask"]["mIoU"] - 0.05

    c2 = load_grpo_config(REPO / "configs/grpo/tiny-cpu-stage2.yaml",
                          [f"model.path={tmp_path / 's1' / 'final'}", f"output_dir={tmp_path / 's2'}"])  # fmt: skip
    s2 = run_grpo(c2, progress=False)
    assert s2["eval_after"]["refine_invalid_rate"] <= 0.05
    assert s2["eval_before"]["gain"] > 0.05  # the start's refine turn reads the question's move (docs: +0.15)
    assert s2["eval_after"]["gain"] > 0.05 and s2["eval_after"]["gain"] >= s2["eval_before"]["gain"] - 0.01
    assert s2["eval_after"]["worse"] <= s2["eval_before"]["worse"]  # fewer harmful refinements (docs: 35 -> 7)
    assert s2["eval_after"]["mIoU_turn1"] > s2["eval_before"]["mIoU_turn1"] - 0.05
