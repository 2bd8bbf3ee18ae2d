"""SFT on two CPU processes (``accelerate launch --multi_gpu --num_processes 2``, gloo) trains as one process
with the same global batch, each rank on its own share of the data, and writes everything once.

Three runs of the tiny model (one decoder layer, 3 steps): one process with batch 4, two processes with
batch 2 each, and one process accumulating two batches of 2 (tests/mp_launch.py records what each rank
trains on and what it builds / saves).

Tolerance of the weight comparison. Float32 sums of the two ranks' gradients (all-reduced) and of one batch
of four differ in the order of additions, ~1e-7 relative; Adam divides each gradient by its own running
scale, so an element whose gradient is near zero can move by a different fraction of one step (each step
moves an element by at most about ``lr``). So: no element differs by more than half a step
(``max |A - B| <= lr / 2``) and the difference is a thousandth of how far training moved the weights
(``||A - B|| <= 1e-3 ||A - start||``). Measured (2026-12, torch 2.14.1 CPU): max |A - B| 9.1e-6 (lr 5e-3;
the largest move 1.0e-2), relative norm 1.7e-6, for two processes and for accumulation alike. Before getok
counted the global batch's tokens (the Qwen-VL classes declare ``accepts_loss_kwargs = False``, so each rank
averaged its own tokens) the two-process comparison gave 8.5e-3 and 9.5e-2 (the same run without the
warm-up and the evaluation): the tolerance tells the two apart by orders of magnitude.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from getok.train.callbacks import read_checkpoint_info, read_metrics
from tests.conftest import need_deepspeed
from tests.mp_launch import records, run, weight_differences

pytestmark = pytest.mark.multiprocess

LR = 5e-3
SFT = [
    "train", "sft", "--quiet", "configs/sft/tiny-cpu.yaml", "model.tiny.num_layers=1", "vision_warmup.steps=2",
    "data.scenes.n=12", "data.num_samples=32", f"train.lr={LR}", "train.warmup_ratio=0", "train.logging_steps=1",
    "train.max_steps=3", "train.save_steps=2", "train.dataloader_workers=0", "eval.before=false",
    "eval.n_scenes=2", "eval.batch_size=8", "eval.max_new_tokens=12",
]  # fmt: skip


def _batches(recs: list[dict]) -> list[list[str]]:
    return [r["ids"] for r in recs if r["event"] == "batch"]


def test_two_cpu_processes_train_as_one_with_the_same_global_batch(tmp_path):
    one, two, accum = tmp_path / "one", tmp_path / "two", tmp_path / "accum"
    run([*SFT, "train.batch_size=4", f"output_dir={one}"], tmp_path / "rec1")
    stdout = run([*SFT, "train.batch_size=2", f"output_dir={two}"], tmp_path / "rec2", launcher="accelerate")
    # and one process accumulating two batches of 2: the same global batch again
    run([*SFT, "train.batch_size=2", "train.grad_accum=2", f"output_dir={accum}"], tmp_path / "rec3")

    # (a) every rank sees its share: world size 2 on both; per step, two different samples on each rank whose
    # union is the one-process batch of four (the collator also builds one batch ahead: 4 batches for 3 steps)
    r1, r2 = records(tmp_path / "rec1"), records(tmp_path / "rec2")
    assert set(r2) == {0, 1}
    assert {r["world"] for rank in r2.values() for r in rank if "world" in r} == {2}
    b1, b20, b21 = _batches(r1[0]), _batches(r2[0]), _batches(r2[1])
    assert min(len(b1), len(b20), len(b21)) >= 3
    for whole, a, b in zip(b1[:3], b20[:3], b21[:3]):
        assert len(whole) == 4 and len(a) == len(b) == 2
        assert not set(a) & set(b)
        assert Counter(a + b) == Counter(whole)
    assert len({i for b in b1[:3] for i in b}) == 12  # 3 steps x 4 distinct samples

    # (b) the same training: per-step losses and the final weights
    loss1 = [(m["step"], m["loss"]) for m in read_metrics(one / "metrics.jsonl") if "loss" in m]
    loss2 = [(m["step"], m["loss"]) for m in read_metrics(two / "metrics.jsonl") if "loss" in m]
    assert [s for s, _ in loss2] == [s for s, _ in loss1] == [1, 2, 3]
    assert all(abs(a - b) <= 1e-5 * abs(a) for (_, a), (_, b) in zip(loss1, loss2))
    d = weight_differences(one / "final", two / "final", one / "base-warm")
    print(f"sft: {d}")
    assert d["max_moved"] >= LR  # training moved the weights
    assert d["max_abs"] <= LR / 2 and d["rel_norm"] <= 1e-3, d
    d3 = weight_differences(one / "final", accum / "final", one / "base-warm")
    print(f"sft, accumulation: {d3}")
    assert d3["max_abs"] <= LR / 2 and d3["rel_norm"] <= 1e-3, d3

    # (c) once, on rank 0: base and warm base built, final saved, logs, checkpoints, summary, evaluation
    assert {r["event"] for r in r2[1]} == {"batch", "done"}  # rank 1 built and saved nothing
    saves = [Path(r["dir"]).name for r in r2[0] if r["event"] == "save"]
    assert saves == ["base-warm", "final"] and sum(r["event"] == "build_base" for r in r2[0]) == 1
    assert stdout.count("final: ") == 1 and f"final: {two / 'final'}" in stdout
    assert [s for s, _ in loss2] == [1, 2, 3]  # one metrics row per step, not one per rank
    for name in ("checkpoint-2", "checkpoint-3", "final"):
        assert read_checkpoint_info(two / name)["step"] in (2, 3)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["train"]["steps"] == 3 and summary["eval_after"]["n"] > 0


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_on_two_cpu_processes(tmp_path, stage):
    """configs/deepspeed/zero{2,3}.json on two CPU ranks (DeepSpeed's CPU accelerator, gloo) train as one process.

    DeepSpeed is not a getok dependency: skipped in .venv; CI runs it through ``make test-deepspeed`` (.venv-ds:
    getok's locked dependencies plus deepspeed 0.19.8 over the same torch 2.14.1), which sets
    ``GETOK_REQUIRE_DEEPSPEED=1`` so that a missing DeepSpeed fails instead of skipping. Measured there
    (2026-12): ZeRO-2 max |A - B| 7.5e-5, relative norm 1.6e-5; ZeRO-3 1.0e-4 and 1.9e-5 (the largest move
    1.0e-2). The optimiser state is sharded (one ``zero_pp_rank_<r>`` file per rank). Under ZeRO-3 the final
    save gathers the sharded parameters on every rank first (before that, rank 0 alone found 0 embedding rows
    and the run failed after training).
    """
    need_deepspeed()
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*SFT, "eval.enabled=false"]
    run([*args, "train.batch_size=4", f"output_dir={one}"], tmp_path / "rec1")
    run([*args, "train.batch_size=2", f"train.deepspeed=configs/deepspeed/zero{stage}.json", f"output_dir={two}"],
        tmp_path / "rec2", launcher="torchrun")  # fmt: skip
    shards = sorted(p.name for p in (two / "checkpoint-3").glob("global_step3/zero_pp_rank_*_optim_states.pt"))
    assert len(shards) == 2  # ZeRO: one optimiser shard per rank
    d = weight_differences(one / "final", two / "final", one / "base-warm")
    print(f"sft, zero{stage}: {d}")
    assert d["max_moved"] >= LR and d["max_abs"] <= LR / 2 and d["rel_norm"] <= 1e-3, d
