"""The documented CPU chain learns (slow: ~35 min on 2 cores): SFT → GRPO stage 1 → GRPO stage 2.

The commands of docs/rl.md "Results" with the shipped configs, in a temporary directory. The fast, real
version of the same machinery is tests/rl/test_grpo_run.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_stage_grpo_learns_on_cpu(tmp_path):
    from getok.rl.grpo import run_grpo
    from getok.rl.grpo_config import load_grpo_config
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft

    sft = load_sft_config(REPO / "configs/sft/tiny-cpu.yaml",
                          ["data.num_samples=24000", f"output_dir={tmp_path / 'sft'}", "eval.enabled=false"])  # fmt: skip
    run_sft(sft, progress=False)

    c1 = load_grpo_config(REPO / "configs/grpo/tiny-cpu-stage1.yaml",
                          [f"model.path={tmp_path / 'sft' / 'final'}", f"output_dir={tmp_path / 's1'}"])  # fmt: skip
    s1 = run_grpo(c1, progress=False)
    assert s1["train"]["reward"]["last_mean"] > s1["train"]["reward"]["first_mean"]
    # held-out point>mask mIoU moves within its noise from this start (docs/rl.md): checked loosely
    assert (
        s1["eval_after"]["per_task"]["point>mask"]["mIoU"] > s1["eval_before"]["per_task"]["point>mask"]["mIoU"] - 0.1
    )

    c2 = load_grpo_config(REPO / "configs/grpo/tiny-cpu-stage2.yaml",
                          [f"model.path={tmp_path / 's1' / 'final'}", f"output_dir={tmp_path / 's2'}"])  # fmt: skip
    s2 = run_grpo(c2, progress=False)
    assert s2["train"]["reward"]["last_mean"] > s2["train"]["reward"]["first_mean"] + 0.2
    assert s2["eval_after"]["refine_invalid_rate"] < s2["eval_before"]["refine_invalid_rate"]
    assert s2["eval_after"]["gain"] >= s2["eval_before"]["gain"] - 1e-9  # no harmful refinements
