from dataclasses import dataclass, field

import pytest

from getok.config import load_config, save_config
from getok.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-4
    steps: int = 10
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Run:
    name: str = "run"
    seed: int = 0
    lora: bool = True
    rank: int | None = None
    optim: Optim = field(default_factory=Optim)
    mixture: dict[str, float] = field(default_factory=lambda: {"tasks": 1.0})


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: a\noptim:\n  lr: 0.01\nmixture:\n  tasks: 0.5\n  offsets: 0.5\n")
    cfg = load_config(Run, p, ["optim.steps=7", "lora=false", "rank=64", "optim.betas=[0.5, 0.6]"])
    assert cfg.name == "a" and cfg.optim.lr == 0.01 and cfg.optim.steps == 7
    assert cfg.lora is False and cfg.rank == 64 and cfg.optim.betas == [0.5, 0.6]
    assert cfg.mixture == {"tasks": 0.5, "offsets": 0.5}
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Run, tmp_path / "out.yaml") == cfg


@pytest.mark.parametrize(
    "override,match",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("seed=abc", "'seed' must be an integer"),
        ("lora=maybe", "'lora' must be true/false"),
        ("optim=3", "must be a mapping"),
        ("seed", "not key=value"),
    ],
)
def test_bad_keys_and_types_name_the_field(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(Run, None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Run, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Run, bad)
