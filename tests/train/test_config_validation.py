"""SFT config numbers: NaN, inf and out-of-range values are a ConfigError naming the field, from YAML /
overrides and from Python alike (one shared validator, :func:`getok.config.check_numbers`)."""

from __future__ import annotations

import math
import re

import pytest

from getok.errors import ConfigError, GetokError
from getok.train.config import DataConfig, EvalConfig, MixtureEntry, TrainConfig, TuningConfig, load_sft_config

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("field", ["lr", "max_grad_norm", "weight_decay", "warmup_ratio", "epochs"])
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_train_config_refuses_non_finite_floats(field, value):
    with pytest.raises(ConfigError, match=rf"^train\.{field} must be a finite number, got -?(nan|inf)$"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1e-4}, r"train\.lr must be > 0"),
        ({"lr": 0.0}, r"train\.lr must be > 0"),
        ({"max_grad_norm": 0.0}, r"train\.max_grad_norm must be > 0"),
        ({"weight_decay": -0.1}, r"train\.weight_decay must be >= 0"),
        ({"warmup_ratio": -0.1}, r"train\.warmup_ratio must be >= 0"),
        ({"warmup_ratio": 1.0}, r"train\.warmup_ratio must be in \[0, 1\)"),
        ({"dataloader_workers": -1}, r"train\.dataloader_workers must be >= 0"),
        ({"torch_threads": 0}, r"train\.torch_threads must be > 0"),
        ({"batch_size": 0}, r"train\.batch_size must be > 0"),
    ],
)
def test_train_config_ranges_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_other_sections_refuse_nan_too():
    with pytest.raises(ConfigError, match=r"^tuning\.dropout must be a finite number"):
        TuningConfig(dropout=NAN)
    with pytest.raises(ConfigError, match=r"^tuning\.alpha must be a finite number"):
        TuningConfig(alpha=INF)
    with pytest.raises(ConfigError, match=r"^data\.mixture\[tasks\]\.weight must be a finite number"):
        MixtureEntry(weight=NAN)  # NaN <= 0 is False: this passed before
    with pytest.raises(ConfigError, match=r"^data\.mixture\[offsets\]\.ks must be proposal sizes >= 1"):
        MixtureEntry(type="offsets", ks=[1, 0])
    with pytest.raises(ConfigError, match=r"^data\.workers must be > 0"):
        DataConfig(workers=0)
    with pytest.raises(ConfigError, match=r"^eval\.batch_size must be > 0"):
        EvalConfig(batch_size=-1)


@pytest.mark.parametrize(
    "override",
    ["train.lr=nan", "train.lr=inf", "train.lr=.nan", "train.max_grad_norm=nan", "train.max_grad_norm=-inf",
     "train.weight_decay=nan", "tuning.alpha=inf", "data.mixture=[{type: tasks, weight: .nan}]"],
)  # fmt: skip
def test_overrides_with_non_finite_numbers_name_the_key(override):
    key = override.split("=")[0].replace("data.mixture", "data.mixture[0].weight")
    with pytest.raises(ConfigError, match=re.escape(f"config key '{key}' must be a finite number")):
        load_sft_config(None, [override])


def test_errors_are_in_the_package_hierarchy_and_good_values_pass():
    with pytest.raises(GetokError):
        TrainConfig(lr=NAN)
    cfg = load_sft_config(None, ["train.lr=1e-5", "train.max_grad_norm=0.5", "train.weight_decay=0", "tuning.alpha=16"])
    assert cfg.train.lr == 1e-5 and cfg.train.max_grad_norm == 0.5 and cfg.tuning.alpha == 16.0
    assert all(math.isfinite(v) for v in (cfg.train.lr, cfg.train.warmup_ratio, cfg.train.epochs))
