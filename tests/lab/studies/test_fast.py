"""Every study's ``--fast`` path end to end: real training steps, evaluation, JSON + table + plot written.

The numbers of a 3-step run mean nothing; what is checked is that each study runs through all its arms,
records its provenance, and writes well-formed outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from getok_lab.studies.cli import main
from getok_lab.studies.representations import DEFAULT_REPRESENTATIONS


def _run(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / "out"
    rc = main([name, "--fast", "--no-progress", "--out", str(out), "--work-dir", str(tmp_path / "work"), *extra])
    assert rc == 0
    stem = out / name
    res = json.loads(stem.with_suffix(".json").read_text())
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    md = stem.with_suffix(".md").read_text()
    assert md.startswith("# ") and "|---|" in md
    prov = res["provenance"]
    assert prov["command"].startswith(f"getok study {name} --fast")
    assert prov["seeds"] == [0]
    assert prov["environment"]["torch"] and prov["environment"]["getok"]
    assert prov["clock"]["wall_s"] > 0 and prov["clock"]["cpu_s"] > 0
    res["_md"] = md
    return res


def _in_unit(v):
    return v is None or 0.0 <= v <= 1.0


def test_representations_fast(tmp_path):
    res = _run(tmp_path, "representations")
    inits = {r["name"]: (r["init"], r["new_tokens"]) for r in res["representations"]}
    assert inits == {  # the init is a factor of grid and bins, said in the arm's name and written in the JSON
        "text coordinates": ("2d", 0), "bins (random rows)": ("random", 112), "bins (1d rows)": ("1d", 112),
        "grid (2d rows)": ("2d", 64), "grid (random rows)": ("random", 64), "grid + offset": ("2d", 64 + 9 + 1),
        "text polygons": ("2d", 0), "token polygons": ("random", 112),
    }  # fmt: skip
    assert list(inits) == list(DEFAULT_REPRESENTATIONS)
    table = [line.split(" | ") for line in res["_md"].splitlines() if line.startswith("| ") and "(`" in line]
    md_rows = {cells[0][2:]: cells[1] for cells in table}  # "name (`codec`)" -> init column
    assert len(md_rows) == len(inits)
    assert "| representation | init | answer |" in res["_md"]
    assert md_rows["grid (2d rows) (`grid:n=8`)"] == "`2d`" and md_rows["grid (random rows) (`grid:n=8`)"] == "`random`"
    assert md_rows["bins (1d rows) (`bins:bins=112,eps=0.01,holes=false`)"] == "`1d`"
    assert md_rows["text coordinates (`text_coords:style=norm3,eps=0.01,holes=false`)"] == "none (no new tokens)"
    for r in res["representations"]:
        run = r["runs"][0]
        assert run["train"]["steps"] == 3 and run["train"]["train_wall_s"] > 0
        assert run["eval_ms_per_sample"] > 0 and run["target_tokens_per_object"] > 0
        for m in ("Acc@0.5", "Acc@0.8", "gIoU", "invalid_rate"):
            assert _in_unit(run["final_turn"]["core"][m])
        assert r["oracle"]["core"]["gIoU"] > 0.5  # the reference answers decode to the objects
        ci = r["mean"]["core/gIoU"]  # over seeds x the one question set of every arm, a bootstrap interval
        assert ci["n_seeds"] == 1 and ci["n_questions"] == res["questions"]["core"] >= len(run["question_iou"]["core"]) > 0
        assert ci["lo"] <= ci["mean"] <= ci["hi"]
        asked = len(run["question_iou"]["core"])  # unanswerable questions count 0: the mean scales by asked / all
        assert ci["mean"] == pytest.approx(run["final_turn"]["core"]["gIoU"] * asked / res["questions"]["core"])
        assert r["unanswerable_core"] == res["questions"]["core"] - asked
        assert r["name"] in res["_md"]
    rows = {r["name"]: r for r in res["representations"]}
    # cost per object: one cell < two bin tokens < a text point < an outline in text
    tok = {k: v["mean"]["target_tokens_per_object"]["mean"] for k, v in rows.items()}
    assert tok["grid (2d rows)"] == tok["grid (random rows)"] == 1
    assert tok["bins (random rows)"] == tok["bins (1d rows)"] == 2
    assert tok["grid (2d rows)"] < tok["text coordinates"] < tok["text polygons"]
    assert "turn1" in rows["grid + offset"]["runs"][0]  # evaluated with a refinement turn
    assert rows["grid + offset"]["train_pool_sizes"]["refine"] > 0


def test_resize_vocab_fast(tmp_path):
    res = _run(tmp_path, "resize-vocab")
    kinds = [(r["kind"], r["init"]) for r in res["rows"]]
    assert ("source", "2d") in kinds and ("scratch", "2d") in kinds
    assert {i for k, i in kinds if k == "resize"} == {"interp", "mean", "random"}
    assert {i for k, i in kinds if k == "baseline"} == {"centre", "reference"}
    # the result names its seeds, its held-out series and its question set
    assert res["seeds"] == [0] and res["eval"]["split"] == "test" and res["eval"]["series"] == 30000
    qset = res["questions"]["8"]
    assert qset["n"] == len(qset["ids"]) == sum(len(v) for v in qset["by_task"].values()) > 0
    assert res["curve_steps"] == [0, 1, 2, 3, 4]  # step 0 (right after resizing) + >= 4 fine-tune checkpoints
    for r in res["runs"]:
        if r["kind"] == "resize":
            assert r["n"] == 4 and r["m"] == 8 and r["tokens"] == 64  # the 4-grid became an 8-grid
            assert "grid:n=8" in r["codecs"]
            assert [p["step"] for p in r["curve"]] == [0, 1, 2, 3, 4]
        if r["kind"] == "scratch":
            assert [p["step"] for p in r["curve"]] == [1, 2, 3, 4]
        ids = res["questions"][str(r["m"])]["ids"]  # the questions of the grid the run answers in
        for p in r.get("curve", [r.get("eval")]):
            assert _in_unit(p["gIoU"]) and set(p["question_iou"]) == set(ids)  # every question scored
            assert p["gIoU"] == pytest.approx(sum(p["question_iou"].values()) / len(ids))
    for r in res["rows"]:
        for p in r.get("curve", [r.get("eval")]):
            ci = p["gIoU"]  # mean over seeds x questions, a bootstrap interval (not Student-t)
            assert ci["method"] == "bootstrap over seeds x questions" and ci.get("half") is None
            assert ci["lo"] <= ci["mean"] <= ci["hi"] and ci["n_questions"] == len(res["questions"][str(r["m"])]["ids"])
    base = {r["init"]: r["eval"]["gIoU"] for r in res["rows"] if r["kind"] == "baseline" and r["m"] == 8}
    assert base["reference"]["mean"] > 0.5 and base["reference"]["mean"] >= base["centre"]["mean"]  # ceiling, floor
    comps = {(c["step"], c["a"], c["b"]) for c in res["comparisons"]}
    assert {(0, "`interp`", "`mean`"), (0, "`interp`", "`random`"), (4, "`interp`", "`mean`")} <= comps
    assert {(k, "`interp`", "fresh model") for k in (1, 2, 3, 4)} <= comps
    for c in res["comparisons"]:
        assert c["direction"] == [4, 8] and c["n_seeds"] == 1
        assert c["n"] == c["n_seeds"] * c["n_questions"] == len(qset["ids"])  # the same questions, all shared
        assert c["better"] + c["worse"] + c["same"] == c["n"] and 0 <= c["p"] <= 1
        assert c["lo"] <= c["diff"] <= c["hi"] and c["diff"] == pytest.approx(c["mean_a"] - c["mean_b"])
        assert c["crossed"]["lo"] <= c["diff"] <= c["crossed"]["hi"]
    md = res["_md"]
    assert "## 4 → 8" in md and "Paired comparisons" in md and "reference answer (ceiling)" in md
    assert "fresh 8-grid model" in md and "always-centre" in md


def test_self_correction_fast(tmp_path):
    res = _run(tmp_path, "self-correction")
    assert [v["name"] for v in res["variants"]] == ["varying k, point questions", "k = 6, text questions"]
    for v in res["variants"]:
        assert v["refine_pool"] > 0
        curves = v["mean"]
        assert set(curves) == {"all", "point>mask", "box>mask"}
        assert [r["turn"] for r in curves["all"]["model"]] == [1, 2, 3]
        assert [r["turn"] for r in curves["all"]["oracle"]] == [1, 2, 3]
        assert "improved" in curves["all"]["model"][1]
        first = curves["all"]["model"][0]["gIoU"]
        assert first["n_seeds"] == 1 and first["lo"] <= first["mean"] <= first["hi"]
        assert first["mean"] == pytest.approx(v["runs"][0]["per_turn"]["all"]["model"][0]["gIoU"])


def test_polygon_density_fast(tmp_path):
    res = _run(tmp_path, "polygon-density", "real_dev=none")
    assert "skipped" in res["real_dev"] and "Skipped" in res["_md"]
    rows = res["scenes_oracle"]["rows"]
    for fmt_name in ("text polygons", "token polygons"):
        rs = sorted((r for r in rows if r["format"] == fmt_name), key=lambda r: r["eps"])
        assert len(rs) == 2 and rs[0]["tokens"] >= rs[1]["tokens"]  # a larger tolerance never costs more tokens
    assert {t["format"] for t in res["trained"]} == {"text polygons", "token polygons"}
    for t in res["trained"]:
        assert t["runs"][0]["max_new_tokens"] >= 16 and _in_unit(t["mean"]["core/gIoU"]["mean"])


def test_polygon_density_missing_real_dev_is_skipped_with_a_message(tmp_path, capsys):
    res = _run(tmp_path, "polygon-density", f"real_dev={tmp_path / 'nowhere'}", "eps_trained=[]")
    assert "not found" in res["real_dev"]["skipped"]
    assert "skipped" in capsys.readouterr().out
    assert res["trained"] == []


@pytest.mark.shared
def test_polygon_density_oracle_on_real_dev(real_dev_masks):
    from getok_lab.studies.polygon_density import _default_formats, oracle_sweep

    masks = real_dev_masks[:40]
    rows = oracle_sweep(masks, _default_formats(), [0.005, 0.01, 0.02])
    for name in ("text polygons", "token polygons"):
        rs = [r for r in rows if r["format"] == name]
        ious, toks = [r["iou"] for r in rs], [r["tokens"] for r in rs]
        assert ious == sorted(ious, reverse=True) and toks == sorted(toks, reverse=True)
        assert rs[0]["iou"] > 0.9 and rs[0]["objects"] == 40 and rs[0]["fallbacks"] == 0
    text = {r["eps"]: r["tokens"] for r in rows if r["format"] == "text polygons"}
    tokens = {r["eps"]: r["tokens"] for r in rows if r["format"] == "token polygons"}
    assert all(text[e] > 3 * tokens[e] for e in text)  # a text vertex costs several tokens, a bin vertex two
