"""Our EasyR1 YAMLs in EasyR1's own config code, merged exactly as ``verl/trainer/main.py`` merges them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from .conftest import REPO, require_engines

require_engines()

CONFIGS = [REPO / f"configs/easyr1/{m}-stage{s}.yaml" for m in ("qwen2_5_vl_7b", "qwen3_vl_8b") for s in (1, 2)]
IDS = [f"{m}-stage{s}" for m in ("qwen2_5_vl_7b", "qwen3_vl_8b") for s in (1, 2)]
# what run_stage{1,2}.sh pass after config= (absolute paths of files that exist)
LAUNCH = [
    f"data.format_prompt={REPO}/configs/easyr1/format_prompt.jinja",
    f"worker.reward.reward_function={REPO}/getok/rl/easyr1_reward.py:compute_score",
]


def merge_like_main(config, cli: list[str]):
    """verl/trainer/main.py's main(): structured PPOConfig <- config file <- CLI; to_object; deep_post_init."""
    from omegaconf import OmegaConf

    from getok.rl.easyr1 import _import_easyr1_config, find_easyr1

    PPOConfig = _import_easyr1_config(find_easyr1())
    cli_args = OmegaConf.from_dotlist(cli)  # what OmegaConf.from_cli() makes of the launch's key=value arguments
    default_config = OmegaConf.structured(PPOConfig())
    default_config = OmegaConf.merge(default_config, OmegaConf.load(str(config)))
    ppo_config = OmegaConf.merge(default_config, cli_args)
    ppo_config = OmegaConf.to_object(ppo_config)
    ppo_config.deep_post_init()
    return ppo_config


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_our_yaml_merges_into_easyr1s_ppo_config(config, easyr1_root):
    cfg = merge_like_main(config, LAUNCH)
    assert cfg.worker.reward.reward_function == str(REPO / "getok/rl/easyr1_reward.py")
    assert cfg.worker.reward.reward_function_name == "compute_score"
    assert (cfg.data.prompt_key, cfg.data.answer_key, cfg.data.image_key) == ("problem", "answer", "images")
    # GRPO groups of 8, and a validation that asks one answer per prompt (else n rows per prompt at validation)
    assert cfg.worker.rollout.n == 8 and cfg.trainer.val_before_train
    assert cfg.worker.rollout.val_override_config["n"] == 1
    assert cfg.worker.actor.model.lora.rank == 0
    if "stage2" in config.name:  # starts from where EasyR1 writes the stage-1 actor (model merger output)
        assert cfg.worker.actor.model.model_path.endswith("/actor/huggingface")
        assert "/global_step_" in cfg.worker.actor.model.model_path


def test_the_old_reward_type_key_is_what_easyr1_rejects(tmp_path, easyr1_root):
    """The bug this suite exists for: ``worker.reward.reward_type`` is no RewardConfig key (ConfigKeyError)."""
    from omegaconf.errors import ConfigKeyError

    cfg = yaml.safe_load(CONFIGS[0].read_text())
    cfg["worker"]["reward"]["reward_type"] = "batch"
    p = tmp_path / "old.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigKeyError, match="reward_type"):
        merge_like_main(p, LAUNCH)
    flat = tmp_path / "flat.yaml"
    flat.write_text("data.train_files: x.parquet\n")
    with pytest.raises(ConfigKeyError):
        merge_like_main(flat, [])


def test_exported_data_yaml_merges_as_a_config_file(artefacts, easyr1_root):
    cfg = merge_like_main(artefacts / "e1" / "easyr1_data.yaml", [])
    assert cfg.data.train_files == str(artefacts / "e1" / "train.parquet")
    assert cfg.data.prompt_key == "problem"


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_check_easyr1_uses_easyr1s_schema_here_and_rejects_the_old_key(config, artefacts, tmp_path, easyr1_root):
    """``getok rl check-easyr1`` (the guard the launch scripts run) merges into EasyR1's real schema."""
    model = artefacts / "easyr1-model"
    data = artefacts / ("e1" if "stage1" in config.name else "e2")
    cmd = [sys.executable, "-m", "getok.cli.main", "rl", "check-easyr1", "--model", str(model), "--data", str(data),
           "--config"]  # fmt: skip
    ok = subprocess.run([*cmd, str(config), *LAUNCH], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "ok: EasyR1's own schema (PPOConfig of" in ok.stdout
    old = yaml.safe_load(config.read_text())
    old["worker"]["reward"]["reward_type"] = "batch"
    p = tmp_path / config.name
    p.write_text(yaml.safe_dump(old))
    bad = subprocess.run([*cmd, str(p), *LAUNCH], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "EasyR1's config schema" in bad.stderr and "reward_type" in bad.stderr
