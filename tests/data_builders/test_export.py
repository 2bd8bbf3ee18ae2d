"""Dataset directories (write / read / validate), parallel builds, exports and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from getok.data_builders.cli import main as cli_main
from getok.data_builders.dataset import build_dataset, read_dataset, write_dataset
from getok.data_builders.export import export_easyr1, export_hf, export_sharegpt, export_trl, trl_messages
from getok.data_builders.scenes import generate_scenes
from getok.data_builders.tasks import TASKS, TaskConfig, build_tasks
from getok.errors import DataError, LayoutMismatchError
from getok.ops.masks import rle_decode
from getok.rl.truth import unpack_truth
from getok.samples import Sample, Turn
from getok.vocab.layout import VocabLayout

SPEC = "grid:n=16"


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(8, seed=4)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, scenes):
    res = build_tasks(scenes, SPEC, TaskConfig(tasks=TASKS, think=True))
    return write_dataset(res, tmp_path_factory.mktemp("ds") / "tasks", {"sources": [{"loader": "scenes"}]})


def test_write_read_round_trip_and_manifest(dataset_dir, scenes):
    ds = read_dataset(dataset_dir)
    man = ds.manifest
    assert man["codecs"] == [SPEC] and man["layout_hash"] == VocabLayout.from_codecs([SPEC]).hash
    assert VocabLayout.load(dataset_dir).hash == man["layout_hash"]
    assert man["counts"]["samples"] == len(ds) and man["counts"]["images"] == len(scenes)
    per_task: dict[str, int] = {}
    for s in ds:
        per_task[s.task] = per_task.get(s.task, 0) + 1
    assert man["counts"]["per_task"] == per_task and set(per_task) == set(TASKS)
    assert man["builder"]["codec"] == SPEC and man["builder"]["tasks"]["think"] is True
    assert man["sources"] == [{"loader": "scenes"}] and man["counts"]["skipped"] == len(man["skipped"])
    by_id = {s.image_id: s for s in scenes}
    for s in ds.samples[:50]:
        px = np.asarray(Image.open(ds.image_path(s)).convert("RGB"))
        assert np.array_equal(px, by_id[s.image_id].get_image())  # PNG is lossless
    read_dataset(dataset_dir, expect_layout_hash=man["layout_hash"])
    with pytest.raises(LayoutMismatchError, match="differs from the expected layout"):
        read_dataset(dataset_dir, expect_layout_hash="0" * 16)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_read_dataset_finds_tampering(dataset_dir, tmp_path):
    d = _copy(dataset_dir, tmp_path / "a")
    man = json.loads((d / "manifest.json").read_text())
    man["counts"]["samples"] += 1
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DataError, match="manifest counts"):
        read_dataset(d)
    d = _copy(dataset_dir, tmp_path / "b")
    man = json.loads((d / "manifest.json").read_text())
    man["layout_hash"] = "deadbeefdeadbeef"
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(LayoutMismatchError, match="rebuild"):
        read_dataset(d)
    d = _copy(dataset_dir, tmp_path / "c")
    next((d / "images").iterdir()).unlink()
    with pytest.raises(DataError, match="missing"):
        read_dataset(d)
    d = _copy(dataset_dir, tmp_path / "d")
    with open(d / "samples.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match="samples.jsonl:"):
        read_dataset(d)


def test_failed_write_leaves_nothing(tmp_path, scenes):
    res = build_tasks(scenes[:2], SPEC, TaskConfig(tasks=("text>mask",)))
    with pytest.raises(DataError, match="no pixels"):
        write_dataset(list(res), tmp_path / "out")  # a plain list: the pixels are not known
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())
    dup = [res[0], res[0]]
    with pytest.raises(DataError, match="duplicate sample ids"):
        write_dataset(dup, tmp_path / "out", images=res.images)
    assert not list(tmp_path.iterdir())
    clash = [res[0], Sample.from_dict({**res[1].to_dict(), "image_id": "other", "image": res[0].image})]
    with pytest.raises(DataError, match="both map to"):
        write_dataset(clash, tmp_path / "out", images=res.images)
    assert not list(tmp_path.iterdir())
    write_dataset(res, tmp_path / "out")
    with pytest.raises(DataError, match="already exists"):
        write_dataset(res, tmp_path / "out")
    write_dataset(res, tmp_path / "out", overwrite=True)
    assert len(read_dataset(tmp_path / "out")) == len(res)


def test_build_dataset_parallel_equals_serial(tmp_path):
    cfg = TaskConfig(tasks=("text>mask", "point>mask", "none>mask"))
    a = build_dataset(tmp_path / "a", SPEC, cfg, scenes=(10, 1), workers=1, chunk_size=4, progress=False)
    b = build_dataset(tmp_path / "b", SPEC, cfg, scenes=(10, 1), workers=2, chunk_size=4, progress=False)
    assert (a / "samples.jsonl").read_text() == (b / "samples.jsonl").read_text()
    ra, rb = read_dataset(a), read_dataset(b)
    assert ra.manifest["counts"] == rb.manifest["counts"]
    assert sorted(p.name for p in (a / "images").iterdir()) == sorted(p.name for p in (b / "images").iterdir())
    serial = build_tasks(generate_scenes(10, seed=1), SPEC, cfg)
    assert [s.to_dict() for s in ra] == [s.to_dict() for s in serial]


def test_build_dataset_from_files_copies_images(tmp_path, scenes):
    from getok.data_builders.scenes import write_scenes
    from getok.data_builders.sources import load_manifest

    src = write_scenes(tmp_path / "src", 4, seed=9)
    images = load_manifest(src)
    out = build_dataset(tmp_path / "ds", "text_coords", images=images, copy_images=True, progress=False)
    ds = read_dataset(out)
    assert all(not s.image.startswith("/") and (out / s.image).is_file() for s in ds)
    assert ds.manifest["sources"][0]["loader"] == "manifest"


def test_easyr1_rows_decode_back_to_the_masks(dataset_dir, scenes):
    import datasets

    out = export_easyr1(dataset_dir, dataset_dir.parent / "easyr1")
    ds = read_dataset(dataset_dir)
    rows = datasets.load_dataset("parquet", data_files=str(out / "train.parquet"), split="train")
    assert len(rows) == len(ds) == json.loads((out / "manifest.json").read_text())["export"]["rows"]
    objs = {(s.image_id, o.id): o.mask for s in scenes for o in s.objects}
    for row, s in zip(rows, ds):
        assert row["problem"].count("<image>") == 1 and len(row["images"]) == 1
        truth = json.loads(row["answer"])
        assert truth["codec"] == SPEC and truth["layout_hash"] == ds.manifest["layout_hash"]
        assert truth["size"] == list(s.size) and truth["query_task"] == s.task and truth["task"] == "stage1"
        t = unpack_truth(row["answer"])  # the reward side reads it
        assert t.n_targets == len(truth["masks"]) and t.codec == SPEC and t.kind == s.kind
        assert truth["target"] in s.answer and "<think>" not in truth["target"]
        for rle, oid in zip(truth["masks"], truth["object_ids"]):
            assert np.array_equal(rle_decode(rle), objs[(s.image_id, oid)])
        assert len(truth["boxes"]) == len(truth["masks"])
    img = np.asarray(rows[0]["images"][0].convert("RGB"))
    assert np.array_equal(img, {s.image_id: s for s in scenes}[ds.samples[0].image_id].get_image())


def test_easyr1_stage2_rows_carry_the_proposal(tmp_path, scenes):
    base = build_tasks(scenes[:1], SPEC, TaskConfig(tasks=("text>mask",)))
    s0 = base[0]
    refine = Sample(
        sample_id="r0", image_id=s0.image_id, image=s0.image, size=s0.size, task="refine", kind="mask", codec=SPEC,
        turns=[s0.turns[0], Turn(user="Refine each point.", assistant="<off_0_0>")], truth=dict(s0.truth),
    )  # fmt: skip
    d = write_dataset([refine], tmp_path / "ds", images=base.images)
    out = export_easyr1(d, tmp_path / "er1", embed_images=False)
    import pyarrow.parquet as pq

    row = pq.read_table(out / "train.parquet").to_pylist()[0]
    truth = json.loads(row["answer"])
    assert truth["proposal"] == s0.answer and truth["target"] == "<off_0_0>" and truth["task"] == "stage2"
    assert unpack_truth(row["answer"]).proposal == s0.answer
    assert truth["image"] == str((out / row["images"][0]).resolve())
    assert s0.answer in row["problem"] and row["problem"].count("<image>") == 1
    assert row["images"] == [f"images/{s0.image_id}.png"] and (out / row["images"][0]).is_file()


def test_reward_task_of_samples(scenes):
    from getok.data_builders.export import reward_task

    for spec, kind, want in [("grid:n=8", "mask", "stage1"), ("text_coords", "mask", "polygon"),
                             ("text_coords", "box", "stage1"), ("polygon", "mask", "polygon")]:  # fmt: skip
        res = build_tasks(scenes[:1], spec, TaskConfig(tasks=(f"text>{kind}",)))
        assert {reward_task(s) for s in res} == {want}


def test_trl_rows_have_one_image_entry_per_image(dataset_dir):
    import datasets

    out = export_trl(dataset_dir, dataset_dir.parent / "trl")
    ds = read_dataset(dataset_dir)
    rows = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train")
    assert len(rows) == len(ds)
    for row, s in zip(rows, ds):
        n_img = sum(c["type"] == "image" for m in row["messages"] for c in m["content"])
        assert n_img == len(row["images"]) == 1
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][1]["content"][0]["text"] == s.answer
        assert "<image>" not in json.dumps(row["messages"])
    assert row["images"][0].size == (s.size[1], s.size[0])


def test_trl_messages_multi_turn():
    s = Sample("a", "i", "x.png", (8, 8), "refine", "mask", SPEC,
               [Turn("<image>\nq1", "a1"), Turn("q2", "a2")], truth={})  # fmt: skip
    msgs = trl_messages(s)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[0]["content"][0]["type"] == "image" and msgs[0]["content"][1]["text"] == "q1"
    assert msgs[2]["content"] == [{"type": "text", "text": "q2"}]


def test_sharegpt_and_hf_exports(dataset_dir):
    import datasets

    sg = export_sharegpt(dataset_dir, dataset_dir.parent / "sharegpt")
    rows = json.loads((sg / "data.json").read_text())
    info = json.loads((sg / "dataset_info.json").read_text())
    assert info["getok"]["formatting"] == "sharegpt"
    ds = read_dataset(dataset_dir)
    assert len(rows) == len(ds)
    for r in rows:
        assert r["conversations"][0]["from"] == "human" and r["conversations"][0]["value"].count("<image>") == 1
        assert (sg / r["images"][0]).is_file() and r["image"] == r["images"][0]
    hf = export_hf(dataset_dir, dataset_dir.parent / "hf", embed_images=False)
    table = datasets.load_dataset("parquet", data_dir=str(hf / "data"), split="train")
    assert len(table) == len(ds) and set(table.column_names) >= {"image", "turns", "truth", "codec", "task"}
    assert json.loads(table[0]["truth"]) == ds.samples[0].truth
    man = json.loads((hf / "manifest.json").read_text())
    assert man["export"]["format"] == "hf" and man["layout_hash"] == ds.manifest["layout_hash"]


def test_cli_build_and_export(tmp_path, capsys):
    assert cli_main(["build", "scenes", "--n", "6", "--seed", "2", "--out", str(tmp_path / "sc"), "--quiet"]) == 0
    assert cli_main(["build", "tasks", "--data", str(tmp_path / "sc"), "--codec", "grid:n=8", "--tasks",
                     "text2mask,point>mask", "--out", str(tmp_path / "t"), "--quiet"]) == 0  # fmt: skip
    ds = read_dataset(tmp_path / "t")
    assert set(ds.manifest["counts"]["per_task"]) == {"text>mask", "point>mask"}
    assert cli_main(["build", "tasks", "--scenes", "4", "--codec", "text_coords", "--out", str(tmp_path / "t2"),
                     "--think", "--quiet"]) == 0  # fmt: skip
    assert cli_main(["build", "tasks", "--scenes", "3", "--codec", "grid:n=8", "--greedy", "exact", "--tasks",
                     "text2mask", "--out", str(tmp_path / "g"), "--quiet"]) == 0  # fmt: skip
    assert len(read_dataset(tmp_path / "g")) > 0
    assert cli_main(["export", "sft", "--data", str(tmp_path / "t"), "--out", str(tmp_path / "sft"), "--quiet"]) == 0
    from getok.cli.main import main as getok_main

    assert getok_main(["rl", "export-easyr1", "--stage", "1", "--data", str(tmp_path / "t"), "--out", str(tmp_path / "e"),
                       "--quiet"]) == 0  # fmt: skip
    with pytest.raises(SystemExit):  # one EasyR1 exporter: `getok rl export-easyr1`
        getok_main(["export", "easyr1", "--data", str(tmp_path / "t"), "--out", str(tmp_path / "e2")])
    capsys.readouterr()
    assert cli_main(["export", "sharegpt", "--data", str(tmp_path / "t2"), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "e" / "train.parquet").is_file() and (tmp_path / "sft" / "manifest.json").is_file()
    # errors are messages with exit status 2, and leave no output behind
    assert (
        cli_main(["build", "tasks", "--data", str(tmp_path / "t"), "--codec", "grid", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "not an image manifest" in capsys.readouterr().err
    assert cli_main(["build", "tasks", "--scenes", "2", "--codec", "nope", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


