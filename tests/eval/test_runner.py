"""The evaluation runner: end to end on the random tiny model, resumability, invalid outputs, CLI."""

from __future__ import annotations

import json

import pytest

from getok.data_builders.dataset import read_dataset
from getok.errors import ConfigError
from getok.eval.runner import RECORDS_FILE, SUMMARY_FILE, SUMMARY_MD, evaluate, evaluate_path, read_records

from .conftest import ScriptedModel

RECORD_KEYS = {"id", "task", "kind", "target", "prediction", "answer", "valid", "invalid_reason", "iou", "box_iou",
               "n_tokens", "n_objects", "instances", "pred_rle", "inter", "union"}  # fmt: skip


def test_end_to_end_tiny_model(tiny_model_dir, scene_dataset, tmp_path):
    out = tmp_path / "run"
    s = evaluate_path(tiny_model_dir, scene_dataset, out_dir=out, limit=6, batch_size=3, max_new_tokens=12, progress=False)
    recs = read_records(out / RECORDS_FILE)
    assert len(recs) == 6 and all(RECORD_KEYS <= set(r) for r in recs)
    ids = [x.sample_id for x in read_dataset(scene_dataset).samples[:6]]
    assert [r["id"] for r in recs] == ids
    assert s["overall"]["n"] == 6 and 0.0 <= s["overall"]["invalid_rate"] <= 1.0
    # the random model writes garbage: counted, never raised
    assert s["overall"]["invalid_rate"] > 0 and sum(s["overall"]["invalid_reasons"].values()) == round(6 * s["overall"]["invalid_rate"])
    md = (out / SUMMARY_MD).read_text()
    assert "Empty targets: LISA" in md and "| all | 6 |" in md
    saved = json.loads((out / SUMMARY_FILE).read_text())
    assert saved["empty"] == "lisa" and saved["run"]["model"] == str(tiny_model_dir.resolve())
    assert set(saved["per_task"]) == {r["task"] for r in recs}


def test_resume_skips_recorded_samples(scene_dataset, tmp_path):
    out = tmp_path / "run"
    ds = read_dataset(scene_dataset)
    targets = {(x.sample_id, 1): x.answer for x in ds.samples}
    m1 = ScriptedModel(targets)
    s1 = evaluate(None, None, scene_dataset, generate_fn=m1, out_dir=out, limit=4, progress=False, model_name="scripted")
    assert len(m1.calls) == 4 and s1["run"]["n_evaluated_now"] == 4
    m2 = ScriptedModel(targets)
    s2 = evaluate(None, None, scene_dataset, generate_fn=m2, out_dir=out, limit=9, progress=False, model_name="scripted")
    assert [c["id"] for c in m2.calls] == [x.sample_id for x in ds.samples[4:9]]
    assert s2["overall"]["n"] == 9 and s2["run"]["n_resumed"] == 4
    assert len(read_records(out / RECORDS_FILE)) == 9
    # an interrupted write: the torn line is dropped and that sample evaluated again
    with open(out / RECORDS_FILE, "a") as f:
        f.write('{"id": "torn", "iou": 0.')
    m3 = ScriptedModel(targets)
    s3 = evaluate(None, None, scene_dataset, generate_fn=m3, out_dir=out, limit=10, progress=False, model_name="scripted")
    assert [c["id"] for c in m3.calls] == [ds.samples[9].sample_id] and s3["overall"]["n"] == 10
    # other settings in the same directory: refused; resume=False starts over
    with pytest.raises(ConfigError, match="decoder"):
        evaluate(None, None, scene_dataset, generate_fn=m3, out_dir=out, decoder="polygon", limit=10, progress=False, model_name="scripted")
    m4 = ScriptedModel(targets)
    evaluate(None, None, scene_dataset, generate_fn=m4, out_dir=out, limit=3, resume=False, progress=False, model_name="scripted")
    assert len(m4.calls) == 3 and len(read_records(out / RECORDS_FILE)) == 3


def test_target_answers_score_their_truth(scene_dataset):
    ds = read_dataset(scene_dataset)
    model = ScriptedModel({(x.sample_id, 1): x.answer for x in ds.samples})
    s = evaluate(None, None, ds, generate_fn=model, progress=False)
    assert s["overall"]["invalid_rate"] == 0
    per = s["per_task"]
    # the raster of the cells on the object approximates the mask; no-target answers are exact
    assert per["none>mask"]["gIoU"] == 1.0 and per["none>mask"]["N-acc"] == 1.0
    assert per["text>mask"]["gIoU"] > 0.5 and per["text>point"]["Acc@point"] == 1.0
    assert per["text>box"]["Acc@0.5"] > 0.8
    # refinement samples answered with their own labels: points counted, no invalid deletion
    rp = s["refine_points"]
    n_cells = sum(len(x.truth["proposal_cells"]) for x in ds.samples if x.task == "refine")
    assert rp["points"] == n_cells and rp["invalid_delete"] == 0 and rp["out_of"] == 0


MALFORMED = [
    ("stray", "the red circle", "stray_text"),
    ("unknown", "<g32_r01_c01>", "unknown_token"),
    ("unclosed", "<think>hmm</think><answer><g16_r01_c01>", "stray_text"),
    ("empty", "", "empty"),
    ("none", "none", None),
    ("cells", "<g16_r01_c01><g16_r01_c02>", None),
    ("offsets_in_mask", "<g16_r01_c01><off_1_0>", "unknown_token"),
    ("not_text", None, "not_text"),
]


