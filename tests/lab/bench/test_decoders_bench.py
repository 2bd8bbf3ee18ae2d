"""Smoke test of ``getok bench decoders`` on tiny inputs (the speed targets live in benchmarks/results)."""

from __future__ import annotations

import json

import numpy as np

from getok_lab.bench.decoders import bench_metrics, bench_prompt_cost, bench_weight_free, main


def _images():
    masks = []
    for (y0, y1, x0, x1) in ((5, 30, 4, 40), (20, 60, 30, 70)):
        m = np.zeros((64, 80), bool)
        m[y0:y1, x0:x1] = True
        masks.append(m)
    return [("a", (64, 80), masks), ("b", (64, 80), masks[:1])]


def test_weight_free_rows():
    res = bench_weight_free(_images(), n=8)
    kinds = {(r["decoder"], r["answer"]) for r in res["rows"]}
    assert ("raster", "polygons") in kinds and ("point_masks", "cells") in kinds
    assert ("point_masks (refined=cover)", "cells+offsets") in kinds
    assert res["instances"] == 3 and all(r["masks"] == 3 for r in res["rows"])
    poly = next(r for r in res["rows"] if r["answer"] == "polygons")
    assert poly["mean_iou_vs_instance"] > 0.9  # rectangles survive polygon simplification


def test_metrics_and_prompt_cost():
    m = bench_metrics(n_samples=50, real_size=(32, 48))
    assert m["samples"] == 50 and m["summarize_rela_s"] >= 0
    p = bench_prompt_cost(ks=(1, 3), size=(32, 48), repeats=1)
    sam_rows = [r for r in p["rows"] if r["model"].startswith("sam (") and "k" in r]
    assert [r["k"] for r in sam_rows] == [1, 3]


def test_cli_writes_json(tmp_path):
    out = tmp_path / "decoders.json"
    assert main(["--scenes", "1", "--metrics-samples", "40", "--no-sam", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["benchmark"] == "decoders" and res["weight_free"]["rows"] and "prompt_cost" not in res
