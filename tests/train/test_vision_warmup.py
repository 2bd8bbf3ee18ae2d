"""The synthetic vision warm-up: per-token targets, what it trains (only the vision tower), that it learns."""

from __future__ import annotations

import numpy as np
import pytest

from getok.data_builders.scenes import PALETTE, SHAPES, SceneConfig, generate_scenes
from getok.train.config import VisionWarmupConfig
from getok.train.vision_warmup import token_targets

SPEC = "grid_offset:n=8,r=1,step=0.5"


def test_token_targets_read_the_object_under_each_token_centre():
    scenes = generate_scenes(6, seed=3, cfg=SceneConfig(min_objects=2, max_objects=3))
    for s in scenes:
        t = token_targets(s, (8, 8), 8, list(PALETTE), list(SHAPES))
        lm = s.meta["label_map"]
        for k in range(64):
            r, c = divmod(k, 8)
            lab = lm[int((r + 0.5) * 14), int((c + 0.5) * 14)]
            assert t["object"][k] == (lab > 0) and t["cell"][k] == k
            if lab > 0:
                o = s.objects[lab - 1]
                assert t["colour"][k] == 1 + list(PALETTE).index(o.attributes["color"])
                assert t["shape"][k] == 1 + list(SHAPES).index(o.category)
            else:
                assert t["colour"][k] == t["shape"][k] == 0
        # a coarser token grid (4 x 4 tokens over an 8-grid): each token names the cell under its centre
        coarse = token_targets(s, (4, 4), 8, list(PALETTE), list(SHAPES))
        assert coarse["cell"].tolist() == [(2 * r + 1) * 8 + (2 * c + 1) for r in range(4) for c in range(4)]


