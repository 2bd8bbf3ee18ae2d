"""GRPO config numbers: the same shared validator as SFT's (NaN / inf / out of range → ConfigError naming the
field), which the old per-module check missed for inf and for non-negative fields."""

from __future__ import annotations

import re

import pytest

from getok.errors import ConfigError
from getok.rl.grpo_config import GRPOTrainConfig, ProposalConfig, RLConfig, load_grpo_config

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("field", ["lr", "max_grad_norm", "weight_decay", "warmup_ratio"])
@pytest.mark.parametrize("value", [NAN, INF])
def test_grpo_train_config_refuses_non_finite_floats(field, value):
    with pytest.raises(ConfigError, match=rf"^train\.{field} must be a finite number, got (nan|inf)$"):
        GRPOTrainConfig(**{field: value})


@pytest.mark.parametrize("field", ["beta", "epsilon", "epsilon_high", "temperature", "top_p", "entropy_coef"])
def test_rl_config_refuses_non_finite_floats(field):
    with pytest.raises(ConfigError, match=rf"^rl\.{field} must be a finite number, got inf$"):
        RLConfig(**{field: INF})


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (GRPOTrainConfig, {"lr": -1e-5}, r"train\.lr must be > 0"),
        (GRPOTrainConfig, {"weight_decay": -1.0}, r"train\.weight_decay must be >= 0"),
        (RLConfig, {"beta": -0.1}, r"rl\.beta must be >= 0"),
        (RLConfig, {"entropy_coef": -0.1}, r"rl\.entropy_coef must be >= 0"),
        (ProposalConfig, {"batch_size": 0}, r"proposals\.batch_size must be > 0"),
    ],
)
def test_ranges_name_the_field(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("override", ["train.lr=inf", "train.max_grad_norm=inf", "rl.epsilon_high=nan", "rl.top_p=nan"])
def test_overrides_with_non_finite_numbers_name_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"config key '{key}' must be a finite number")):
        load_grpo_config(None, [override])
