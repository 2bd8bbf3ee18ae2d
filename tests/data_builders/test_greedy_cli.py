"""``getok build grid-tokens | offsets | polygons`` and ``getok bench builders`` end to end (small inputs)."""

from __future__ import annotations

import argparse
import json

import pytest

from getok.codecs import get_codec
from getok.data_builders import cli_builders
from getok.errors import DataError


def parser():
    from getok.cli.main import build_parser

    return build_parser(["getok.data_builders.cli"])


def run(argv):
    args = parser().parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize(
    "cmd,codec,task",
    [
        ("grid-tokens", "grid:n=16", "text>mask"),
        ("offsets", "grid_offset:n=16,r=1,step=0.5", "refine"),
        ("polygons", "polygon:vertex=text,eps=0.01", "polygon"),
    ],
)
def test_build_commands_on_scenes(tmp_path, cmd, codec, task):
    out = tmp_path / cmd
    assert run(["build", cmd, "--scenes", "3", "--codec", codec, "--out", str(out), "--no-progress"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert man["counts"]["samples"] == len(rows) > 0 and man["codecs"] == [get_codec(codec).spec]
    assert all(r["task"] == task for r in rows)
    assert all((out / r["image"]).is_file() for r in rows)  # scene pixels written
    c = get_codec(codec)
    for r in rows:
        g = c.decode(r["turns"][0]["assistant"], tuple(r["size"]))
        assert len(g) == 1
        if task == "refine":
            assert c.try_decode_refinement(r["turns"][1]["assistant"], g).valid
        if task == "text>mask":
            assert r["meta"]["greedy_iou"] >= 0.9 or r["meta"]["fallback"]  # exact scene point masks
    # an existing output is not overwritten without --overwrite
    with pytest.raises(DataError, match="exists"):
        run(["build", cmd, "--scenes", "1", "--codec", codec, "--out", str(out), "--no-progress"])


def test_the_build_group_owns_every_builder():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("build")
    bsub = b.add_subparsers(dest="build_command")
    cli_builders.add_build_commands(bsub)
    assert {"grid-tokens", "offsets", "polygons"} <= set(bsub.choices)
    assert {"scenes", "tasks", "grid-tokens", "offsets", "polygons"} <= set(
        parser()._subparsers._group_actions[0].choices["build"]._subparsers._group_actions[0].choices
    )


@pytest.mark.shared
def test_build_grid_tokens_on_real_dev_with_cache(tmp_path, real_dev_root):
    cache = tmp_path / "cache"
    argv = ["build", "grid-tokens", "--data", str(real_dev_root), "--limit", "2", "--cache", str(cache), "--no-progress"]
    assert run([*argv, "--out", str(tmp_path / "a")]) == 0
    n_files = len(list(cache.rglob("*.json")))
    assert n_files == 2
    assert run([*argv, "--out", str(tmp_path / "b")]) == 0  # second run reads the cache
    a = (tmp_path / "a" / "samples.jsonl").read_text()
    assert a == (tmp_path / "b" / "samples.jsonl").read_text() and len(list(cache.rglob("*.json"))) == n_files


def test_bench_builders_smoke(tmp_path):
    from getok_lab.bench.builders import main

    out = tmp_path / "b.json"
    assert main(["--scenes", "2", "--scene-size", "96", "128", "--n", "8", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    gen = res["datasets"]["generated"]
    for k in ("greedy", "offsets", "polygons", "floor"):
        assert k in gen
    assert gen["greedy"]["masks_per_s"] > 0 and gen["greedy"]["mean_iou"] > 0.9
    assert "floor_ms_per_mask" in gen["offsets"] and res["targets_one_core"]["greedy_masks_per_s"] == 200


def test_bad_objects_are_counted_skips_not_crashes():
    import numpy as np

    from getok.records import AnnotatedImage, AnnotatedObject

    size = (40, 48)
    good = np.zeros(size, bool)
    good[5:20, 5:30] = True
    objs = [
        AnnotatedObject(0, "box", size, mask=good),
        AnnotatedObject(1, "ghost", size, mask=np.zeros(size, bool)),  # empty
        AnnotatedObject(2, "bad", size, rle={"size": [40, 48], "counts": "garbage-that-does-not-decode"}),
    ]
    im = AnnotatedImage("im", size, objs, image=np.zeros((*size, 3), np.uint8))
    lab = good.astype(np.int32)
    im.meta["label_map"] = lab
    for out in (
        cli_builders.build_polygons([im], "polygon", progress=False),
        cli_builders.build_offsets([im], "grid_offset:n=8", None, progress=False),
        cli_builders.build_grid_tokens([im], "grid:n=8", "exact", progress=False),
    ):
        assert len(out) == 1 and [s["item"] for s in out.skipped] == ["im/1", "im/2"]
