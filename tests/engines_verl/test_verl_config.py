"""Our verl configs through verl's own config code: Hydra composition over ``ppo_trainer``, ``validate_config``, the
config dataclasses, the agent-loop registry file, the reward loader; the launch script's command and guards."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import AGENT_LOOP_YAML, CONFIG, REPO, compose, main_python, require_verl, tiny_overrides

require_verl()


def test_stage2_yaml_composes_over_verls_defaults_and_passes_its_validation():
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    cfg = compose()
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)  # RolloutConfig, MultiTurnConfig, AgentLoopConfig
    assert type(rollout).__name__ == "RolloutConfig"
    assert rollout.multi_turn.enable and rollout.agent.default_agent_loop == "getok_refine"
    assert (rollout.prompt_length, rollout.response_length) == (3072, 512)  # interpolated from data.*
    assert rollout.n == 8 and rollout.val_kwargs.n == 1
    assert omega_conf_to_dataclass(cfg.algorithm).adv_estimator == "grpo"
    assert need_reference_policy(cfg) and not need_critic(cfg)  # GRPO with the KL loss: a reference, no critic
    assert cfg.reward.custom_reward_function.path == "pkg://getok.rl.verl_reward"


def test_verls_config_code_rejects_unknown_keys(tmp_path):
    from hydra.errors import ConfigCompositionException
    from verl.utils.config import omega_conf_to_dataclass

    with pytest.raises(ConfigCompositionException):  # an override of a key verl does not have
        compose(["actor_rollout_ref.rollout.multi_turn.enabled=true"])
    bad = tmp_path / "typo.yaml"  # a typo in the YAML composes (Hydra adds the key); verl's config dataclass refuses it
    bad.write_text(CONFIG.read_text().replace("      enable: true", "      enabled: true"))
    cfg = compose(config=bad)
    with pytest.raises(Exception, match="enabled"):
        omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)


def test_agent_loop_yaml_loads_into_verls_registry_and_instantiates_our_class():
    """AgentLoopWorker's own loading (OmegaConf.load, registry by name) and hydra's _target_ resolution."""
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase

    from getok.rl.verl_agent import AGENT_LOOP_KWARGS

    entries = {e.name: e for e in OmegaConf.load(AGENT_LOOP_YAML)}
    entry = entries["getok_refine"]
    cls = hydra.utils.get_class(entry._target_)
    assert issubclass(cls, AgentLoopBase) and cls.__name__ == "GetokRefineAgentLoop"
    assert set(entry) - {"name", "_target_"} <= set(AGENT_LOOP_KWARGS)


def test_reward_function_loads_through_verls_loader(artefacts):
    """verl's get_custom_reward_fn / load_reward_manager on our config: pkg://getok.rl.verl_reward with its kwargs."""
    from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager
    from verl.utils import hf_tokenizer

    cfg = compose(tiny_overrides(artefacts))
    fn = get_custom_reward_fn(cfg)
    assert fn.args[0].__module__ == "getok.rl.verl_reward" and fn.args[0].__name__ == "compute_score"
    assert fn.args[1]["decoder"] == "raster"
    manager = load_reward_manager(cfg, hf_tokenizer(str(artefacts / "model")))
    assert type(manager).__name__ == "NaiveRewardManager"


def test_launch_script_builds_a_command_verl_accepts(artefacts, tmp_path):
    """configs/verl/run_stage2.sh (DRY_RUN=1): exports the rows with getok's CLI, runs getok rl check-verl (verl's own
    config code) and prints the verl command; its overrides compose and validate again here."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    env = {**os.environ, "STAGE1": str(artefacts / "model"), "DATA": str(artefacts / "tasks"), "WORK": str(tmp_path / "v2"),
           "NGPUS": "2", "NNODES": "1", "DRY_RUN": "1", "GETOK": f"{main_python()} -m getok.cli.main",
           "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}  # fmt: skip
    proc = subprocess.run(["bash", str(REPO / "configs" / "verl" / "run_stage2.sh"), "trainer.total_training_steps=3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ok: verl's own config code" in proc.stdout and "non-special" in proc.stdout
    cmd = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert cmd[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert cmd[3] == f"--config-path={CONFIG.parent}" and cmd[4] == f"--config-name={CONFIG.stem}"
    cfg = compose(cmd[5:])
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert cfg.trainer.n_gpus_per_node == 2 and cfg.trainer.total_training_steps == 3
    assert Path(cfg.data.train_files).is_file() and cfg.actor_rollout_ref.model.path == str(artefacts / "model")


def test_check_verl_reports_verls_rejection(artefacts):
    from getok.errors import ConfigError
    from getok.rl.verl_stage2 import check_verl

    lines = check_verl(CONFIG, tiny_overrides(artefacts), data=artefacts / "v2")
    assert lines[0].startswith("ok: verl's own config code") and any("verl rows" in x for x in lines)
    with pytest.raises(ConfigError, match="Could not override"):
        check_verl(CONFIG, [*tiny_overrides(artefacts), "actor_rollout_ref.rollout.multi_turn.enabled=true"])
    with pytest.raises(ConfigError, match="divisible"):  # verl's own assertion: 4 prompts x 2 rollouts on 3 GPUs
        check_verl(CONFIG, [*tiny_overrides(artefacts), "actor_rollout_ref.actor.use_dynamic_bsz=false",
                            "trainer.n_gpus_per_node=3"])  # fmt: skip
    with pytest.raises(ConfigError, match="custom_reward_function.path"):
        check_verl(CONFIG, [*tiny_overrides(artefacts), "reward.custom_reward_function.path=null"])
