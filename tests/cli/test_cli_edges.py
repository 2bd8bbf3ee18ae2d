"""CLI edges: bad inputs are refused up front with one line on stderr and exit code 2 — never a traceback,
an empty result that exits 0, or a hang — and a rerun cleans what a killed build left beside ``--out``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from getok.data_builders.cli import main as build_main
from getok.data_builders.scenes import write_scenes

REPO = Path(__file__).resolve().parents[2]


def refused(capsys, rc: int, *names: str) -> str:
    """Assert exit code 2 and a one-line error on stderr naming each of ``names``; return the line."""
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("getok: error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory) -> Path:
    """An image source as 'getok build scenes' writes it (a manifest that lists images), not a dataset."""
    return write_scenes(tmp_path_factory.mktemp("src") / "scenes", 2, seed=0)


@pytest.mark.parametrize("fmt", ["sft", "easyr1", "sharegpt", "hf"])
def test_export_of_a_scenes_directory_says_to_build_tasks_first(scenes_dir, tmp_path, capsys, fmt):
    from getok.cli.main import main as getok_main

    out = tmp_path / "exported"
    argv = ["rl", "export-easyr1", "--stage", "1"] if fmt == "easyr1" else ["export", fmt]
    line = refused(capsys, getok_main([*argv, "--data", str(scenes_dir), "--out", str(out), "--quiet"]))
    assert str(scenes_dir) in line and "not a task dataset" in line and "getok build tasks" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["build", "tasks", "--scenes", "-5", "--codec", "grid:n=8"], "--scenes"),
        (["build", "tasks", "--scenes", "0", "--codec", "grid:n=8"], "--scenes"),  # was "give a source"
        (["build", "tasks", "--scenes", "2", "--workers", "0", "--codec", "grid:n=8"], "--workers"),
        (["build", "tasks", "--scenes", "2", "--expressions-per-object", "0", "--codec", "grid:n=8"],
         "--expressions-per-object"),
        (["build", "scenes", "--n", "-5"], "--n"),
        (["build", "scenes", "--n", "2", "--workers", "-1"], "--workers"),
        (["build", "grid-tokens", "--scenes", "-5", "--no-progress"], "--scenes"),
        (["build", "grid-tokens", "--scenes", "0", "--no-progress"], "--scenes"),
        (["build", "grid-tokens", "--scenes", "2", "--limit", "0", "--no-progress"], "--limit"),  # was "all"
        (["build", "grid-tokens", "--scenes", "2", "--max-cells", "0", "--no-progress"], "--max-cells"),
        (["build", "offsets", "--scenes", "2", "--per-object", "0", "--no-progress"], "--per-object"),
        (["build", "offsets", "--scenes", "2", "--k", "0", "--no-progress"], "--k"),
        (["build", "polygons", "--scenes", "-1", "--no-progress"], "--scenes"),
    ],
)  # fmt: skip
def test_build_refuses_non_positive_counts(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    line = refused(capsys, build_main([*argv, "--out", str(out)]), flag)
    assert "must be >= 1" in line
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing written, not even an empty dataset


@pytest.mark.parametrize(
    "argv, names",
    [
        (["build", "offsets", "--scenes", "2", "--band-weights", "nan", "1", "1", "1", "--no-progress"],
         ["band_weights", "nan"]),
        (["build", "polygons", "--scenes", "2", "--min-area", "nan", "--no-progress"], ["min_area", "nan"]),
        (["build", "tasks", "--scenes", "2", "--size", "100000", "--codec", "grid:n=8"], ["size", "4096"]),
    ],
)  # fmt: skip
def test_build_refuses_non_finite_and_absurd_values(tmp_path, capsys, argv, names):
    out = tmp_path / "out"
    refused(capsys, build_main([*argv, "--out", str(out)]), *names)
    assert not out.exists()


def test_export_refuses_non_positive_num_proc(tmp_path, capsys):
    refused(capsys, build_main(["export", "sft", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                "--num-proc", "0"]), "--num-proc")  # fmt: skip


@pytest.mark.parametrize(
    "spec, names",
    [
        ("polygon:vertex=grid,n=100000", ["polygon.n", "362"]),
        ("polygon:vertex=bins,bins=100000000", ["polygon.bins", "10000"]),
        ("grid_offset:n=361,r=16", ["grid_offset.n", "131072"]),
    ],
)
def test_absurd_codec_specs_are_refused_before_any_token_is_built(tmp_path, capsys, spec, names):
    out = tmp_path / "out"
    refused(capsys, build_main(["build", "tasks", "--scenes", "1", "--codec", spec, "--out", str(out), "--quiet"]),
            *names)  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize("override", ["train.lr=nan", "train.lr=inf", "train.max_grad_norm=nan", "train.lr=-1e-4",
                                      "train.weight_decay=nan", "train.warmup_ratio=inf"])  # fmt: skip
def test_train_sft_refuses_non_finite_or_negative_numbers(capsys, override):
    from getok.train.cli import main

    field = override.split("=")[0]
    refused(capsys, main(["train", "sft", str(REPO / "configs/sft/tiny-cpu.yaml"), override, "--dry-run"]), field)


@pytest.mark.parametrize("override", ["train.lr=nan", "train.lr=inf", "train.max_grad_norm=nan",
                                      "train.max_grad_norm=inf", "rl.beta=nan", "rl.epsilon_high=inf"])  # fmt: skip
def test_train_grpo_refuses_non_finite_numbers(capsys, override):
    from getok.rl.cli import main

    field = override.split("=")[0]
    refused(capsys, main(["rl", "train", override, "--dry-run"]), field)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_rerun_cleans_the_temp_dirs_a_killed_build_left(tmp_path, capsys):
    out = tmp_path / "scenes"
    stale_old_style = tmp_path / ".scenes.k3j9x0q1.tmp"  # name of getok before the pid was added
    stale = tmp_path / f".scenes.{_dead_pid()}-ab12cd34.tmp"
    for d in (stale_old_style, stale):
        (d / "images").mkdir(parents=True)
        (d / "images" / "000.png").write_bytes(b"half-written")
    other_target = tmp_path / ".scenes.v2.1-ab12cd34.tmp"  # a build of 'scenes.v2', not of 'scenes'
    other_target.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f".scenes.{sleeper.pid}-ab12cd34.tmp"  # a live build of the same target
        running.mkdir()
        assert build_main(["build", "scenes", "--n", "1", "--out", str(out), "--quiet"]) == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (out / "manifest.json").is_file()
    assert not stale.exists() and not stale_old_style.exists()
    assert running.is_dir() and other_target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scenes", running.name, other_target.name])


def test_a_real_killed_build_is_cleaned_by_the_rerun(tmp_path):
    """SIGKILL a build mid-way (it cannot clean up), then rerun: its temporary directory is gone."""
    out = tmp_path / "big"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "getok.data_builders.cli", "build", "scenes", "--n", "100000", "--out", str(out),
         "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import time

        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".big.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    left = list(tmp_path.glob(".big.*.tmp"))
    assert len(left) == 1 and not out.exists()
    assert build_main(["build", "scenes", "--n", "1", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def test_every_command_with_progress_bars_turns_them_off_with_quiet():
    """One flag name for one idea: ``--quiet`` wherever a command draws progress bars (``--no-progress``
    stays accepted as an alias where it was the name)."""
    import argparse

    from getok.cli.main import build_parser

    def leaves(p, path=()):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, p
        for a in subs:
            for name, sp in a.choices.items():
                yield from leaves(sp, (*path, name))

    found = 0
    for path, p in leaves(build_parser()):
        opts = {o for a in p._actions for o in a.option_strings}
        if "--no-progress" in opts or "--quiet" in opts:
            found += 1
            assert "--quiet" in opts, " ".join(path)
            q = next(a for a in p._actions if "--quiet" in a.option_strings)
            assert q.dest == "quiet", " ".join(path)
    assert found >= 10


def test_builders_take_the_size_as_every_build_command_does(tmp_path):
    """``--size N|H,W`` (as ``build scenes``); the old ``--scene-size H W`` still works."""
    from getok.cli.main import main
    from getok.data_builders.dataset import read_dataset

    for i, flags in enumerate((["--size", "96,128"], ["--scene-size", "96", "128"])):
        out = tmp_path / f"d{i}"
        assert main(["build", "grid-tokens", "--scenes", "1", *flags, "--quiet", "--out", str(out)]) == 0
        assert {tuple(s.size) for s in read_dataset(out)} == {(96, 128)}


def test_build_tasks_names_its_proposer_like_build_grid_tokens(tmp_path):
    from getok.cli.main import build_parser

    p = build_parser()
    new = p.parse_args(["build", "tasks", "--data", "x", "--codec", "grid:n=8", "--proposer", "exact", "--cache", "c", "--out", "o"])
    old = p.parse_args(["build", "tasks", "--data", "x", "--codec", "grid:n=8", "--greedy", "exact", "--proposal-cache", "c",
                         "--out", "o"])
    assert (new.proposer, new.cache) == (old.proposer, old.cache) == ("exact", "c")
