"""Atomic directory writes: a killed build's temporary directory is removed by the next build of the same
target — only that target's, and only when its process is gone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from getok.errors import DataError
from getok.io import atomic_dir, clean_stale_temp_dirs


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temp_dir_is_named_after_target_and_process(tmp_path):
    with atomic_dir(tmp_path / "out") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f".out.{os.getpid()}-") and tmp.name.endswith(".tmp")
        (tmp / "a.txt").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_dirs_of_the_same_target_are_removed_before_building(tmp_path):
    stale = [tmp_path / f".out.{_dead_pid()}-abcd_123.tmp", tmp_path / ".out.zq81mw0e.tmp"]  # old-style: no pid
    for d in stale:
        (d / "sub").mkdir(parents=True)
    keep = [
        tmp_path / f".out.{os.getpid()}-abcd1234.tmp",  # a live process (this one) builds the same target
        tmp_path / ".out.v2.zq81mw0e.tmp",  # target 'out.v2'
        tmp_path / ".outx.zq81mw0e.tmp",  # target 'outx'
        tmp_path / ".out.zq81mw0e.tmp.bak",  # not a temp dir name
    ]
    for d in keep:
        d.mkdir()
    file_like = tmp_path / f".out.{_dead_pid()}-abcd1234.tmp.x"
    file_like.write_text("")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("x")
    assert not any(d.exists() for d in stale)
    assert all(d.is_dir() for d in keep) and file_like.is_file()
    assert (tmp_path / "out" / "a.txt").read_text() == "x"


def test_a_running_build_keeps_its_temp_dir(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".out.{sleeper.pid}-abcd1234.tmp"
        live.mkdir()
        assert clean_stale_temp_dirs(tmp_path / "out") == []
        assert live.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert clean_stale_temp_dirs(tmp_path / "out") == [live] and not live.exists()


def test_refused_overwrite_and_failed_block_leave_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="already exists"):
        with atomic_dir(tmp_path / "out"):
            pass
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "new") as tmp:
            (tmp / "a").write_text("x")
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_leftover_old_copy_of_an_interrupted_swap_is_removed(tmp_path):
    old = tmp_path / ".out.old"  # a build killed between its two renames leaves the previous output here
    (old / "stale").mkdir(parents=True)
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_dir(tmp_path / "out", overwrite=True) as tmp:
        (tmp / "b").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and [p.name for p in (tmp_path / "out").iterdir()] == ["b"]
