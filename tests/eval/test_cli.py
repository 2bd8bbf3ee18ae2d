"""``getok eval [CONFIG.yaml] [key=value ...]``: the settings' precedence (defaults < YAML < key=value < flags),
validation before any model loads, and --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from getok.cli.main import build_parser, main
from getok.errors import ConfigError
from getok.eval.cli import eval_config

REPO = Path(__file__).resolve().parents[2]
BASE = ["eval", "--model", "m", "--data", "d", "--out", "o"]


def _args(argv):
    return build_parser(["getok.eval.cli"]).parse_args(argv)


def test_precedence_defaults_yaml_overrides_flags(tmp_path):
    assert eval_config(_args(BASE)).turns == 1  # the dataclass default
    yaml = REPO / "configs" / "eval" / "selfcorrect.yaml"
    cfg = eval_config(_args([*BASE, str(yaml)]))
    assert cfg.turns == 3 and cfg.oracle is True
    cfg = eval_config(_args([*BASE, str(yaml), "turns=4", "oracle=false"]))
    assert cfg.turns == 4 and cfg.oracle is False
    cfg = eval_config(_args([*BASE, "--turns", "2", "--no-oracle", str(yaml), "turns=4"]))
    assert cfg.turns == 2 and cfg.oracle is False  # a flag given wins over the YAML and key=value
    cfg = eval_config(_args([*BASE, "decoder=sam:checkpoint=/w/sam.pth", "limit=5"]))
    assert cfg.decoder == "sam:checkpoint=/w/sam.pth" and cfg.limit == 5


def test_bad_settings_fail_before_the_model_loads(tmp_path, capsys):
    with pytest.raises(ConfigError, match="turns"):
        eval_config(_args([*BASE, "turns=0"]))
    with pytest.raises(ConfigError, match="neither a CONFIG.yaml"):
        eval_config(_args([*BASE, "notayaml"]))
    with pytest.raises(ConfigError):
        eval_config(_args([*BASE, "no_such_key=1"]))
    # through the CLI: one line on stderr, exit 2, and the (missing) model is never opened
    assert main([*BASE, "--turns", "0"]) == 2
    assert "turns" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_settings(capsys):
    assert main([*BASE, "--dry-run", "turns=3", "--codec", "grid_offset:n=8,r=1,step=0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["turns"] == 3 and out["codec"].startswith("grid_offset:") and out["model"] == "m"
