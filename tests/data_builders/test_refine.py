"""Refinement samples from query tasks (getok.data_builders.refine)."""

from __future__ import annotations

import pytest

from getok.codecs import get_codec
from getok.data_builders.refine import query_anchor, refine_from_tasks
from getok.data_builders.scenes import SceneConfig, generate_scenes
from getok.data_builders.tasks import TaskConfig, build_tasks
from getok.errors import ConfigError

SPEC = "grid_offset:n=8,r=1,step=0.5"


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(6, seed=3, cfg=SceneConfig(size=(112, 112), min_objects=1, max_objects=3))


def test_query_anchor_is_the_cell_and_move_the_question_writes(scenes):
    c = get_codec(SPEC)
    tasks = build_tasks(scenes, SPEC, TaskConfig(tasks=("point>mask", "text>mask"), seed=0))
    points = [s for s in tasks if s.task == "point>mask"]
    assert points
    for s in points:
        cell, move = query_anchor(s, c)
        assert c.encode_cells([cell]) + "<off_{}_{}>".format(*move) in s.turns[0].user
    assert all(query_anchor(s, c) is None for s in tasks if s.task == "text>mask")


def test_refine_from_tasks_skips_what_it_cannot_refine_and_checks_its_settings(scenes):
    tasks = build_tasks(scenes, SPEC, TaskConfig(tasks=("point>mask", "box>mask", "text>box"), seed=0))
    out = refine_from_tasks(tasks, scenes, SPEC, [2], anchor=True, seed=0)
    n_box_answers = sum(1 for s in tasks if s.kind != "mask")
    assert n_box_answers and len(out) == len(tasks) - n_box_answers
    assert sum("single-target mask" in d["reason"] for d in out.skipped) == n_box_answers
    asks = {s.meta["ask"] for s in out}
    assert asks == {"point>mask", "box>mask"}
    assert all(("anchor" in s.meta) == (s.meta["ask"] == "point>mask") for s in out)
    again = refine_from_tasks(tasks, scenes, SPEC, [2], anchor=True, seed=0)
    assert [s.turns for s in again] == [s.turns for s in out]  # deterministic per seed
    with pytest.raises(ConfigError, match="grid_offset"):
        refine_from_tasks(tasks, scenes, "grid:n=8", [1])
    with pytest.raises(ConfigError, match="ks"):
        refine_from_tasks(tasks, scenes, SPEC, [0])


def test_inside_steps_zero_keeps_every_point_that_lies_on_the_object(scenes):
    import re

    from getok.ops.masks import rle_decode

    tasks = build_tasks(scenes, SPEC, TaskConfig(tasks=("text>mask", "box>mask"), seed=0))
    kept = moved = 0
    for inside_steps in (None, 0.0):
        out = refine_from_tasks(tasks, scenes, SPEC, [4], seed=0, inside_steps=inside_steps)
        assert len(out)
        for s in out:
            mask = rle_decode(s.truth["masks"][0])
            h, w = mask.shape
            labels = re.findall(r"<[^>]+>", s.turns[-1].assistant)
            for (cx, cy), lab in zip(s.truth["proposal_cells"], labels, strict=True):
                on = mask[int((cy + 0.5) * h / 8), int((cx + 0.5) * w / 8)]
                if inside_steps == 0.0:
                    assert not on or lab == "<off_0_0>"  # on the object: kept as it is
                    assert on or lab != "<off_0_0>"  # beside it: a move or <DELETE>
                elif on:
                    kept += lab == "<off_0_0>"
                    moved += lab != "<off_0_0>"
    assert moved > 0 and kept > 0  # DESIGN's band (r steps) moves some points that lie on the object
    with pytest.raises(ConfigError, match="inside_steps"):
        refine_from_tasks(tasks, scenes, SPEC, [4], inside_steps=-1.0)
