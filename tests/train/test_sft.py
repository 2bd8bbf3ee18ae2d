"""SFT end to end on the tiny model: the loss falls, checkpoints describe themselves, resume, merge.

The short real version of the CPU recipe (a few steps, LoRA and full fine-tuning); the full run is
``test_tiny_cpu_recipe_learns`` (marked slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from getok.train.callbacks import CHECKPOINT_INFO_FILE, CONFIG_FILE, last_complete_checkpoint, read_metrics
from getok.train.config import load_sft_config

REPO = Path(__file__).resolve().parents[2]

FAST = [
    "vision_warmup.steps=2",  # the warm-up runs (its code path), briefly
    "data.scenes.n=24",
    "data.num_samples=96",
    "train.batch_size=8",
    "train.lr=5e-3",
    "train.warmup_ratio=0",
    "train.scheduler=constant",
    "train.logging_steps=1",
    "eval.enabled=false",
]


def _logits(model, processor, seed=0):
    """Logits of a fixed image + prompt + answer, ``(1, T, V)`` float64 numpy."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
    msgs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment the red circle."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<g8_r3_c4><off_1_0><DELETE>"}]},
    ]
    text = processor.apply_chat_template(msgs, tokenize=False)
    enc = processor(text=[text], images=[img], return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**enc).logits.double().numpy()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from getok.train.sft import run_sft

    out = tmp_path_factory.mktemp("sft") / "lora"
    cfg = load_sft_config(
        None, [*FAST, "tuning.mode=lora", "tuning.rank=16", "train.max_steps=8", "train.save_steps=4",
               f"output_dir={out}"],
    )  # fmt: skip
    summary = run_sft(cfg, progress=False)
    return cfg, out, summary


def test_lora_loss_falls_and_checkpoints_describe_themselves(lora_run):
    cfg, out, summary = lora_run
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.5, losses
    assert summary["train"]["steps"] == 8 and summary["data"]["kept"] == 96
    for d in (out / "checkpoint-4", out / "checkpoint-8", out / "final"):
        info = json.loads((d / CHECKPOINT_INFO_FILE).read_text())
        assert info["codecs"] == cfg.vocab.codecs and info["tuning"] == "lora"
        assert Path(info["base_model"]) == (out / "base-warm").resolve()  # the warmed-up tiny base
        assert (d / "getok_layout.json").is_file() and (d / "adapter_model.safetensors").is_file()
        assert load_sft_config(d / CONFIG_FILE).train.max_steps == 8
    # adapters hold the LoRA weights and the new rows, not whole embedding matrices
    assert (out / "final" / "adapter_model.safetensors").stat().st_size < 3_000_000
    assert last_complete_checkpoint(out) == out / "checkpoint-8"


def test_lora_checkpoint_reloads_and_merges_to_identical_logits(lora_run, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from getok.train.merge import load_checkpoint, merge_checkpoint
    from getok.vocab import VocabLayout

    _, out, _ = lora_run
    model, processor, layout, info = load_checkpoint(out / "final")
    ref = _logits(model, processor)
    base_model, base_proc, _, _ = load_checkpoint(out / "checkpoint-4")
    assert np.abs(_logits(base_model, base_proc) - ref).max() > 1e-3  # step 4 and step 8 differ: weights loaded

    merged = merge_checkpoint(out / "final", tmp_path / "merged")
    m2 = AutoModelForImageTextToText.from_pretrained(merged)
    p2 = AutoProcessor.from_pretrained(merged)
    np.testing.assert_allclose(_logits(m2, p2), ref, rtol=0, atol=1e-5)
    VocabLayout.load(merged).validate(p2.tokenizer)
    assert json.loads((merged / CHECKPOINT_INFO_FILE).read_text())["source_tuning"] == "lora"


def test_resume_continues_from_the_last_checkpoint(lora_run):
    from getok.train.sft import run_sft

    cfg, out, _ = lora_run
    (out / "checkpoint-8" / CHECKPOINT_INFO_FILE).unlink()  # an interrupted save: no marker → not resumed from
    more = load_sft_config(None, [*FAST, "tuning.mode=lora", "tuning.rank=16", "train.max_steps=10",
                                  "train.save_steps=4", f"output_dir={out}"])  # fmt: skip
    summary = run_sft(more, progress=False)
    assert summary["train"]["resumed_from"] == str(out / "checkpoint-4")
    assert summary["train"]["steps"] == 10
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert steps[-6:] == [5, 6, 7, 8, 9, 10]


def test_full_finetuning_trains_and_merges(tmp_path):
    from transformers import AutoModelForImageTextToText

    from getok.train.merge import load_checkpoint, merge_checkpoint
    from getok.train.sft import run_sft

    cfg = load_sft_config(None, [*FAST, "tuning.mode=full", "train.max_steps=6", "train.save_steps=100",
                                 f"output_dir={tmp_path / 'full'}"])  # fmt: skip
    summary = run_sft(cfg, progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] - 0.5, losses
    assert summary["params"]["trainable"] > summary["params"]["frozen"]
    model, processor, _, info = load_checkpoint(tmp_path / "full" / "final")
    assert info["tuning"] == "full"
    merged = merge_checkpoint(tmp_path / "full" / "final", tmp_path / "merged")
    m2 = AutoModelForImageTextToText.from_pretrained(merged)
    np.testing.assert_array_equal(_logits(m2, processor), _logits(model, processor))


def test_mismatched_dataset_layout_fails_before_any_training(tmp_path):
    from getok.errors import LayoutMismatchError
    from getok.train.data import build_mixture
    from getok.train.sft import run_sft

    data = tmp_path / "grid16"
    other = load_sft_config(
        None, ["vocab.codecs=[grid:n=16]", "data.scenes.n=4", "data.num_samples=8", "data.mixture=[{type: tasks}]"]
    )
    build_mixture(other.data, other.vocab.codecs, data, progress=False)
    cfg = load_sft_config(None, [*FAST, f"data.mixture=[{{type: dataset, path: '{data}'}}]",
                                 f"output_dir={tmp_path / 'run'}"])  # fmt: skip
    with pytest.raises(LayoutMismatchError, match="grid:n=16"):
        run_sft(cfg, progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_tiny_cpu_recipe_learns(tmp_path):
    """The full CPU recipe (~6 min): held-out answers go from all-invalid to valid and better than chance.

    Measured (docs/training.md, Results): invalid 1.00 -> 0.00, gIoU 0.00 -> 0.083, Acc@0.5 0.00 -> 0.076;
    the thresholds leave room for run-to-run noise of other torch builds.
    """
    from getok.train.sft import run_sft

    cfg = load_sft_config(REPO / "configs" / "sft" / "tiny-cpu.yaml", [f"output_dir={tmp_path / 'run'}"])
    s = run_sft(cfg, progress=False)
    before, after = s["eval_before"], s["eval_after"]
    assert "skipped" not in after, after
    assert before["invalid_rate"] > 0.9 and after["invalid_rate"] < 0.1
    assert after["gIoU"] > before["gIoU"] + 0.04
    assert after["Acc@0.5"] > before["Acc@0.5"] + 0.03
    assert s["train"]["last_loss"] < s["train"]["first_loss"] - 2.5
