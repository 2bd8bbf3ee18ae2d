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


def test_check_numbers_shared_validator():
    """One validator for every config dataclass: floats (and floats in lists) finite, named ranges."""
    from getok.config import check_numbers

    @dataclass
    class Sec:
        lr: float = 1e-4
        clip: float | None = None
        steps: int = 10
        ws: list = field(default_factory=lambda: [0.5, 1.0])
        name: str = "x"

    check_numbers(Sec(), "sec", positive=["lr", "clip", "steps"], non_negative=["ws"])  # None passes
    for kwargs, msg in [
        ({"lr": float("nan")}, "sec.lr must be a finite number, got nan"),
        ({"clip": float("-inf")}, "sec.clip must be a finite number, got -inf"),
        ({"ws": [0.5, float("nan")]}, "sec.ws[1] must be a finite number, got nan"),
        ({"ws": [0.5, -1.0]}, "sec.ws[1] must be >= 0, got -1.0"),
        ({"lr": -1.0}, "sec.lr must be > 0, got -1.0"),
        ({"steps": 0}, "sec.steps must be > 0, got 0"),
    ]:
        with pytest.raises(ConfigError) as exc:
            check_numbers(Sec(**kwargs), "sec", positive=["lr", "clip", "steps"], non_negative=["ws"])
        assert str(exc.value) == msg
    with pytest.raises(TypeError, match="no field"):  # a typo in the caller is a bug, not a config error
        check_numbers(Sec(), "sec", positive=["lrr"])


@pytest.mark.parametrize("raw", ["nan", ".nan", "inf", "-.inf", "-inf"])
def test_load_config_refuses_non_finite_floats(raw):
    @dataclass
    class Cfg:
        lr: float = 1e-4
        clip: float | None = None

    with pytest.raises(ConfigError, match=r"^config key 'lr' must be a finite number"):
        load_config(Cfg, None, [f"lr={raw}"])
    with pytest.raises(ConfigError, match=r"^config key 'clip' must be a finite number"):  # through the Optional
        load_config(Cfg, None, [f"clip={raw}"])
    assert load_config(Cfg, None, ["lr=1e-3", "clip=null"]).lr == 1e-3