def test_malformed_generations_are_counted_not_raised(tmp_path, scene_dataset):
    ds = read_dataset(scene_dataset)
    base = next(x for x in ds.samples if x.task == "text>mask")
    from getok.samples import Sample

    samples = [Sample.from_dict({**base.to_dict(), "sample_id": name}) for name, _, _ in MALFORMED]
    refine = next(x for x in ds.samples if x.task == "refine")
    samples.append(refine)
    answers = {(name, 1): text for name, text, _ in MALFORMED}
    answers[(refine.sample_id, 1)] = "<off_0_0>"  # one token for six proposed cells
    s = evaluate(None, None, samples, image_root=scene_dataset, generate_fn=ScriptedModel(answers), out_dir=tmp_path / "r", progress=False)
    recs = {r["id"]: r for r in read_records(tmp_path / "r" / RECORDS_FILE)}
    for name, _, reason in MALFORMED:
        assert recs[name]["valid"] is (reason is None), name
        assert recs[name]["invalid_reason"] == reason, name
    assert recs[refine.sample_id]["invalid_reason"] == "count_mismatch"
    assert s["overall"]["invalid_rate"] == pytest.approx(7 / 9)
    assert s["overall"]["invalid_reasons"]["stray_text"] == 2
    assert recs["none"]["pred_none"] is True and recs["cells"]["iou"] >= 0


def test_cli_eval_and_viz(tiny_model_dir, scene_dataset, tmp_path, capsys):
    from getok.eval.cli import main

    out = tmp_path / "cli"
    rc = main(["eval", "--model", str(tiny_model_dir), "--data", str(scene_dataset), "--out", str(out), "--limit", "3",
               "--max-new-tokens", "8", "--constrained", "--quiet"])  # fmt: skip
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["n"] == 3 and last["invalid_rate"] == 0.0
    assert main(["viz", "--run", str(out), "--quiet"]) == 0
    assert (out / "viz" / "index.html").is_file() and len(list((out / "viz" / "samples").glob("*.png"))) == 3


def test_bad_settings_fail_fast(scene_dataset):
    with pytest.raises(ConfigError, match="turns"):
        evaluate(None, None, scene_dataset, generate_fn=ScriptedModel({}), turns=0, progress=False)
    with pytest.raises(ConfigError, match="model and processor"):
        evaluate(None, None, scene_dataset, progress=False)
    with pytest.raises(ConfigError, match="constrained decoding"):
        evaluate(None, None, scene_dataset, codec="text_coords", constrained=True, generate_fn=ScriptedModel({}), progress=False)


def test_exact_scene_decoder_inverts_greedy_cells(tmp_path):
    """Greedy cells on exact point masks decode back to the object with ``point_masks:proposer=exact``."""
    from getok.data_builders.dataset import write_dataset
    from getok.data_builders.greedy import GreedyGeometryFn
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import TaskConfig, build_tasks

    from .conftest import SPEC

    sl = build_tasks(generate_scenes(2, seed=3), SPEC, TaskConfig(tasks=("text>mask",)), geometry_fn=GreedyGeometryFn(n=16))
    data = write_dataset(sl, tmp_path / "greedy")
    model = ScriptedModel({(s.sample_id, 1): s.answer for s in sl})
    exact = evaluate(None, None, data, generate_fn=model, decoder="point_masks:proposer=exact,n=16", progress=False)
    raster = evaluate(None, None, data, generate_fn=model, progress=False)
    assert exact["overall"]["gIoU"] > 0.99 > raster["overall"]["gIoU"]
    # a scene whose pixels differ from its id's scene is refused
    from getok.decoding import SceneExactDecoder
    from getok.errors import DataError

    with pytest.raises(DataError, match="differs from the regenerated scene"):
        SceneExactDecoder().set_image(sl.images[sl[0].image_id].get_image() * 0, key=sl[0].image_id)


def test_a_run_under_the_decoders_former_name_resumes(tmp_path):
    """A run made with ``proposals:proposer=exact`` (the point_masks decoder's former name) resumes under
    ``point_masks:proposer=exact``: the same decoder, not other settings."""
    from getok.data_builders.dataset import write_dataset
    from getok.data_builders.greedy import GreedyGeometryFn
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import TaskConfig, build_tasks

    from .conftest import SPEC

    sl = build_tasks(generate_scenes(2, seed=3), SPEC, TaskConfig(tasks=("text>mask",)), geometry_fn=GreedyGeometryFn(n=16))
    data = write_dataset(sl, tmp_path / "greedy")
    model = ScriptedModel({(s.sample_id, 1): s.answer for s in sl})
    out = tmp_path / "run"
    kw = {"generate_fn": model, "out_dir": out, "progress": False, "model_name": "scripted"}
    evaluate(None, None, data, decoder="proposals:proposer=exact,n=16", limit=2, **kw)
    s = evaluate(None, None, data, decoder="point_masks:proposer=exact,n=16", **kw)
    assert s["run"]["n_resumed"] == 2 and s["overall"]["n"] == len(sl) and s["overall"]["gIoU"] > 0.99
    with pytest.raises(ConfigError, match="decoder"):
        evaluate(None, None, data, decoder="point_masks:proposer=exact,n=8", **kw)
