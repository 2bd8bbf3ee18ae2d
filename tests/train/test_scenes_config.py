"""data.scenes (ScenesConfig): the training series plus SceneConfig's own settings, validated by SceneConfig."""

from __future__ import annotations

import dataclasses

import pytest

from getok.data_builders.scenes import PALETTE, SHAPES, SceneConfig
from getok.errors import ConfigError
from getok.train.config import load_sft_config
from getok.train.sections import ScenesConfig


def test_every_scene_setting_is_a_scene_config_field():
    scene_fields = {f.name for f in dataclasses.fields(SceneConfig)}
    own = [f.name for f in dataclasses.fields(ScenesConfig)]
    assert own[:2] == ["n", "seed"] and set(own[2:]) <= scene_fields


def test_defaults_are_scene_config_defaults_but_smaller_scenes():
    sc = ScenesConfig()
    assert (sc.n, sc.seed, sc.size, sc.background) == (1500, 0, list(SceneConfig().size), SceneConfig().background)
    assert sc.scene_config() == SceneConfig(min_objects=1, max_objects=3)
    assert dataclasses.asdict(sc) == {  # the data-cache fingerprint hashes this: keep it stable
        "n": 1500, "seed": 0, "size": [112, 112], "min_objects": 1, "max_objects": 3,
        "shapes": None, "colors": None, "background": "mixed",
    }  # fmt: skip


def test_settings_pass_through_and_unset_subsets_mean_all():
    sc = ScenesConfig(size=[64, 96], shapes=["circle", "ring"], colors=[], background="plain", max_objects=5)
    cfg = sc.scene_config()
    assert cfg.size == (64, 96) and cfg.shapes == ("circle", "ring") and cfg.colors == tuple(PALETTE)
    assert cfg.background == "plain" and cfg.max_objects == 5
    assert ScenesConfig(shapes=None).scene_config().shapes == SHAPES


@pytest.mark.parametrize(
    "override, match",
    [
        ("data.scenes.size=[8, 8]", "data.scenes: SceneConfig.size"),
        ("data.scenes.shapes=[hexagon]", "data.scenes: SceneConfig.shapes"),
        ("data.scenes.min_objects=4", "data.scenes: SceneConfig.min_objects"),
        ("data.scenes.background=sky", "data.scenes: SceneConfig.background"),
        ("data.scenes.n=0", "data.scenes.n must be > 0"),
    ],
)
def test_scene_config_validates(override, match):
    with pytest.raises(ConfigError, match=match):
        load_sft_config(None, [override])
