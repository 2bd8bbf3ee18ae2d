"""Training data: mixture pools and weights, layout checks, image / length filtering (counted, never truncated)."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest

from getok.errors import ConfigError, DataError, LayoutMismatchError
from getok.train.config import load_sft_config
from getok.train.data import (
    build_mixture,
    check_dataset_layout,
    mix_pools,
    prepare_examples,
    sample_lengths,
)

CODEC = "grid_offset:n=8,r=1,step=0.5"


def _pool(prefix, n):
    return [SimpleNamespace(sample_id=f"{prefix}{i}") for i in range(n)]


def test_mix_pools_follows_weights_repeats_small_pools_with_unique_ids():
    pools = {"big": _pool("b", 1000), "small": _pool("s", 7)}
    out = mix_pools(pools, {"big": 3, "small": 1}, 400, seed=1)
    ids = [s.sample_id for s in out]
    assert len(out) == 400 and len(set(ids)) == 400
    assert sum(i.startswith("s") for i in ids) == 100
    assert {i.split("#r")[0] for i in ids if i.startswith("s")} == {f"s{i}" for i in range(7)}  # every one used
    assert [s.sample_id for s in mix_pools(pools, {"big": 3, "small": 1}, 400, seed=1)] == ids  # deterministic
    assert pools["small"][0].sample_id == "s0"  # repeats are copies: the pool is untouched


def test_mix_pools_rejects_an_empty_entry():
    with pytest.raises(DataError, match="produced no samples"):
        mix_pools({"a": _pool("a", 3), "b": []}, {"a": 1, "b": 1}, 10)


@pytest.fixture(scope="module")
def small_mixture(tmp_path_factory):
    cfg = load_sft_config(
        None,
        [
            "vocab.codecs=[grid_offset:n=8, polygon]",
            "data.scenes.n=12",
            "data.num_samples=90",
            "data.mixture=[{type: tasks, weight: 2, tasks: [text>mask, box>mask]}, {type: offsets, weight: 1, k: 4},"
            " {type: polygons, codec: polygon, weight: 1}]",
        ],
    )
    out = tmp_path_factory.mktemp("mix") / "train"
    build_mixture(cfg.data, cfg.vocab.codecs, out, seed=0, progress=False)
    return cfg, out


def test_build_mixture_writes_a_dataset_with_the_weighted_entries(small_mixture):
    from getok.data_builders.dataset import read_dataset

    cfg, out = small_mixture
    ds = read_dataset(out)
    assert len(ds) == 90
    per_task = ds.manifest["counts"]["per_task"]
    assert per_task["refine"] == 23 or per_task["refine"] == 22  # 1/4 of 90
    assert per_task["polygon"] in (22, 23)
    assert per_task["text>mask"] + per_task["box>mask"] == 45
    assert sorted(ds.manifest["codecs"]) == sorted(cfg.vocab.codecs)
    refine = next(s for s in ds if s.task == "refine")
    assert len(refine.turns) == 2 and refine.turns[1].assistant.count("<") == 4  # k = 4 labels


def test_offsets_entry_with_tasks_asks_the_task_question(tmp_path):
    from getok.data_builders.dataset import read_dataset

    cfg = load_sft_config(
        None,
        [
            "data.scenes.n=8",
            "data.num_samples=20",
            "data.mixture=[{type: offsets, tasks: [point>mask], ks: [1, 2], anchor: true}]",
        ],
    )
    out = build_mixture(cfg.data, cfg.vocab.codecs, tmp_path / "train", seed=0, progress=False)
    ds = read_dataset(out)
    assert len(ds) == 20
    for s in ds:
        assert s.task == "refine" and s.meta["ask"] == "point>mask" and s.meta["k"] in (1, 2)
        assert "<off_" in s.turns[0].user  # the point question, not "Segment {query}."
        assert s.meta["anchor"]["cell"] in s.truth["proposal_cells"]
    with pytest.raises(ConfigError, match="among"):
        load_sft_config(None, ["data.mixture=[{type: offsets, tasks: [text>box]}]"])
    with pytest.raises(ConfigError, match="ks"):
        load_sft_config(None, ["data.mixture=[{type: offsets, tasks: [point>mask], ks: [0]}]"])


def test_build_mixture_reuses_same_settings_and_refuses_others(small_mixture):
    cfg, out = small_mixture
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert build_mixture(cfg.data, cfg.vocab.codecs, out, seed=0, progress=False) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="other settings"):
        build_mixture(cfg.data, cfg.vocab.codecs, out, seed=1, progress=False)


def test_dataset_entry_with_another_vocabulary_fails_before_training(small_mixture, tmp_path):
    cfg, out = small_mixture
    man = json.loads((out / "manifest.json").read_text())
    check_dataset_layout(man, cfg.vocab.codecs)  # same codecs
    check_dataset_layout(man, [*cfg.vocab.codecs, "bins"])  # a superset of the dataset's codecs is fine
    with pytest.raises(LayoutMismatchError, match=r"not in the model's vocabulary: \['grid_offset:n=8,r=1,step=0.5'\]"):
        check_dataset_layout(man, ["grid_offset:n=16,r=1,step=0.5", "polygon"])
    bad = load_sft_config(None, ["vocab.codecs=[grid:n=8]", f"data.mixture=[{{type: dataset, path: '{out}'}}]"])
    with pytest.raises(LayoutMismatchError, match="does not match the model's layout"):
        build_mixture(bad.data, bad.vocab.codecs, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_sample_lengths_equal_the_processor_token_count(tiny_with_vocab, small_mixture):
    from PIL import Image

    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.export import trl_messages

    _, processor, _ = tiny_with_vocab
    ds = read_dataset(small_mixture[1])
    samples = [next(s for s in ds if s.task == t) for t in ("refine", "polygon", "text>mask")]
    msgs = [trl_messages(s) for s in samples]
    imgs = [Image.open(ds.image_path(s)).convert("RGB") for s in samples]
    got = sample_lengths(processor, msgs, [[(im.height, im.width)] for im in imgs])
    for m, im, n in zip(msgs, imgs, got):
        text = processor.apply_chat_template(m, tokenize=False)
        ids = processor(text=[text], images=[im], return_tensors="np")["input_ids"][0]
        assert len(ids) == n


def test_prepare_examples_counts_unreadable_images_and_drops_long_samples(tiny_with_vocab, small_mixture, tmp_path):
    import shutil

    from getok.data_builders.dataset import read_dataset

    _, processor, _ = tiny_with_vocab
    src = small_mixture[1]
    data = tmp_path / "copy"
    shutil.copytree(src, data)
    ds = read_dataset(data)
    victim = ds.samples[0].image
    (data / victim).write_bytes(b"not a png")
    n_victim = sum(s.image == victim for s in ds)

    ex, stats = prepare_examples(data, processor, max_length=10_000)
    assert stats.image_errors == n_victim and stats.too_long == 0
    assert len(ex) == stats.kept == len(ds) - n_victim
    row = ex[0]
    assert set(row) == {"messages", "images"} and row["images"][0].size == (112, 112)

    lengths = sorted(sample_lengths(processor, [r["messages"] for r in ex], [[(112, 112)]] * len(ex)).tolist())
    cut = lengths[len(lengths) // 2]
    ex2, stats2 = prepare_examples(data, processor, max_length=cut)
    assert stats2.too_long == sum(v > cut for v in lengths) > 0
    assert stats2.longest_kept <= cut
    assert any("too long" in d["reason"] for d in stats2.examples_dropped)
    # kept conversations are whole: every assistant answer is the dataset's answer, untruncated
    answers = {s.answer for s in ds}
    assert all(r["messages"][-1]["content"][0]["text"] in answers for r in ex2)
    with pytest.raises(DataError, match="no usable training sample"):
        prepare_examples(data, processor, max_length=5)


def test_eval_set_is_disjoint_from_training_scenes(tmp_path):
    from getok.data_builders.dataset import read_dataset
    from getok.train.data import build_eval_set

    cfg = load_sft_config(None, ["eval.n_scenes=3", "data.scenes.n=3"])
    ev = read_dataset(build_eval_set(cfg.eval, cfg.data, CODEC, tmp_path / "ev"))
    assert {s.task for s in ev} == set(cfg.eval.tasks)
    assert all(s.image_id.startswith("scene-10000-") for s in ev)
    assert np.all([s.codec == CODEC for s in ev])


def test_last_turn_loss_trains_the_refinement_not_the_noisy_proposal(tiny_with_vocab, small_mixture):
    """TRL's assistant-only loss labels every assistant turn; ``loss_turns: last`` keeps the final answer only."""
    from PIL import Image
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.export import trl_messages
    from getok.train.sft import LastTurnCollator

    _, processor, _ = tiny_with_vocab
    ds = read_dataset(small_mixture[1])
    refine = next(s for s in ds if s.task == "refine" and len(s.turns) == 2)
    single = next(s for s in ds if s.task == "box>mask")
    examples = [
        {"messages": trl_messages(s), "images": [Image.open(ds.image_path(s)).convert("RGB")]} for s in (refine, single)
    ]
    inner = DataCollatorForVisionLanguageModeling(processor=processor, assistant_only_loss=True)
    everything = inner(copy.deepcopy(examples))["labels"]
    last = LastTurnCollator(inner)(copy.deepcopy(examples))["labels"]

    def text(labels_row):
        return processor.tokenizer.decode(labels_row[labels_row != -100].tolist())

    # all turns: the proposal (turn 1) and the refinement (turn 2) are both learned
    assert refine.turns[0].assistant in text(everything[0]) and refine.turns[1].assistant in text(everything[0])
    # last turn: only the refinement
    assert refine.turns[1].assistant in text(last[0]) and refine.turns[0].assistant not in text(last[0])
    # a one-turn sample is unchanged
    assert (last[1] == everything[1]).all()


def test_loss_turns_is_validated():
    with pytest.raises(ConfigError, match="loss_turns"):
        load_sft_config(None, ["train.loss_turns=first"])
