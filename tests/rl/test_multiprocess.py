"""GRPO (stage 1 and stage 2) on two CPU processes (``torchrun --standalone --nproc_per_node 2``, gloo)
trains as one process with the same global batch, each rank on its own prompts, and writes everything once.

Per stage, two runs of the tiny model (one decoder layer, 3 steps, groups of 2): one process with 2 prompts
per step, and two processes with 1 prompt each. The sampling is scripted (tests/mp_launch.py: completions
drawn from a generator seeded with the prompt and the completion's place in its group), because sampled
generation draws each rank's own random stream; rewards, group advantages (gathered across ranks),
log-probabilities, KL, the loss, the all-reduced gradients and the optimiser are the real code path.

Tolerance as in tests/train/test_multiprocess.py: ``max |A - B| <= lr / 2`` (half of one Adam step) and
``||A - B|| <= 1e-3 ||A - start||``. Measured (2026-12, torch 2.14.1 CPU, lr 1e-3, largest move 3.0e-3):
stage 1 max |A - B| 1.1e-4, relative norm 6.2e-5; stage 2 6.7e-6 and 4.2e-6.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from getok.train.callbacks import read_checkpoint_info, read_metrics
from tests.mp_launch import records, run, weight_differences

pytest.importorskip("trl")

pytestmark = pytest.mark.multiprocess

LR = 1e-3
COMMON = [
    "model.path=tiny", "model.tiny.num_layers=1", "tuning.mode=full", "train.max_steps=3", "train.save_steps=2",
    "data.scenes.n=6", "rl.num_generations=2", "rl.max_completion_length=16", f"train.lr={LR}",
    "train.logging_steps=1", "eval.every_steps=0", "eval.n_scenes=2", "eval.batch_size=8", "eval.max_new_tokens=12",
    "proposals.max_new_tokens=12",
]  # fmt: skip
STAGE = {
    1: ["configs/grpo/tiny-cpu-stage1.yaml", "eval.before=true"],  # evaluation before and after: on rank 0
    2: ["configs/grpo/tiny-cpu-stage2.yaml", "eval.enabled=false"],
}


def _batches(recs: list[dict]) -> list[list[str]]:
    return [r["ids"] for r in recs if r["event"] == "batch"]


@pytest.mark.parametrize("stage", [1, 2])
def test_two_cpu_processes_run_grpo_as_one_with_the_same_global_batch(tmp_path, stage):
    one, two = tmp_path / "one", tmp_path / "two"
    argv = ["rl", "train", "--quiet", *STAGE[stage], *COMMON]
    env = {"GETOK_MP_SCRIPTED": "1"}
    run([*argv, "rl.prompts_per_step=2", f"output_dir={one}"], tmp_path / "rec1", env=env)
    stdout = run([*argv, "rl.prompts_per_step=1", f"output_dir={two}"], tmp_path / "rec2", launcher="torchrun",
                 env=env)  # fmt: skip

    # (a) every rank sees its share: world size 2; per step each rank holds one whole group (2 completions
    # of one prompt), the two ranks different prompts, together the one-process step's 4 completions
    r1, r2 = records(tmp_path / "rec1"), records(tmp_path / "rec2")
    assert set(r2) == {0, 1}
    assert {r["world"] for rank in r2.values() for r in rank if "world" in r} == {2}
    b1, b20, b21 = _batches(r1[0]), _batches(r2[0]), _batches(r2[1])
    assert len(b1) == len(b20) == len(b21) == 3  # one generation batch per step
    for whole, a, b in zip(b1, b20, b21):
        assert len(whole) == 4 and len(set(a)) == len(set(b)) == 1 and len(a) == len(b) == 2
        assert set(a) != set(b)
        assert Counter(a + b) == Counter(whole)

    # (b) the same training: per-step mean reward (over both ranks' groups), loss, and the final weights
    m1 = [m for m in read_metrics(one / "metrics.jsonl") if "loss" in m]
    m2 = [m for m in read_metrics(two / "metrics.jsonl") if "loss" in m]
    assert [m["step"] for m in m2] == [m["step"] for m in m1] == [1, 2, 3]  # one row per step, not per rank
    for a, b in zip(m1, m2):
        assert b["reward"] == pytest.approx(a["reward"], abs=1e-6)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3, abs=1e-6)
    assert any(m["grad_norm"] > 0 for m in m1)  # the scripted groups have reward differences to learn from
    d = weight_differences(one / "final", two / "final", one / "start")
    print(f"stage {stage}: {d}")
    assert d["max_moved"] >= LR  # training moved the weights
    assert d["max_abs"] <= LR / 2 and d["rel_norm"] <= 1e-3, d

    # (c) once, on rank 0: base built, start policy and final model saved, summary, curve, evaluation
    assert {r["event"] for r in r2[1]} == {"batch", "done"}  # rank 1 built and saved nothing
    assert [r["event"] for r in r2[0] if r["event"] != "batch"] == ["build_base", "save", "save", "done"]
    assert stdout.count("final: ") == 1 and f"final: {two / 'final'}" in stdout
    assert sorted(p.name for p in two.glob("checkpoint-*")) == ["checkpoint-3"]  # save_total_limit 1
    assert read_checkpoint_info(two / "checkpoint-3")["step"] == 3 and read_checkpoint_info(two / "final")["final"]
    s1, s2 = (json.loads((d_ / "summary.json").read_text()) for d_ in (one, two))
    assert s2["train"]["steps"] == 3 and (two / "reward_curve.png").stat().st_size > 0
    if stage == 1:
        assert s2["eval_before"]["n"] == s1["eval_before"]["n"] > 0 and s2["eval_after"]["n"] > 0
    else:  # each rank proposes for its own prompts; the summary counts both ranks'
        assert s2["proposals"]["generated"] == s1["proposals"]["generated"] == 6
