"""Real GRPO steps on the tiny model (TRL GRPOTrainer, CPU): both stages, checkpoints, two-turn prompts.

The short runs start from the untrained tiny model (``model.path=tiny``): they check the machinery
(rewards finite and in range, metrics per step, self-describing checkpoints that load back, stage 2's
proposal handling), not learning; the learning runs are ``slow`` (docs/rl.md "Results").
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

from getok.rl.grpo_config import load_grpo_config  # noqa: E402
from getok.train.callbacks import read_checkpoint_info, read_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

FAST = [
    "eval.every_steps=0",
    "train.max_steps=2", "train.save_steps=2", "data.scenes.n=6", "eval.n_scenes=2", "eval.batch_size=8",
    "rl.max_completion_length=12", "proposals.max_new_tokens=12", "eval.max_new_tokens=12",
    "rl.prompts_per_step=2", "rl.num_generations=2",
]  # fmt: skip


def _check_rewards(out: Path, stage: int) -> list[dict]:
    recs = [r for r in read_metrics(out / "metrics.jsonl") if "reward" in r]
    assert len(recs) == 2  # one record per step (logging_steps = 1)
    for r in recs:
        for k, v in r.items():
            if k.startswith((f"getok_stage{stage}/", "reward", "rewards/")) and isinstance(v, float):
                assert math.isfinite(v), k
        assert 0.0 <= r["reward"] <= 1.0
        assert 0.0 <= r[f"getok_stage{stage}/overall"] <= 1.0
        assert 0.0 <= r[f"getok_stage{stage}/invalid"] <= 1.0
    return recs


def test_stage1_and_stage2_real_steps(tmp_path):
    from getok.rl.easyr1 import load_policy
    from getok.rl.grpo import run_grpo

    out1 = tmp_path / "s1"
    cfg = load_grpo_config(
        REPO / "configs/grpo/tiny-cpu-stage1.yaml",
        [
            "model.path=tiny",
            "tuning.mode=lora",
            f"output_dir={out1}",
            *FAST,
            # GSPO's sequence-level ratio (TRL importance_sampling_level=sequence) on this run
            "rl.importance_sampling_level=sequence",
            "rl.loss_type=grpo",
            "rl.epsilon=3e-4",
            "rl.epsilon_high=4e-4",
        ],
    )
    s1 = run_grpo(cfg, progress=False)
    _check_rewards(out1, 1)
    assert s1["train"]["steps"] == 2 and s1["eval_after"]["n"] > 0
    info = read_checkpoint_info(out1 / "final")
    assert info["trainer"] == "grpo" and info["stage"] == 1 and info["final"] is True
    assert (out1 / "checkpoint-2" / "getok_checkpoint.json").is_file()
    assert (out1 / "checkpoint-2" / "getok_layout.json").is_file()
    assert (out1 / "reward_curve.png").stat().st_size > 0
    assert json.loads((out1 / "summary.json").read_text())["stage"] == 1

    # stage 2 starts from stage 1's final checkpoint (LoRA here: merged in memory, written to OUTPUT/start)
    out2 = tmp_path / "s2"
    cfg2 = load_grpo_config(REPO / "configs/grpo/tiny-cpu-stage2.yaml",
                            [f"model.path={out1 / 'final'}", f"output_dir={out2}", *FAST])  # fmt: skip
    s2 = run_grpo(cfg2, progress=False)
    recs = _check_rewards(out2, 2)
    p = s2["proposals"]
    assert p["generated"] >= 2 and p["generated"] == p.get("policy", 0) + p.get("fallback", 0)
    assert all(0.0 <= r["proposals/fallback"] <= 1.0 for r in recs)
    assert "mIoU_turn1" in s2["eval_after"] and "oracle_mIoU_turn2" in s2["eval_after"]
    assert Path(s2["start_dir"]) == out2 / "start"  # stage 1's LoRA merged in memory, written as the start dir
    info2 = read_checkpoint_info(out2 / "final")
    assert info2["stage"] == 2 and info2["tuning"] == "full"
    assert load_policy(out1 / "final")[2].hash == load_policy(out2 / "final")[2].hash == s2["layout_hash"]


def test_stage2_prompts_carry_the_policys_own_proposal(tmp_path):
    """The trainer rewrites each row into the two-turn conversation with the policy's proposal, and the reward
    receives that proposal (the generation is scripted here so that the proposals are valid)."""
    from getok.data_builders.dataset import read_dataset
    from getok.rl.grpo import (
        build_prompt_data,
        ensure_start_dir,
        grpo_arguments,
        grpo_rows,
        load_start_policy,
        make_trainer,
        reward_functions,
        setup_tuning,
    )
    from getok.rl.stage2 import ProposalStore, fallback_proposal

    cfg = load_grpo_config(None, ["rl.stage=2", f"output_dir={tmp_path}", "tuning.mode=full", "rl.beta=0.0",
                                  "eval.enabled=false", *FAST])  # fmt: skip
    start = ensure_start_dir(load_start_policy(cfg, tmp_path), cfg, tmp_path)
    spec = start.layout.codecs[0]
    ds = read_dataset(build_prompt_data(cfg, spec, tmp_path / "data"))
    (inner,) = reward_functions(cfg, ds.manifest)
    seen = []

    def reward(completions, **kw):
        seen.append({"prompts": kw["prompts"], "proposal": kw["proposal"], "source": kw["proposal_source"]})
        return inner(completions, **kw)

    reward.__name__ = "recording"
    model, _ = setup_tuning(start.model, start.layout, cfg)
    store = ProposalStore(ds.samples, spec, max_cells=cfg.max_cells)
    trainer = make_trainer(model, start.processor, grpo_rows(ds, "stage2", start.layout.hash),
                           grpo_arguments(cfg, tmp_path, progress=False), [reward], proposal_store=store)  # fmt: skip
    by_id = {s.sample_id: s for s in ds.samples}
    asked = []

    def scripted(samples):  # a valid stage-1 answer per sample (what a trained policy would give)
        asked.append([s.sample_id for s in samples])
        return [fallback_proposal(s, spec, k=3, seed=7) for s in samples]

    trainer._getok_generate = scripted
    trainer.train()
    assert len(asked) == 2 and all(len(a) == cfg.rl.prompts_per_step for a in asked)  # fresh: every step
    for call in seen:
        assert set(call["source"]) == {"policy"}
        for prompt, prop in zip(call["prompts"], call["proposal"]):
            assert [m["role"] for m in prompt] == ["user", "assistant", "user"]
            text = "".join(c.get("text") or "" for c in prompt[1]["content"])
            assert text == prop
            assert "Refine your answer" in "".join(c.get("text") or "" for c in prompt[2]["content"])
    got = {p for call in seen for p in call["proposal"]}
    want = {fallback_proposal(by_id[i], spec, k=3, seed=7) for a in asked for i in a}
    assert got == want


def test_evaluations_do_not_change_the_training_stream(tmp_path):
    """Greedy evaluation seeds torch before each batch; held-out evaluations between steps must leave the
    rollouts' sampling untouched: the same run with and without them logs the same rewards every step."""
    from getok.rl.grpo import run_grpo

    runs = {}
    for name, every in (("with", 1), ("without", 0)):
        cfg = load_grpo_config(
            REPO / "configs/grpo/tiny-cpu-stage1.yaml",
            ["model.path=tiny", f"output_dir={tmp_path / name}", *FAST, "train.max_steps=3", "train.save_steps=10",
             f"eval.every_steps={every}", "eval.before=false", "rl.temperature=1.5"],
        )  # fmt: skip
        run_grpo(cfg, progress=False)
        # the policy's entropy over the sampled completion tokens: a function of which tokens were sampled
        runs[name] = [(r["reward"], r["entropy"]) for r in read_metrics(tmp_path / name / "metrics.jsonl") if "reward" in r]
    assert (tmp_path / "with" / "eval" / "step-2").is_dir() and not (tmp_path / "without" / "eval" / "step-2").exists()
    assert len(runs["with"]) == 3 and runs["with"] == runs["without"]
