"""SFT config schema: YAML + overrides, validation before any compute, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from getok.errors import ConfigError
from getok.train.config import SFTRunConfig, load_sft_config, sft_config_to_dict

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "sft" / "tiny-cpu.yaml"
QWEN = REPO / "configs" / "sft" / "qwen2_5_vl_7b.yaml"


def test_tiny_cpu_yaml_is_the_embedded_default():
    assert sft_config_to_dict(load_sft_config(TINY)) == sft_config_to_dict(SFTRunConfig())


def test_qwen_recipe_values():
    cfg = load_sft_config(QWEN)
    assert cfg.tuning.mode == "lora" and cfg.tuning.rank == 64 and cfg.tuning.train_new_rows
    assert cfg.vocab.codecs == ["grid_offset:n=32,r=1,step=0.5"]
    assert [e.type for e in cfg.data.mixture] == ["dataset"] * 3
    assert cfg.train.bf16 and cfg.train.batch_size * cfg.train.grad_accum == 16


def test_overrides_fill_nested_fields_and_lists():
    cfg = load_sft_config(
        TINY, ["train.max_steps=7", "vocab.codecs=grid:n=4", "data.mixture=[{type: tasks, codec: 'grid:n=4', weight: 2}]"]
    )
    assert cfg.train.max_steps == 7
    assert cfg.vocab.codecs == ["grid:n=4"]
    assert len(cfg.data.mixture) == 1 and cfg.data.mixture[0].weight == 2.0


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.lrr=1", "unknown config key 'train.lrr'"),
        ("bogus=1", "unknown config key 'bogus'"),
        ("train.batch_size=abc", "train.batch_size' must be an integer"),
        ("train.lr=-1", "train.lr must be > 0"),
        ("tuning.mode=qlora", "tuning.mode must be 'lora' or 'full'"),
        ("model.dtype=float8", "model.dtype must be one of"),
        ("vocab.codecs=[nosuchcodec]", "vocab.codecs"),
        ("data.mixture=[{type: magic}]", "type must be one of"),
        ("data.mixture=[{type: dataset}]", "needs a path"),
        ("data.mixture=[{type: tasks, codec: 'grid:n=4'}]", "is not in vocab.codecs"),
        ("data.mixture=[{type: polygons}]", "polygon samples need a polygon codec"),
        ("data.mixture=[{type: tasks, tasks: [text>nothing]}]", "tasks must be a non-empty subset"),
        ("eval.seed=0", "held-out scenes must come from another series"),
        ("train.deepspeed=/no/such.json", "no such file"),
        ("data.scenes.size=[8, 8]", "data.scenes"),
    ],
)
def test_bad_values_raise_config_error(override, match):
    with pytest.raises(ConfigError, match=match):
        load_sft_config(TINY, [override])


def test_unknown_key_in_yaml_file(tmp_path):
    data = yaml.safe_load(TINY.read_text())
    data["train"]["learning_rate"] = 1e-4  # the trainer's name, not ours
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="unknown config key 'train.learning_rate'"):
        load_sft_config(p)


def test_cli_reports_config_errors_without_training(capsys):
    from getok.train.cli import main

    assert main(["train", "sft", str(TINY), "train.epochs=zero"]) == 2
    assert "train.epochs' must be a number" in capsys.readouterr().err
    assert main(["train", "sft", str(TINY), "--dry-run", "train.max_steps=3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["max_steps"] == 3


def test_train_extension_helper_adds_a_command():
    import argparse

    from getok.train.cli import add_train_command

    seen = {}
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_command(sub, "grpo", lambda path, ov, args: seen.update(path=path, ov=ov) or 0)
    args = parser.parse_args(["grpo", "cfg.yaml", "a.b=1"])
    assert args.func(args) == 0 and seen == {"path": "cfg.yaml", "ov": ["a.b=1"]}
    args = parser.parse_args(["grpo", "a.b=2"])  # no YAML: defaults + overrides
    args.func(args)
    assert seen == {"path": None, "ov": ["a.b=2"]}


def test_rl_chain_sft_configs():
    """The GRPO start (phase 1 rl-copy from the random base, phase 2 rl-start from it), the one-phase start
    it replaced and the continued-SFT experiment (rl-refine) load, chained and with the refinement entries
    docs/rl.md describes: phase 1 is only point questions' one-cell self-correction."""
    copy = load_sft_config(REPO / "configs" / "sft" / "tiny-cpu-rl-copy.yaml")
    start = load_sft_config(REPO / "configs" / "sft" / "tiny-cpu-rl-start.yaml")
    onephase = load_sft_config(REPO / "configs" / "sft" / "tiny-cpu-rl-start-onephase.yaml")
    refine = load_sft_config(REPO / "configs" / "sft" / "tiny-cpu-rl-refine.yaml")
    assert copy.model.path == "tiny" and onephase.model.path == "tiny"
    (only,) = copy.data.mixture
    assert only.type == "offsets" and only.tasks == ["point>mask"] and only.anchor and only.ks == [1]
    assert start.model.path == f"{copy.output_dir}/final" and start.data.num_samples == 24000
    for cfg in (start, onephase):
        pr = [e for e in cfg.data.mixture if e.type == "offsets" and e.tasks == ["point>mask"]]
        assert len(pr) == 1 and pr[0].anchor and pr[0].ks == [1, 1, 2, 3]
    assert refine.model.path == f"{onephase.output_dir}/final"  # continues from the one-phase checkpoint
    (pr,) = [e for e in refine.data.mixture if e.type == "offsets"]
    assert pr.tasks == ["point>mask"] and pr.anchor and pr.ks == [1]
    assert len({start.output_dir, onephase.output_dir, copy.output_dir, refine.output_dir}) == 4
    base = load_sft_config(TINY)
    assert copy.vocab.codecs == start.vocab.codecs == onephase.vocab.codecs == refine.vocab.codecs == base.vocab.codecs
