"""``getok demo``: configuration, the box>polygon data, trivial baselines, and the whole pipeline end to end.

The end-to-end test runs ``--fast`` (the same stages at a smoke size, ~30 s of CPU) into a temporary
directory, reruns it (every stage skipped), runs it again elsewhere with the same seed (same numbers) and
checks that another seed is refused in the same directory. The full demo (``-m slow``) asserts what
``summary.md`` claims: the query-conditioned tasks learn, and text>mask is found from the pixels
(paired, far above the always-centre prior).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from getok.errors import ConfigError
from getok.eval.baselines import baseline_answer
from getok_lab.demo import (
    BASELINES,
    STAGES,
    DemoConfig,
    build_box_polygon_set,
    grpo_config,
    load_demo_config,
    run_demo,
    sft_config,
)

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- config
def test_config_yaml_repeats_the_defaults():
    assert load_demo_config(REPO / "configs" / "demo" / "tiny-cpu.yaml") == DemoConfig()


def test_fast_and_overrides_and_seed():
    cfg = load_demo_config(None, ["sft_steps=7"], fast=True, seed=3)
    assert cfg.sft_steps == 7 and cfg.seed == 3 and cfg.eval_scenes == 3
    assert load_demo_config().sft_steps == DemoConfig().sft_steps


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"mixture": {"point_box": 1.0, "captions": 0.5}}, "mixture"),
        ({"mixture": {"point_box": 0.0}}, "mixture"),
        ({"sft_steps": 0}, "sft_steps"),
        ({"eval_tasks": ["text>box"]}, "eval_tasks"),
        ({"grpo1_steps": 0}, "grpo1_steps"),
        ({"polygon_eps": 1.5}, "polygon_eps"),
        ({"offsets_k": []}, "offsets_k"),
        ({"offsets_tasks": ["box>polygon"]}, "offsets_tasks"),
        ({"loss_turns": "first"}, "loss_turns"),
    ],
)
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        DemoConfig(**kw)


def test_derived_run_configs(tmp_path):
    cfg = DemoConfig(seed=5)
    s = sft_config(cfg, tmp_path)
    assert s.seed == 5 and s.model.tiny_seed == 5 and s.vocab.init_seed == 5
    assert s.vocab.codecs[0].startswith("grid_offset:n=8") and s.vocab.codecs[1].startswith(
        "polygon:vertex=grid_offset"
    )
    names = [e.name for e in s.data.mixture]
    assert names == ["point_box", "text", "offsets", "box_polygon"]
    assert math.isclose(sum(e.weight for e in s.data.mixture), 1.0)
    # the refinement samples ask the evaluated questions in turn 1, learn only the refine turn
    off = s.data.mixture[2]
    assert off.type == "offsets" and off.tasks == cfg.offsets_tasks and off.ks == cfg.offsets_k
    assert off.inside_steps == 0.0
    assert s.train.loss_turns == "last"
    assert s.vision_warmup.torch_threads == s.train.torch_threads == cfg.threads >= 1  # every stage alike
    old = sft_config(DemoConfig(offsets_tasks=[], loss_turns="all"), tmp_path)
    assert [e.name for e in old.data.mixture] == ["point_box", "text", "offsets_k1", "offsets_k2", "offsets_k4",
                                                  "box_polygon"]  # fmt: skip
    assert all(e.tasks is None for e in old.data.mixture[2:5]) and old.train.loss_turns == "all"
    assert s.eval.enabled is False and s.train.max_steps == cfg.sft_steps
    g1, g2 = grpo_config(cfg, tmp_path, 1), grpo_config(cfg, tmp_path, 2)
    assert g1.model.path == str(tmp_path / "sft" / "final") and g2.model.path == str(tmp_path / "grpo1" / "final")
    assert (g1.rl.stage, g2.rl.stage) == (1, 2) and g2.reward.stage2.bad_delete == -1.0
    assert g1.train.max_steps == cfg.grpo1_steps and g1.data.scenes.seed == 1
    no_poly = sft_config(DemoConfig(mixture={"point_box": 1.0}), tmp_path)
    assert [e.name for e in no_poly.data.mixture] == ["point_box"]


# ---------------------------------------------------------------------------------------------- data + baselines
@pytest.fixture(scope="module")
def polygon_set(tmp_path_factory):
    from getok.data_builders.dataset import read_dataset

    out = tmp_path_factory.mktemp("poly") / "set"
    cfg = DemoConfig()
    build_box_polygon_set(4, 10_000, cfg.polygon_codec, out)
    return read_dataset(out), cfg


def test_box_polygon_samples(polygon_set):
    from getok.codecs.base import get_codec
    from getok.ops.boxes import box_iou

    ds, cfg = polygon_set
    assert len(ds) >= 4
    qc, pc = get_codec("grid_offset:n=8,r=1,step=0.5"), get_codec(cfg.polygon_codec)
    assert set(pc.new_tokens()) <= set(qc.new_tokens())  # polygons share the grid + offset vocabulary
    for s in ds:
        assert s.task == "box>polygon" and s.kind == "mask" and s.codec == cfg.polygon_codec
        q = s.truth["query"]
        assert q["text"] in s.turns[0].user
        # the question's box tokens decode near the true box; the answer decodes to polygons
        (qb,) = qc.decode(q["text"], s.size, "box")
        assert box_iou(np.asarray(qb.box), np.asarray(s.truth["boxes"][0])) > 0.5
        (g,) = pc.decode(s.answer, s.size, "mask")
        assert g.polygons and all(len(p) >= 3 for p in g.polygons)


def test_box_polygon_set_is_reused_and_guarded(polygon_set, tmp_path):
    from getok.errors import DataError

    ds, cfg = polygon_set
    assert build_box_polygon_set(4, 10_000, cfg.polygon_codec, ds.root) == Path(ds.root)
    with pytest.raises(DataError, match="other settings"):
        build_box_polygon_set(5, 10_000, cfg.polygon_codec, ds.root)


def test_baselines(polygon_set):
    from getok.codecs.base import get_codec
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import TaskConfig, build_tasks

    ds, cfg = polygon_set
    s = ds.samples[0]
    assert baseline_answer("reference", s, cfg.polygon_codec) == s.answer
    (g,) = get_codec(cfg.polygon_codec).decode(baseline_answer("query", s, cfg.polygon_codec), s.size, "mask")
    xs, ys = np.concatenate(g.polygons)[:, 0], np.concatenate(g.polygons)[:, 1]
    bx = s.truth["query"]["box"]
    assert abs(xs.min() - bx[0]) <= 7 and abs(ys.max() - bx[3]) <= 7  # within half a cell (the offset step)
    spec = "grid_offset:n=8,r=1,step=0.5"
    samples = build_tasks(generate_scenes(3, 10_000), spec, TaskConfig(tasks=("point>mask", "text>mask"), seed=0))
    for smp in samples:
        assert baseline_answer("centre", smp, cfg.polygon_codec) == "<g8_r4_c4>"
        a = baseline_answer("query", smp, cfg.polygon_codec)
        if smp.task == "point>mask":
            x, y = smp.truth["query"]["point"]
            assert a == f"<g8_r{int(y // 14)}_c{int(x // 14)}>"
        else:
            assert a == "<g8_r4_c4>"
    with pytest.raises(ConfigError, match="baseline"):
        baseline_answer("oracle", samples[0], cfg.polygon_codec)


# ---------------------------------------------------------------------------------------------- end to end
def _numbers(run_json: dict) -> list[float]:
    """Every metric of every model / baseline (floats, in a stable order)."""
    out = []

    def walk(x):
        if isinstance(x, dict):
            for k in sorted(x):
                if k not in ("dir", "eval_s"):
                    walk(x[k])
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            out.append(float(x))

    walk(run_json["results"])
    return out


def _check_report(out: Path, summary: Path) -> dict:
    assert summary == out / "summary.md" and summary.is_file()
    text = summary.read_text()
    for heading in ("Held-out mIoU per task", "Two-turn self-correction", "Polygon mode", "Time per stage",
                    "what it cannot"):  # fmt: skip
        assert heading in text
    for f in ("run.json", "figures/training_curves.png", "figures/miou_by_model.png", "viz/tasks/index.html",
              "viz/polygons/index.html", "sft/final/getok_checkpoint.json", "grpo2/final/getok_checkpoint.json"):  # fmt: skip
        assert (out / f).is_file(), f
    assert list((out / "viz" / "tasks" / "samples").glob("*.png"))
    info = json.loads((out / "run.json").read_text())
    assert set(info["stages"]) == set(STAGES)
    for st in info["stages"].values():
        assert st["wall_s"] >= 0 and st["cpu_s"] >= 0
    assert info["versions"]["torch"] and info["seeds"]["seed"] == 0
    res = info["results"]
    assert set(res["models"]) == {"untrained", "sft", "grpo1", "grpo2"} and set(res["baselines"]) == {
        b for b, _ in BASELINES
    }
    nums = _numbers(info)
    assert nums and all(math.isfinite(v) for v in nums)
    for group in res.values():
        for r in group.values():
            for t, row in r["tasks"]["tables"].items():
                assert 0.0 <= row["gIoU"] <= 1.0 and 0.0 <= row["invalid_rate"] <= 1.0, t
            assert "box>polygon" in r["polygons"]["tables"]
            assert r["tasks"]["selfcorrect"]["turns"]["1"]["n"] > 0
    # the reference answers score where the trivial ones do not (the tables measure something)
    ref, centre = res["baselines"]["reference"], res["baselines"]["centre"]
    assert ref["tasks"]["tables"]["all"]["gIoU"] > centre["tasks"]["tables"]["all"]["gIoU"]
    # the untrained model mostly writes no valid answer (a random vocabulary row can happen to be a grid
    # token): invalid answers are counted, not dropped
    assert res["models"]["untrained"]["tasks"]["tables"]["all"]["invalid_rate"] > 0.5
    # paired comparisons between stages, per task, with the counts the sign test used
    comp = info["comparisons"]
    rows = {(c["model"], c["vs"], c["task"]) for c in comp["stages"]}
    assert ("grpo1", "sft", "text>mask") in rows and ("sft", "baseline:random_object", "text>mask") in rows
    assert all(c["improved"] + c["worse"] <= c["n"] and 0 <= c["p"] <= 1 for c in comp["stages"])
    assert {c["model"] for c in comp["selfcorrect"]} == {"sft", "grpo1", "grpo2"}
    assert set(comp["kinds"]["sft"]) <= {"colour", "shape", "superlative", "relation", "plural", "other"}
    return info


def test_fast_demo_end_to_end(tmp_path):
    """One test (the stages build on each other; xdist must not split them): run, rerun, resume, reproduce."""
    out = tmp_path / "run"
    cfg = load_demo_config(fast=True)
    info = _check_report(out, run_demo(cfg, out, fast=True, progress=False))
    numbers = _numbers(info)

    # a rerun skips every finished stage and rewrites the same report
    before = {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")}
    run_demo(cfg, out, fast=True, progress=False)
    info = json.loads((out / "run.json").read_text())
    assert info["invocations"][-1]["ran"] == [] and info["invocations"][-1]["skipped"] == list(STAGES)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")} == before
    assert _numbers(info) == numbers and len(info["invocations"]) == 2

    # a stage without its marker runs again, and gives the same numbers
    (out / "stages" / "eval-grpo2.json").unlink()
    run_demo(cfg, out, fast=True, progress=False)
    info = json.loads((out / "run.json").read_text())
    assert info["invocations"][-1]["ran"] == ["eval-grpo2"]
    assert _numbers(info) == numbers

    # other settings in the same directory are refused
    with pytest.raises(ConfigError, match="other settings"):
        run_demo(load_demo_config(fast=True, seed=1), out, fast=True, progress=False)

    # the same seed elsewhere: the same numbers
    run_demo(cfg, tmp_path / "again", fast=True, progress=False)
    assert _numbers(json.loads((tmp_path / "again" / "run.json").read_text())) == numbers


def test_cli_registers_demo():
    import argparse

    from getok_lab.demo import register

    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(["demo", "--out", "x", "--fast", "--seed", "2", "sft_steps=5"])
    assert args.fast and args.seed == 2 and args.overrides == ["sft_steps=5"] and callable(args.func)


# ---------------------------------------------------------------------------------------------- the full demo
@pytest.mark.slow
def test_full_demo_shows_learning(tmp_path):
    """The shipped budget (~12.5 min on 2 idle cores): what summary.md says the miniature learns."""
    out = tmp_path / "demo"
    run_demo(load_demo_config(), out, progress=False)
    res = json.loads((out / "run.json").read_text())["results"]

    def g(group, name, task):
        r = res[group][name]
        for key in ("tasks", "polygons"):
            if task in r[key]["tables"]:
                return r[key]["tables"][task]["gIoU"]
        raise KeyError(task)

    assert res["models"]["untrained"]["tasks"]["tables"]["all"]["invalid_rate"] > 0.9
    assert res["models"]["sft"]["tasks"]["tables"]["all"]["invalid_rate"] < 0.05
    for task in ("point>mask", "box>mask", "box>polygon"):  # query-conditioned: learned
        assert g("models", "sft", task) > g("baselines", "centre", task) + 0.1, task
    # text>mask: found from the pixels, far above the location prior (paired over the same questions)
    comp = json.loads((out / "run.json").read_text())["comparisons"]["stages"]
    (vs_centre,) = [c for c in comp if (c["model"], c["vs"], c["task"]) == ("sft", "baseline:centre", "text>mask")]
    assert vs_centre["significant"] and vs_centre["lo"] > 0.15, vs_centre


def test_bad_config_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_demo_config(bad)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_demo_config(tmp_path / "list.yaml")


def test_a_stage_made_under_the_decoders_former_name_is_not_redone(tmp_path):
    """Stages finished before the ``proposals`` decoder became ``point_masks`` (their settings say
    ``proposals:...``) are skipped on a rerun, not refused; other settings still are."""
    from getok.provenance import fingerprint
    from getok_lab.demo.stages import Stages

    stages = Stages(tmp_path)
    old = {"sft": {"eval": {"decoder": "proposals:proposer=exact,n=8"}, "codecs": ["grid:n=8"]}}
    new = {"sft": {"eval": {"decoder": "point_masks:proposer=exact,n=8"}, "codecs": ["grid:n=8"]}}
    m = {"stage": "sft", "title": "SFT", "fingerprint": fingerprint(old), "wall_s": 1.0, "cpu_s": 1.0,
         "finished": "2026-01-01 00:00:00", "result": {"final": "x"}}  # fmt: skip
    (tmp_path / "stages" / "sft.json").write_text(json.dumps(m))
    assert stages.run("sft", "SFT", new, lambda: pytest.fail("a finished stage ran again")) == m
    assert stages.skipped == ["sft"]
    other = {"sft": {"eval": {"decoder": "point_masks:proposer=exact,n=4"}, "codecs": ["grid:n=8"]}}
    with pytest.raises(ConfigError, match="other settings"):
        stages.run("sft", "SFT", other, dict)


def test_a_stage_made_before_an_option_existed_is_not_redone(tmp_path):
    """Stages finished before ``vision_warmup.moves``, ``eval.dataset`` and ``reward.polygon`` existed (their
    settings lack them) are skipped when those options hold their unused value; a used one is a change."""
    from getok.config import config_to_dict
    from getok.provenance import fingerprint
    from getok.rl.grpo_config import RewardSection
    from getok_lab.demo.stages import Stages

    stages = Stages(tmp_path)
    poly = config_to_dict(RewardSection())["polygon"]
    old = {"grpo": {"eval": {"n_scenes": 10}, "reward": {"decoder": "raster"}, "vision_warmup": {"steps": 4}}}
    new = {"grpo": {"eval": {"n_scenes": 10, "dataset": None}, "reward": {"decoder": "raster", "polygon": poly},
                    "vision_warmup": {"steps": 4, "moves": 0.0}}}  # fmt: skip
    m = {"stage": "grpo1", "title": "GRPO", "fingerprint": fingerprint(old), "wall_s": 1.0, "cpu_s": 1.0,
         "finished": "2026-01-01 00:00:00", "result": {"final": "x"}}  # fmt: skip
    (tmp_path / "stages" / "grpo1.json").write_text(json.dumps(m))
    assert stages.run("grpo1", "GRPO", new, lambda: pytest.fail("a finished stage ran again")) == m
    used = json.loads(json.dumps(new))
    used["grpo"]["vision_warmup"]["moves"] = 1.0
    with pytest.raises(ConfigError, match="other settings"):
        stages.run("grpo1", "GRPO", used, dict)


# ---------------------------------------------------------------------------------------------- report
def test_report_template_reproduces_the_committed_report():
    """summary.md is rendered from templates/summary.md.j2: the committed run.json renders the committed
    report, word for word (apart from the note added above it when it was committed)."""
    from getok_lab.demo import summary_markdown

    d = REPO / "benchmarks" / "results" / "demo"
    info = json.loads((d / "run.json").read_text())
    committed = [x for x in (d / "summary.md").read_text().splitlines(keepends=True) if not x.startswith(">")]
    rendered = summary_markdown(info["results"], info).splitlines(keepends=True)
    # the note is a blockquote followed by one blank line
    note_at = next(i for i, x in enumerate((d / "summary.md").read_text().splitlines()) if x.startswith(">"))
    del committed[note_at]
    assert rendered == committed


def test_report_states_what_the_numbers_say(tmp_path):
    """The findings follow the paired tests: a significant GRPO loss is called one, a missing stage is 'not run'."""
    from getok_lab.demo import summary_markdown

    info = json.loads((REPO / "benchmarks" / "results" / "demo" / "run.json").read_text())
    info["stages"].pop("grpo2")
    c = next(c for c in info["comparisons"]["stages"] if (c["model"], c["vs"], c["task"]) == ("grpo1", "sft", "text>mask"))
    c.update(significant=True, diff=-0.2)
    md = summary_markdown(info["results"], info)
    assert "| grpo2 | (not run) | – | – |" in md
    assert "**GRPO stage 1 on text>mask**" in md and "a significant loss." in md
    c.update(significant=False)
    assert "no significant change." in summary_markdown(info["results"], info)


def test_lock_differences_finds_the_checkouts_lock_by_default():
    """Without a path, the lock of this checkout is read (a wrong default path reads as 'not a checkout')."""
    from getok_lab.demo import lock_differences

    assert (REPO / "requirements" / "lock.txt").is_file()
    diff = lock_differences({"torch": "0.0.0-not-the-lock"})
    assert diff is not None and diff["torch"]["installed"] == "0.0.0-not-the-lock" and diff["torch"]["lock"]
