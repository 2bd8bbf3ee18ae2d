"""A GRPO run SIGKILLed mid-training and rerun resumes exactly (full fine-tuning, both stages): the same
per-step rewards and policy entropies (so the same sampled completions), the same periodic evaluations
and final tensors as the uninterrupted run; stage 2's proposal store comes back from the checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("trl")

from getok.train.callbacks import read_metrics  # noqa: E402
from tests.conftest import safetensors_tensors  # noqa: E402

FAST = [
    "model.path=tiny", "tuning.mode=full", "train.max_steps=6", "train.save_steps=2", "train.save_total_limit=5",
    "data.scenes.n=6", "eval.n_scenes=2", "eval.batch_size=8", "eval.every_steps=2", "rl.max_completion_length=12",
    "proposals.max_new_tokens=12", "eval.max_new_tokens=12", "rl.prompts_per_step=2", "rl.num_generations=2",
    # the random start scores 0 everywhere: an entropy bonus gives every step a gradient, so the weights and
    # the sampling stream move and a resume from wrong weights or RNG shows
    "rl.temperature=1.5", "rl.entropy_coef=0.1",
]  # fmt: skip


def _rows(out):
    return [(r["step"], r["reward"], r["entropy"]) for r in read_metrics(out / "metrics.jsonl") if "reward" in r]


@pytest.mark.parametrize("stage", [1, 2])
def test_killed_grpo_run_resumes_exactly(kill_and_resume, stage):
    extra = ["proposals.refresh_steps=3"] if stage == 2 else []
    argv = ["rl", "train", "--quiet", "--stage", str(stage), f"configs/grpo/tiny-cpu-stage{stage}.yaml", *FAST, *extra]
    ref, res = kill_and_resume(argv, kill_after_step=2)
    assert [r[0] for r in _rows(res)] == list(range(1, 7))  # no duplicate rows from the killed attempt
    assert _rows(res) == _rows(ref)
    curve = {d: [json.loads(x) for x in (d / "eval_curve.jsonl").read_text().splitlines()] for d in (ref, res)}
    assert [r["step"] for r in curve[res]] == [2, 4, 6]
    assert [{**r, "eval_s": 0} for r in curve[res]] == [{**r, "eval_s": 0} for r in curve[ref]]  # timings aside

    a, b = safetensors_tensors(ref / "final"), safetensors_tensors(res / "final")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    start = safetensors_tensors(res / "start")
    assert any(not np.array_equal(a[k], start[k]) for k in a if k in start)  # training moved the weights
    if stage == 2:
        assert (res / "checkpoint-2" / "getok_proposals.json").is_file()
        s_ref, s_res = (json.loads((d / "summary.json").read_text())["proposals"] for d in (ref, res))
        assert s_res == s_ref and s_res["generated"] > 0

