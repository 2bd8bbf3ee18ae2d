"""The GRPO configuration schema and ``getok rl train`` (no model loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from getok.errors import ConfigError
from getok.rl.grpo_config import load_grpo_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "grpo").glob("*.yaml"))


def test_shipped_configs_load_and_match_their_stage():
    assert {p.name for p in CONFIGS} >= {
        "tiny-cpu-stage1.yaml", "tiny-cpu-stage2.yaml", "qwen2_5_vl_7b-stage1.yaml", "qwen2_5_vl_7b-stage2.yaml",
        "qwen3_vl_8b-stage1.yaml", "qwen3_vl_8b-stage2.yaml",
    }  # fmt: skip
    for p in CONFIGS:
        cfg = load_grpo_config(p)
        assert cfg.rl.stage == (2 if "stage2" in p.name else 1), p.name
        assert cfg.per_device_batch % cfg.rl.num_generations == 0


@pytest.mark.parametrize(
    "override, field",
    [
        ("rl.stage=3", "rl.stage"),
        ("rl.num_generations=1", "rl.num_generations"),
        ("rl.beta=-1", "rl.beta"),
        ("rl.importance_sampling_level=seq", "rl.importance_sampling_level"),
        ("rl.loss_type=ppo", "rl.loss_type"),
        ("proposals.on_invalid=ignore", "proposals.on_invalid"),
        ("proposals.refresh_steps=-1", "proposals.refresh_steps"),
        ("train.lr=0", "train.lr"),
        ("eval.tasks=[text>box]", "eval.tasks"),
        ("data.tasks=[multi>mask]", "data.tasks"),  # fine for stage 1, not for stage 2 (below)
        ("reward.stage1.w_mask=-1", "w_mask"),
        ("rl.nope=1", "rl.nope"),
    ],
)
def test_bad_values_name_the_field(override, field):
    extra = ["rl.stage=2"] if override.startswith("data.tasks") else []
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_grpo_config(None, [override, *extra])


def test_overrides_keep_section_defaults_and_stage_checks():
    cfg = load_grpo_config(None, ["reward.stage2.w_mask=3", "data.scenes.n=5"])
    assert cfg.reward.stage2.envelope == "any" and cfg.reward.stage2.w_mask == 3.0
    assert cfg.data.scenes.seed == 1 and cfg.data.scenes.n == 5
    with pytest.raises(ConfigError, match="grid_offset"):
        load_grpo_config(None, ["rl.stage=2", "data.codec=grid:n=8"])
    with pytest.raises(ConfigError, match="held-out"):
        load_grpo_config(None, ["data.scenes.seed=10000"])
    assert load_grpo_config(None, ["rl.max_completion_length=20"]).max_cells == 18


def test_cli_dry_run_and_stage_flag(capsys):
    import yaml

    from getok.rl.cli import main

    assert main(["rl", "train", "--stage", "2", str(REPO / "configs/grpo/tiny-cpu-stage1.yaml"), "rl.beta=0.0",
                 "--dry-run"]) == 0  # fmt: skip
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["rl"]["stage"] == 2 and printed["rl"]["beta"] == 0.0
    assert main(["rl", "train", "rl.stage=5", "--dry-run"]) == 2  # a ConfigError, reported
    assert "rl.stage" in capsys.readouterr().err
