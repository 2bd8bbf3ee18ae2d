"""GRPO on polygon answers (issue 19): stage 1 with polygon tasks trains with the polygon reward, packs truth
task ``polygon`` and evaluates a held-out polygon set (mIoU, invalid rate, tokens per object); the mask paths
are pinned unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

from getok.errors import ConfigError  # noqa: E402
from getok.rl.grpo_config import load_grpo_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GRID = "grid_offset:n=8,r=1,step=0.5"
SPEC = "polygon:vertex=grid_offset,eps=0.03,holes=false,bins=1000,n=8,r=1,step=0.5,max_polygons=0"
ASK = "<image>\nOutline the object in the box {query} with a polygon."


def polygon_set(out: Path, series: int, n_scenes: int = 2) -> Path:
    """A minimal box>polygon set (the demo's format: task ``box>polygon``, kind ``mask``, the query box in
    ``truth["query"]``), plus one ``text>polygon`` sample per scene."""
    from getok.codecs.base import get_codec
    from getok.data_builders.dataset import write_dataset
    from getok.data_builders.polygons import polygon_sample
    from getok.data_builders.sample_list import SampleList, image_ref
    from getok.data_builders.scenes import generate_scenes
    from getok.geometry import Geometry
    from getok.ops.boxes import mask_to_box
    from getok.train.sections import ScenesConfig

    scfg = ScenesConfig().scene_config()
    qc = get_codec(GRID)
    samples = SampleList(settings={"codec": SPEC, "type": "box>polygon"})
    for im in generate_scenes(n_scenes, series, scfg):
        ref, needs_write = image_ref(im)
        for obj in im.objects:
            mask = obj.get_mask()
            box = [float(v) for v in mask_to_box(mask)]
            btext = qc.encode([Geometry(size=im.size, box=box)], "box")
            s = polygon_sample(mask, SPEC, sample_id=f"{im.image_id}-o{obj.id}", image_id=im.image_id, image=ref,
                               query=btext, ask=ASK)  # fmt: skip
            samples.append(dataclasses.replace(s, task="box>polygon", truth={**s.truth, "query": {"box": box}}))
        obj = im.objects[0]
        t = polygon_sample(obj.get_mask(), SPEC, sample_id=f"{im.image_id}-text", image_id=im.image_id, image=ref,
                           query=f"the {obj.category}")  # fmt: skip
        samples.append(dataclasses.replace(t, task="text>polygon"))
        if needs_write:
            samples.images[im.image_id] = im
    man = {"sources": [{"loader": "scenes", "n": n_scenes, "seed": series, "config": scfg.to_dict()}]}
    return write_dataset(samples, out, man)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("polygon-sets")
    return {"train": polygon_set(d / "train", 1), "eval": polygon_set(d / "eval", 10_000, 1)}


def poly_overrides(sets, out, *extra):
    return [
        "model.path=tiny", f"vocab.codecs={json.dumps([GRID, SPEC])}", f"output_dir={out}",
        "data.tasks=[box>polygon,text>polygon]", f"data.codec={SPEC}", f"data.dataset={sets['train']}",
        f"eval.dataset={sets['eval']}", "eval.decoder=polygon", "reward.decoder=polygon", *extra,
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "extra, match",
    [
        (["rl.stage=2"], "polygon answers train in stage 1"),
        (["data.tasks=[box>polygon,box>mask]"], "mixes polygon tasks"),
        ([f"data.codec={GRID}"], "need a polygon codec"),
        (["data.dataset=null"], "set data.dataset"),
        (["eval.dataset=null"], "set eval.dataset"),
    ],
)
def test_polygon_config_errors(extra, match, tmp_path):
    sets = {"train": tmp_path / "train", "eval": tmp_path / "eval"}
    with pytest.raises(ConfigError, match=match):
        load_grpo_config(None, poly_overrides(sets, tmp_path, *extra))
    with pytest.raises(ConfigError, match="held-out"):
        load_grpo_config(None, poly_overrides(sets, tmp_path, f"eval.dataset={sets['train']}"))


def test_polygon_config_surface():
    cfg = load_grpo_config(REPO / "configs/grpo/tiny-cpu-polygon.yaml")
    assert cfg.reward_task == "polygon" and cfg.rl.stage == 1 and cfg.reward.polygon.envelope == "any"
    assert cfg.reward.reward_config().polygon == cfg.reward.polygon
    bare = load_grpo_config(None, ["eval.enabled=false", "data.dataset=x", "data.tasks=[box>polygon]"])
    assert bare.reward_task == "polygon" and bare.data.codec is None  # the model's first polygon codec
    for stage in (1, 2):  # the mask runs keep their reward
        assert load_grpo_config(REPO / f"configs/grpo/tiny-cpu-stage{stage}.yaml").reward_task == f"stage{stage}"


# ---------------------------------------------------------------------------------------------- truth / reward
def test_polygon_truth_scores_the_reference_and_refuses_malformed(sets, tmp_path):
    from getok.answers import extract_answer
    from getok.codecs.base import get_codec
    from getok.data_builders.dataset import read_dataset
    from getok.decoding.raster import raster_mask
    from getok.ops.boxes import mask_to_box
    from getok.ops.masks import rle_encode
    from getok.rl.grpo import reward_functions
    from getok.rl.grpo_policy import sample_truth

    cfg = load_grpo_config(None, poly_overrides(sets, tmp_path))
    ds = read_dataset(sets["train"])
    (fn,) = reward_functions(cfg, ds.manifest)
    assert fn.__name__ == "getok_polygon"
    s = ds.samples[0]
    truth = sample_truth(s, cfg.reward_task, None)
    assert json.loads(truth)["task"] == "polygon" and json.loads(truth)["codec"] == SPEC
    ref = extract_answer(s.answer)
    r = fn([ref, ref[: len(ref) // 2] + "<g8_r0", "none"], truth=[truth] * 3)
    good, bad, none = fn.last_scores
    # the reference outline is simplified (eps 0.03) and its vertices quantised to the 8-grid's offsets: on
    # these 112-px scenes its IoU with the object's mask is 0.55-0.76 (the codec's ceiling), not 1
    assert good["invalid"] == 0.0 and good["mask_iou"] > 0.5 and good["centroid"] > 0.9 and r[0] > 0.7
    assert bad["invalid"] == 1.0 and r[1] == 0.0 and none["mask_iou"] == 0.0 and r[2] < r[0]
    # against the raster of the reference polygon itself the reference scores the maximum, 1.0
    m = raster_mask(get_codec(SPEC).decode(ref, s.size, "mask")[0])
    exact = dataclasses.replace(s, truth={**s.truth, "masks": [rle_encode(m)], "boxes": [mask_to_box(m).tolist()]})
    assert fn([ref], truth=[sample_truth(exact, "polygon", None)]) == [1.0]


def test_mask_paths_are_unchanged(tmp_path):
    """Stage-1 / stage-2 rows, packed truths and rewards as before polygon runs existed (digests pinned on the
    commit before; a deliberate change of the scene builder or a codec moves them)."""
    from getok.answers import extract_answer
    from getok.data_builders.dataset import read_dataset
    from getok.rl.grpo import reward_functions
    from getok.rl.grpo_policy import build_prompt_data, grpo_rows
    from getok.rl.stage2 import fallback_proposal, oracle_refinement_answer, truth_masks
    from getok.vocab.layout import VocabLayout

    want = {
        1: (16, "c666a97ea97790d1", [0.856494] * 2 + [0.202726] * 2 + [0.856494] * 12 + [0.0] * 16),
        2: (8, "8f553aed82a4daf2", [1.0] * 8 + [0.0] * 8),
    }
    for stage in (1, 2):
        d = tmp_path / f"s{stage}"
        cfg = load_grpo_config(REPO / f"configs/grpo/tiny-cpu-stage{stage}.yaml",
                               ["data.scenes.n=3", f"output_dir={d}"])  # fmt: skip
        layout = VocabLayout.from_codecs(cfg.vocab.codecs)
        spec = layout.codecs[0]
        ds = read_dataset(build_prompt_data(cfg, spec, d / "data"))
        rows = grpo_rows(ds, cfg.reward_task, layout.hash)
        truths = list(rows["truth"])
        assert all(json.loads(t)["task"] == f"stage{stage}" for t in truths)
        prompts = [json.dumps(p, sort_keys=True) for p in rows["prompt"]]
        (fn,) = reward_functions(cfg, ds.manifest)
        assert fn.__name__ == f"getok_stage{stage}"
        kw = {"truth": truths * 2, "images": list(rows["images"]) * 2}
        if stage == 1:
            comps = [extract_answer(s.answer) for s in ds.samples] + ["junk"] * len(ds)
        else:
            props = [fallback_proposal(s, spec, k=3, seed=7) for s in ds.samples]
            kw["proposal"] = props * 2
            oracle = [oracle_refinement_answer(p, truth_masks(s), spec, s.size) for p, s in zip(props, ds.samples)]
            comps = oracle + props  # the oracle refinements, then the cells themselves (no offsets: invalid)
        r = [round(x, 6) for x in fn(comps, **kw)]
        digest = hashlib.sha256(json.dumps([truths, prompts, list(rows["sample_id"])]).encode()).hexdigest()[:16]
        assert (len(truths), digest, r) == want[stage], stage


# ---------------------------------------------------------------------------------------------- evaluation
def test_polygon_eval_headline_reports_tokens_per_object(sets, tmp_path):
    from getok.answers import extract_answer
    from getok.data_builders.dataset import read_dataset
    from getok.eval.runner import evaluate
    from getok.rl.grpo_eval import eval_headline

    ds = read_dataset(sets["eval"])
    ref = {s.sample_id: extract_answer(s.answer) for s in ds.samples}

    def oracle(samples, **kw):
        return [ref[s.sample_id] for s in samples]

    summary = evaluate(None, None, str(sets["eval"]), decoder="polygon", out_dir=str(tmp_path / "ev"),
                       generate_fn=oracle, resume=False, progress=False)  # fmt: skip
    head = eval_headline(summary, 1, "polygon")
    assert head["n"] == len(ds) and head["invalid_rate"] == 0.0 and head["mIoU"] > 0.5
    assert head["tokens_per_object"] == summary["overall"]["tokens_per_object"] > 5
    assert set(head["per_task"]) == {"box>polygon", "text>polygon"}
    assert all(v["tokens_per_object"] > 5 for v in head["per_task"].values())
    assert "tokens_per_object" not in eval_headline(summary, 1)  # mask runs report what they did


def test_polygon_grpo_two_steps_with_eval_curve(sets, tmp_path):
    from getok.rl.grpo import run_grpo
    from getok.train.callbacks import read_metrics

    out = tmp_path / "run"
    cfg = load_grpo_config(None, poly_overrides(sets, out, *[
        "tuning.mode=full", "rl.beta=0.0", "train.max_steps=2", "train.save_steps=2", "train.torch_threads=1",
        "rl.prompts_per_step=2", "rl.num_generations=2", "rl.max_completion_length=8", "eval.max_new_tokens=8",
        "eval.every_steps=1", "eval.limit=2", "eval.batch_size=2", "data.num_samples=4",
    ]))  # fmt: skip
    s = run_grpo(cfg, progress=False)
    assert s["train"]["steps"] == 2 and s["reward_task"] == "polygon" and s["codec"] == SPEC
    recs = [r for r in read_metrics(out / "metrics.jsonl") if "reward" in r]
    assert len(recs) == 2
    for r in recs:
        assert 0.0 <= r["getok_polygon/overall"] <= 1.0 and 0.0 <= r["getok_polygon/invalid"] <= 1.0
        assert math.isfinite(r["getok_polygon/mask_iou"])
    rows = [json.loads(x) for x in (out / "eval_curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in [*rows, s["eval_before"], s["eval_after"]]:
        assert row["n"] == 2 and {"mIoU", "invalid_rate", "tokens_per_object", "tokens_per_sample"} <= set(row)
        assert 0.0 <= row["mIoU"] <= 1.0 and row["tokens_per_sample"] is not None
    assert s["eval_after"]["mIoU"] == rows[-1]["mIoU"]  # the same policy at step 2
