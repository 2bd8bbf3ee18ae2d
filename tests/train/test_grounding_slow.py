"""The embedded tiny recipe finds a named object from pixels (issue 14): text>mask above the location prior.

Slow (~8 min on one core): the recipe (configs/sft/tiny-cpu.yaml: tiny Qwen3-VL, vision warm-up, frozen
vision tower) trained on text>mask alone for 300 steps of 16, then greedy answers to ~300 held-out questions
(series 10000) against always answering the centre cell, paired over the same questions. Measured
(docs/tiny_grounding.md, probes): 0.284 vs 0.075 for the centre cell; the assertion asks for a sign test at p < 0.001
and a gain whose 95 % interval lies above +0.05, which a model at the prior passes with probability ~0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_tiny_recipe_learns_text_to_mask_above_the_prior(tmp_path):
    import torch

    from getok.data_builders.dataset import read_dataset
    from getok.eval.baselines import BaselineGenerator
    from getok.eval.runner import evaluate, question_ious
    from getok.eval.stats import paired_comparison
    from getok.train.config import EvalConfig, load_sft_config
    from getok.train.data import build_eval_set
    from getok.train.sft import run_sft
    from getok.vocab import load_model_and_processor

    cfg = load_sft_config(REPO / "configs/sft/tiny-cpu.yaml", [
        f"output_dir={tmp_path / 'run'}", "train.max_steps=300", "data.num_samples=4800", "eval.enabled=false",
        'data.mixture=[{type: tasks, weight: 1, tasks: ["text>mask"], greedy: exact}]'])  # fmt: skip
    run_sft(cfg, progress=False)
    data = build_eval_set(EvalConfig(n_scenes=150, seed=10_000, tasks=["text>mask"]), cfg.data,
                          cfg.vocab.codecs[0], tmp_path / "eval")  # fmt: skip
    samples = list(read_dataset(data, check_images=False))
    assert len(samples) >= 300

    def ious(out, model=None, proc=None, gen=None):
        evaluate(model, proc, str(data), decoder="point_masks:proposer=exact,n=8", out_dir=str(out), turns=1,
                 batch_size=32, max_new_tokens=16, progress=False, generate_fn=gen)  # fmt: skip
        by = question_ious(out)
        return [by[s.sample_id]["t1"] for s in samples]

    model, proc = load_model_and_processor(tmp_path / "run" / "final")
    model.eval()
    with torch.inference_mode():
        learned = ious(tmp_path / "e-model", model, proc)
    centre = ious(tmp_path / "e-centre", gen=BaselineGenerator("centre"))
    c = paired_comparison(centre, learned)
    assert c["p"] < 1e-3 and c["lo"] > 0.05, c
