"""verl contract tests: our stage-2 configs, rows, agent loop and reward driven through verl's own code on CPU.

They run in a separate environment (``make test-verl``: ``.venv-verl`` with verl 0.9.1 installed without its GPU
dependencies, transformers < 5.11, hydra-core, ray, tensordict; pinned in ``requirements/verl-lock.txt``). EasyR1's
snapshot also provides a top-level ``verl`` package, so the two never share an environment. Where verl is not
importable (the main ``.venv``, ``.venv-engines``) every test here skips, saying why. The artefacts (a tiny
Qwen2.5-VL with getok's vocabulary, a dataset, ``getok rl export-verl`` rows) are built once per session by getok in
the main environment (``$GETOK_MAIN_PYTHON``, default ``.venv/bin/python``), as a user would build them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.engines._main_env import build_artefacts, main_python  # noqa: F401  (main_python: for the tests)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "verl" / "qwen2_5_vl_7b-stage2.yaml"
AGENT_LOOP_YAML = REPO / "configs" / "verl" / "agent_loop.yaml"


def verl_skip_reason() -> str | None:
    """Why the verl contract tests cannot run here (``None``: they can)."""
    try:
        import verl
    except ImportError:
        return "verl is not installed here (run: make test-verl)"
    try:
        from verl.experimental.agent_loop.agent_loop import AgentLoopBase  # noqa: F401
    except ImportError as exc:
        return (
            f"the verl here ({Path(verl.__file__).parent}) has no agent loops (EasyR1's?): {exc} (run: make test-verl)"
        )
    try:
        import hydra  # noqa: F401
    except ImportError:
        return "hydra-core is not installed (run: make test-verl)"
    return None


def require_verl() -> None:
    """Skip the calling test module (with the reason) where verl's environment is not available."""
    reason = verl_skip_reason()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory) -> Path:
    """The tiny model, a dataset and its verl rows, built by getok in the main environment."""
    return build_artefacts(Path(__file__).with_name("_build_artefacts.py"), tmp_path_factory.mktemp("verl"))


def compose(overrides=(), config: Path = CONFIG):
    """``config`` + ``overrides`` composed by Hydra as ``python -m verl.trainer.main_ppo --config-path DIR
    --config-name NAME k=v ...`` composes them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(config.parent), version_base=None):
        return hydra_compose(config_name=config.stem, overrides=list(overrides))


def tiny_agent_loop_yaml(art: Path, **settings) -> Path:
    """configs/verl/agent_loop.yaml with budgets for the tiny lengths (and ``settings``), written beside the
    artefacts: the shipped 7B budgets (max_cells 256) do not fit a 32-token response."""
    import yaml

    entries = yaml.safe_load(AGENT_LOOP_YAML.read_text())
    entries[0].update({"max_cells": 16, "proposal_max_tokens": 64, **settings})
    out = art / ("agent_loop-" + "-".join(f"{k}_{v}" for k, v in sorted(settings.items())) + ".yaml")
    out.write_text(yaml.safe_dump(entries, sort_keys=False))
    return out


def tiny_overrides(art: Path, agent_loop: Path | None = None, **extra) -> list[str]:
    """The launch's overrides for the tiny artefacts (small lengths, one GPU, the raster decoder, bare answers)."""
    ov = {
        "actor_rollout_ref.model.path": art / "model",
        "data.train_files": art / "v2" / "train.parquet",
        "data.val_files": art / "v2" / "train.parquet",
        "data.max_prompt_length": 256,
        "data.max_response_length": 32,
        "data.train_batch_size": 4,
        "data.dataloader_num_workers": 0,
        "actor_rollout_ref.actor.ppo_mini_batch_size": 2,
        "actor_rollout_ref.rollout.n": 2,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": agent_loop or tiny_agent_loop_yaml(art),
        "reward.custom_reward_function.reward_kwargs.decoder": "raster",
        "reward.custom_reward_function.reward_kwargs.config.stage2.envelope": "any",
        "trainer.n_gpus_per_node": 1,
        **extra,
    }
    return [f"{k}={v}" for k, v in ov.items()]


@pytest.fixture
def event_loop_here():
    """A fresh event loop set as current: verl's workers capture ``get_event_loop()`` when built (a Ray actor keeps
    one loop for its life), so they must be built and awaited on the same loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)
