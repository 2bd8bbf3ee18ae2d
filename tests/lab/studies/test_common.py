"""Shared pieces of the studies: statistics, configs, provenance, output files, seeds parsing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from getok.errors import ConfigError
from getok_lab.studies.cli import STUDIES, parse_seeds
from getok_lab.studies.common import Budget, SceneSeries, command_line, environment, fmt_ci, mean_ci, write_outputs

REPO = Path(__file__).resolve().parents[3]


def test_mean_ci_student_t():
    r = mean_ci([0.1, 0.2, 0.3])
    assert r["mean"] == pytest.approx(0.2)
    # t(0.975, 2) = 4.303; sd = 0.1; half = 4.303 * 0.1 / sqrt(3)
    assert r["half"] == pytest.approx(4.3027 * 0.1 / np.sqrt(3), rel=1e-3)
    assert r["lo"] < r["mean"] < r["hi"]
    assert r["n"] == 3


def test_mean_ci_single_and_missing_values():
    one = mean_ci([0.5, None])
    assert one["mean"] == 0.5 and one["half"] is None and one["n"] == 1
    assert mean_ci([None])["mean"] is None
    assert fmt_ci(one) == "0.500"
    assert fmt_ci(mean_ci([0.2, 0.4])) == "0.300 ± 1.271"
    assert fmt_ci(mean_ci([])) == "–"


def test_budget_and_scenes_validation_names_the_field():
    with pytest.raises(ConfigError, match="budget.steps"):
        Budget(steps=0)
    with pytest.raises(ConfigError, match="budget.lr"):
        Budget(lr=0)
    with pytest.raises(ConfigError, match="eval_seed"):
        SceneSeries(train_seed=3, eval_seed=3)
    with pytest.raises(ConfigError, match="min_objects"):
        SceneSeries(min_objects=4, max_objects=2)
    assert Budget(steps=10, batch_size=4).samples == 40


def test_scene_series_source_rebuilds_the_scenes():
    s = SceneSeries(n_train=2, n_eval=1)
    src = s.source("eval")
    assert src["loader"] == "scenes" and src["seed"] == s.eval_seed and src["n"] == 1
    a, b = s.generate("train"), s.generate("train")
    assert [im.image_id for im in a] == [im.image_id for im in b]
    assert np.array_equal(a[0].get_image(), b[0].get_image())
    assert a[0].size == (112, 112)


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds("0,0")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds("a")


def test_command_line_and_environment():
    assert command_line(["study", "representations", "--seeds", "0,1"]) == "getok study representations --seeds 0,1"
    env = environment()
    for key in ("getok", "python", "numpy", "torch", "transformers", "cpu_count", "git_commit"):
        assert key in env
    if (Path(__file__).resolve().parents[3] / ".git").exists():  # a checkout: the commit is recorded
        assert len(env["git_commit"].split("+")[0]) == 40


def test_write_outputs_writes_json_md_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = write_outputs(tmp_path / "out", "x", {"a": np.float32(0.5), "b": np.arange(2)}, "# t", fig)
    assert json.loads(Path(paths["json"]).read_text())["a"] == 0.5
    assert Path(paths["md"]).read_text() == "# t\n"
    assert Path(paths["png"]).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix not in (".json", ".md", ".png")]


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_shipped_yaml_repeats_the_defaults(name):
    """configs/studies/<name>.yaml equals the built-in defaults (the command without --config is the same run)."""
    import importlib

    from getok.config import config_to_dict

    mod, loader, _, _ = STUDIES[name]
    load = getattr(importlib.import_module(mod), loader)
    a, b = config_to_dict(load()), config_to_dict(load(REPO / "configs" / "studies" / f"{name}.yaml"))
    assert a == b


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_unknown_override_is_a_config_error(name):
    import importlib

    mod, loader, _, _ = STUDIES[name]
    load = getattr(importlib.import_module(mod), loader)
    with pytest.raises(ConfigError):
        load(None, ["no_such_key=1"])
    assert load(None, [], fast=True).budget.steps <= 5


def test_study_configs_reject_bad_values():
    from getok_lab.studies.polygon_density import load_density_config
    from getok_lab.studies.representations import load_representations_config
    from getok_lab.studies.resize_vocab import load_resize_config
    from getok_lab.studies.self_correction import load_selfcorrect_config

    with pytest.raises(ConfigError, match="only"):
        load_representations_config(None, ["only=[nope]"])
    with pytest.raises(ConfigError, match="refine"):
        load_representations_config(None, ["representations=[{name: g, codec: 'grid:n=8', refine: true}]"])
    with pytest.raises(ConfigError, match=r"init must be one of .*'1d'.*got 'bogus'"):
        load_representations_config(None, ["representations=[{name: g, codec: 'grid:n=8', init: bogus}]"])
    with pytest.raises(ConfigError, match="directions"):
        load_resize_config(None, ["directions=[[8, 8]]"])
    with pytest.raises(ConfigError, match="inits"):
        load_resize_config(None, ["inits=[bogus]"])
    with pytest.raises(ConfigError, match="grid_offset"):
        load_selfcorrect_config(None, ["codec=grid:n=8"])
    with pytest.raises(ConfigError, match="turns"):
        load_selfcorrect_config(None, ["turns=1"])
    with pytest.raises(ConfigError, match="eps"):
        load_density_config(None, ["eps_trained=[1.5]"])


def test_register_adds_the_four_studies():
    from getok_lab.studies.cli import build_config, register, run_study

    parser = argparse.ArgumentParser(prog="getok")
    register(parser.add_subparsers(dest="command"))
    for name in STUDIES:
        args = parser.parse_args(["study", name, "--fast", "--seeds", "0,1", "--steps", "2", "eval_batch_size=4"])
        assert args.func is run_study and args.study_name == name and args.seeds == [0, 1]
        cfg = build_config(name, args)
        assert cfg.seeds == [0, 1] and cfg.budget.steps == 2 and cfg.eval_batch_size == 4
        assert cfg.work_dir == f"runs/studies/{name}-fast"
    with pytest.raises(SystemExit):
        parser.parse_args(["study", "representations", "--seeds", "x"])


def test_importing_the_studies_does_not_import_torch():
    from tests.conftest import fresh_python

    code = ("import sys, getok_lab.studies.cli, getok_lab.studies.representations, getok_lab.studies.resize_vocab, "
            "getok_lab.studies.self_correction, getok_lab.studies.polygon_density, getok_lab.studies.data; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")  # fmt: skip
    assert fresh_python(code) == ["False", "False"]


def test_resize_config_curve_seeds_and_baselines():
    from getok_lab.studies.resize_vocab import ResizeConfig, curve_steps, load_resize_config

    cfg = load_resize_config()
    assert cfg.seeds == [0, 1, 2, 3, 4] and cfg.baselines == ["centre", "reference"]
    assert curve_steps(cfg) == [15, 30, 45, 60]  # >= 4 points of the fine-tune, plus step 0
    assert curve_steps(load_resize_config(None, ["finetune.steps=50"])) == [15, 30, 45, 50]  # the last step always
    assert len(curve_steps(load_resize_config(fast=True))) >= 4
    assert curve_steps(ResizeConfig(curve_every=100)) == [60]
    with pytest.raises(ConfigError, match="curve_every"):
        load_resize_config(None, ["curve_every=0"])
    with pytest.raises(ConfigError, match="baselines"):
        load_resize_config(None, ["baselines=[oracle]"])