def test_warm_up_trains_only_the_vision_tower_and_learns_its_targets():
    import torch

    from getok.train.vision_warmup import warm_up_vision
    from getok.vocab import add_spatial_tokens, make_tiny_model
    from getok.vocab.tiny import TinyModelConfig

    model, proc = make_tiny_model(TinyModelConfig(num_layers=1))
    layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
    thw = proc.image_processor(images=[np.zeros((112, 112, 3), np.uint8)], return_tensors="np")["image_grid_thw"]
    assert (thw[0, 1:] // proc.image_processor.merge_size).tolist() == [8, 8]  # one image token per answer cell
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    scenes = generate_scenes(64, seed=0, cfg=SceneConfig(min_objects=1, max_objects=3))
    stats = warm_up_vision(model, proc, layout, scenes, VisionWarmupConfig(steps=120, batch_size=16), progress=False)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("visual" in k for k in changed)  # the language model and its rows are untouched
    assert any("pos_embed" in k for k in changed) and any("merger" in k for k in changed)
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    # learned beyond the trivial answers: colour / shape beyond "always background" (~0.8 of tokens), and
    # object tokens name their own cell far above chance (1 / 64)
    obj_share = np.mean([token_targets(s, (8, 8), 8, stats["colours"], stats["shapes"])["object"].mean() for s in scenes])
    assert stats["colour_acc"] > 1 - obj_share + 0.5 * obj_share, stats
    assert stats["cell_acc"] > 0.3, stats
    assert stats["loss_last"] < stats["loss_first"] - 1.0, stats
    assert stats["word_acc"] is None  # word alignment is off by default


def test_word_alignment_makes_object_tokens_resemble_their_words():
    import torch
    import torch.nn.functional as F

    from getok.train.vision_warmup import warm_up_vision, word_row
    from getok.vocab import add_spatial_tokens, make_tiny_model
    from getok.vocab.tiny import TinyModelConfig

    model, proc = make_tiny_model(TinyModelConfig(num_layers=1))
    layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
    rows_before = model.get_input_embeddings().weight.detach().clone()
    scenes = generate_scenes(64, seed=0, cfg=SceneConfig(min_objects=1, max_objects=3))
    stats = warm_up_vision(model, proc, layout, scenes, VisionWarmupConfig(steps=120, batch_size=16, words=1.0),
                           progress=False)  # fmt: skip
    assert torch.equal(model.get_input_embeddings().weight, rows_before)  # the words' rows are read, not trained
    # 2 x ~10 candidate words: chance is ~0.1; the object tokens name their colour and shape by similarity
    assert stats["word_acc"] > 0.5, stats
    # and independently of the warm-up's own bookkeeping: the token under an object's centre is closer to
    # its colour word than to the other colours' words, for most objects
    emb = model.get_input_embeddings().weight.detach().float()
    words = F.normalize(torch.stack([word_row(proc.tokenizer, emb, c) for c in stats["colours"]]), dim=-1)
    hits = total = 0
    model.eval()
    with torch.no_grad():
        for s in generate_scenes(20, seed=99, cfg=SceneConfig(min_objects=1, max_objects=3)):
            enc = proc.image_processor(images=[s.get_image()], return_tensors="pt")
            out = model.get_image_features(pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"])
            x = torch.cat(list(getattr(out, "pooler_output", out))).float()
            t = token_targets(s, (8, 8), 8, stats["colours"], stats["shapes"])
            for k in np.flatnonzero(t["colour"] > 0):
                total += 1
                hits += int((F.normalize(x[k], dim=-1) @ words.T).argmax()) == int(t["colour"][k]) - 1
    assert total > 20 and hits / total > 0.5, (hits, total)


def test_a_vocabulary_without_grid_tokens_warms_up_on_appearance_only(caplog):
    from getok.errors import ConfigError
    from getok.train.vision_warmup import warm_up_vision
    from getok.vocab import add_spatial_tokens, make_tiny_model
    from getok.vocab.tiny import TinyModelConfig

    model, proc = make_tiny_model(TinyModelConfig(num_layers=1))
    layout = add_spatial_tokens(proc, model, ["bins:bins=32"])
    before = {k: v.clone() for k, v in model.state_dict().items() if "visual" in k}
    with caplog.at_level("WARNING", logger="getok.train.vision_warmup"):
        st = warm_up_vision(model, proc, layout, generate_scenes(2, 0), VisionWarmupConfig(steps=2, batch_size=2),
                            progress=False)  # fmt: skip
    assert st["cell_acc"] is None and "no grid codec" in st["align_skipped"] and "cell alignment skipped" in caplog.text
    assert any(not np.array_equal(before[k].numpy(), v.numpy()) for k, v in model.state_dict().items() if k in before)
    with pytest.raises(ConfigError, match="vision_warmup.lr"):
        VisionWarmupConfig(lr=float("nan"))


def test_warmup_thread_count_is_checked():
    from getok.errors import ConfigError
    from getok.train.config import load_sft_config

    assert load_sft_config(None, []).vision_warmup.torch_threads is None  # every usable core
    with pytest.raises(ConfigError, match="torch_threads"):
        load_sft_config(None, ["vision_warmup.torch_threads=0"])


def test_warmup_runs_by_default_only_for_the_tiny_model():
    from getok.train.config import TINY_WARMUP_STEPS, ModelConfig, load_sft_config

    cfg = load_sft_config(None, [])
    assert cfg.vision_warmup.steps is None and cfg.vision_warmup.steps_for(cfg.model) == TINY_WARMUP_STEPS > 0
    assert cfg.vision_warmup.steps_for(ModelConfig(path="/models/qwen2.5-vl-7b")) == 0
    assert load_sft_config(None, ["vision_warmup.steps=0"]).vision_warmup.steps_for(cfg.model) == 0


def test_the_warmed_base_is_written_once_and_guarded(tmp_path):
    import torch

    from getok.errors import DataError
    from getok.train.config import load_sft_config
    from getok.train.sft import prepare_base, prepare_warm_base

    ov = [f"output_dir={tmp_path}", "vision_warmup.steps=2", "vision_warmup.batch_size=2", "data.scenes.n=4",
          "vision_warmup.torch_threads=2"]  # fmt: skip
    cfg = load_sft_config(None, ov)
    base = prepare_base(cfg, tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        warm = prepare_warm_base(cfg, base, tmp_path, progress=False)
        assert torch.get_num_threads() == 1  # the warm-up's own thread count is restored for SFT
    finally:
        torch.set_num_threads(before)
    assert warm == tmp_path / "base-warm" and (warm / "getok_vision_warmup.json").is_file()
    mtime = (warm / "getok_vision_warmup.json").stat().st_mtime_ns
    assert prepare_warm_base(cfg, base, tmp_path, progress=False) == warm  # reused, not redone
    assert (warm / "getok_vision_warmup.json").stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="other settings"):
        prepare_warm_base(load_sft_config(None, [*ov, "vision_warmup.lr=1e-3"]), base, tmp_path, progress=False)
    assert prepare_warm_base(load_sft_config(None, [*ov, "vision_warmup.steps=0"]), base, tmp_path) == base


def test_move_targets_are_the_refinement_of_each_cell_centre():
    from getok.data_builders.offset_bands import BandConfig, label_points
    from getok.errors import ConfigError

    scenes = generate_scenes(6, seed=5, cfg=SceneConfig(min_objects=2, max_objects=3))
    seen = set()
    for s in scenes:
        t = token_targets(s, (8, 8), 8, list(PALETTE), list(SHAPES), moves=(1, 0.5))
        union = np.zeros(s.size, bool)
        for o in s.objects:
            union |= o.get_mask()
        for k in range(64):
            r, c = divmod(k, 8)
            x, y = (c + 0.5) * 14, (r + 0.5) * 14
            cls = int(t["move"][k])
            seen.add(cls)
            if union[int(y), int(x)]:
                assert cls == 4  # on an object: keep <off_0_0>
            lab = label_points(union, [[x, y]], 8, 1, 0.5, BandConfig(inside_steps=0))
            if lab.deleted[0]:
                assert cls == 9
            else:  # the move lands on an object
                dx, dy = cls % 3 - 1, cls // 3 - 1
                assert union[int(y + dy * 7), int(x + dx * 7)] or (dx, dy) == (0, 0)
    assert {4, 9} <= seen and len(seen) > 3  # keep, delete and some moves
    with pytest.raises(ConfigError, match="one image token per answer cell"):
        token_targets(scenes[0], (4, 4), 8, list(PALETTE), list(SHAPES), moves=(1, 0.5))
    # without moves the targets are what they were
    assert "move" not in token_targets(scenes[0], (8, 8), 8, list(PALETTE), list(SHAPES))


def test_the_move_head_learns_and_leaves_the_other_targets_as_they_were():
    import torch

    from getok.train.vision_warmup import warm_up_vision
    from getok.vocab import add_spatial_tokens, make_tiny_model
    from getok.vocab.tiny import TinyModelConfig

    scenes = generate_scenes(64, seed=0, cfg=SceneConfig(min_objects=1, max_objects=3))
    runs = {}
    for moves in (0.0, 1.0):
        model, proc = make_tiny_model(TinyModelConfig(num_layers=1))
        layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
        stats = warm_up_vision(model, proc, layout, scenes, VisionWarmupConfig(steps=60, batch_size=16, moves=moves),
                               progress=False)  # fmt: skip
        runs[moves] = (stats, {k: v.clone() for k, v in model.state_dict().items()})
    off, on = runs[0.0][0], runs[1.0][0]
    assert "move_acc" not in off
    # the majority class (delete: far from every object) is ~0.6 of the cells; the head beats it
    majority = np.mean([np.mean(token_targets(s, (8, 8), 8, on["colours"], on["shapes"], moves=(1, 0.5))["move"] == 9)
                        for s in scenes])  # fmt: skip
    assert on["move_acc"] > majority + 0.05, (on["move_acc"], majority)
    assert not torch.equal(runs[0.0][1]["model.visual.merger.linear_fc2.weight"],
                           runs[1.0][1]["model.visual.merger.linear_fc2.weight"])  # fmt: skip
    with pytest.raises(Exception, match="grid_offset"):
        model, proc = make_tiny_model(TinyModelConfig(num_layers=1))
        layout = add_spatial_tokens(proc, model, ["grid:n=8"], init="2d")
        warm_up_vision(model, proc, layout, scenes[:4], VisionWarmupConfig(steps=1, batch_size=2, moves=1.0),
                       progress=False)  # fmt: skip
