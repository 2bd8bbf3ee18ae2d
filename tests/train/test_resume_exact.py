"""An SFT run SIGKILLed mid-training and rerun resumes exactly: the same per-step losses and the same final
tensors as the uninterrupted run, in both tuning modes; the killed attempt's extra log rows are dropped.

Before the fix, full fine-tuning resumed from a freshly initialised model: transformers 5 saves Qwen-VL
checkpoints under the original parameter names and ``Trainer`` loads them without renaming (80 / 81
tensors missing, 0 / 81 final tensors equal).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from getok.train.callbacks import read_metrics
from tests.conftest import safetensors_tensors

SFT = [
    "train", "sft", "--quiet", "configs/sft/tiny-cpu.yaml", "vision_warmup.steps=2", "data.scenes.n=24", "data.num_samples=96", "train.batch_size=4",
    "train.lr=5e-3", "train.logging_steps=1", "eval.enabled=false", "train.max_steps=12", "train.save_steps=4",
    "tuning.rank=8",
]  # fmt: skip


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_killed_sft_run_resumes_exactly(kill_and_resume, mode):
    ref, res = kill_and_resume([*SFT, f"tuning.mode={mode}"], kill_after_step=4)
    ref_rows = [(r["step"], r["loss"]) for r in read_metrics(ref / "metrics.jsonl") if "loss" in r]
    res_rows = [(r["step"], r["loss"]) for r in read_metrics(res / "metrics.jsonl") if "loss" in r]
    assert [s for s, _ in res_rows] == list(range(1, 13))  # no duplicate rows from the killed attempt
    assert res_rows == ref_rows  # bit-identical losses, the resumed steps included
    summary = json.loads((res / "summary.json").read_text())
    assert summary["train"]["resumed_from"] is not None and summary["train"]["steps"] == 12

    a, b = safetensors_tensors(ref / "final"), safetensors_tensors(res / "final")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # and training moved the weights (a resume from the untrained model would not match these)
    start = safetensors_tensors(res / "checkpoint-8") if mode == "lora" else safetensors_tensors(res / "base")
    assert any(not np.array_equal(a[k], start[k]) for k in a if k in start)


def test_a_checkpoint_that_does_not_fit_the_model_stops_the_resume(tmp_path):
    """A full fine-tuning checkpoint in the original (``visual.*``) layout — what getok wrote before — must
    not be resumed from silently: the trainer's missing-keys warning becomes a DataError."""
    from safetensors.numpy import save_file

    from getok.errors import DataError
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft

    base = [*SFT[4:], "tuning.mode=full", f"output_dir={tmp_path}"]
    run_sft(load_sft_config("configs/sft/tiny-cpu.yaml", [*base, "train.max_steps=4"]), progress=False)
    ckpt = tmp_path / "checkpoint-4"
    old = {k.replace("model.language_model.", "model.").replace("model.visual.", "visual."): v
           for k, v in safetensors_tensors(ckpt).items()}  # the names transformers 5 writes by default
    assert sum(k.startswith("visual.") for k in old) > 0
    save_file(old, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(DataError, match=r"do not match the model: [1-9]\d+ missing"):
        run_sft(load_sft_config("configs/sft/tiny-cpu.yaml", [*base, "train.max_steps=6"]), progress=False)


def test_truncate_jsonl_keeps_rows_up_to_the_step(tmp_path):
    from getok.train.checkpoints import truncate_jsonl

    p = tmp_path / "metrics.jsonl"
    rows = [{"step": 1, "loss": 2.0}, {"step": 2}, {"note": "no step"}, {"step": 3}, {"step": 4}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "lo')  # the kill cut the last line
    assert truncate_jsonl(p, 2) == 3
    assert [json.loads(x) for x in p.read_text().splitlines()] == rows[:3]
    assert truncate_jsonl(p, 2) == 0 and truncate_jsonl(tmp_path / "absent.jsonl", 2) == 0
