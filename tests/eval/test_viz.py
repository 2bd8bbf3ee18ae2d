"""Overlays of a run: one PNG per sample (one panel per turn), written from procedural scenes into tmp."""

from __future__ import annotations

import numpy as np
from PIL import Image

from getok.codecs import get_codec
from getok.data_builders.dataset import read_dataset
from getok.eval.runner import evaluate
from getok.eval.viz import overlay_rgba, panels_of, render_run

from .conftest import SPEC, ScriptedModel


def _scripted_selfcorrection(ds):
    c = get_codec(SPEC)
    answers = {}
    for s in ds.samples:
        answers[(s.sample_id, 1)] = s.answer if s.task != "refine" else s.turns[0].assistant
        if s.kind == "mask" and answers[(s.sample_id, 1)] != "none":
            gs = c.decode(answers[(s.sample_id, 1)], s.size)
            answers[(s.sample_id, 2)] = "\n".join("<off_1_0>" * (len(g.cells) - 1) + "<DELETE>" for g in gs)
    return ScriptedModel(answers)


def test_render_run_writes_pngs_and_index(scene_dataset, tmp_path):
    ds = read_dataset(scene_dataset)
    run = tmp_path / "run"
    evaluate(None, None, ds, generate_fn=_scripted_selfcorrection(ds), out_dir=run, turns=2, limit=12, progress=False)
    res = render_run(run, tmp_path / "viz", progress=False)
    assert len(res["pngs"]) == 12 and not res["skipped"]
    first = ds.samples[0]
    with Image.open(res["pngs"][first.sample_id]) as im:
        w1, h1 = im.size
        assert im.format == "PNG" and w1 > h1  # three panels side by side: turn 1, turn 2, oracle
    point = next(s for s in ds.samples[:12] if s.kind == "point")
    with Image.open(res["pngs"][point.sample_id]) as im:
        assert im.size[0] < w1  # a one-turn sample has one panel
    html = (tmp_path / "viz" / "index.html").read_text()
    assert all(s.sample_id in html for s in ds.samples[:12])
    assert "function sortBy" in html and "IoU change" in html
    assert "http://" not in html and "https://" not in html  # no network


def test_refinement_sample_panels(scene_dataset, tmp_path):
    ds = read_dataset(scene_dataset)
    refine = [s for s in ds.samples if s.task == "refine"]
    model = ScriptedModel({(s.sample_id, 1): s.answer for s in refine})
    run = tmp_path / "run"
    evaluate(None, None, refine, image_root=scene_dataset, generate_fn=model, out_dir=run, progress=False)
    res = render_run(run, progress=False)  # default: RUN/viz; samples given by list → run/samples.jsonl
    assert len(res["pngs"]) == len(refine) and res["out"] == str(run / "viz")
    from getok.eval.runner import read_records

    rec = read_records(run / "records.jsonl")[0]
    p = panels_of(rec)
    assert [x["title"].split(":")[0] for x in p] == ["proposal (dataset)", "refinement"]
    assert len(p[0]["instances"][0]["cells"]) == len(refine[0].truth["proposal_cells"])
    assert any(p[1]["instances"][0]["deleted"]) or any(any(o) for o in p[1]["instances"][0]["offsets"])


def test_overlay_colours():
    gt = np.array([[1, 1, 0]], bool)
    pred = np.array([[0, 1, 1]], bool)
    o = overlay_rgba(pred, gt)
    assert o[0, 0, 1] > o[0, 0, 0]  # truth only: green
    assert o[0, 2, 0] > o[0, 2, 1]  # prediction only: red
    assert o[0, 1, 0] > 0.9 and o[0, 1, 1] > 0.8  # both: yellow
    assert overlay_rgba(None, np.zeros((1, 2), bool))[..., 3].max() == 0
