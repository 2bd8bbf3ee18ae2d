"""``getok tiny-model init`` / ``getok vocab add | resize-grid | resize-offsets | show`` end to end."""

from __future__ import annotations

import pytest

from getok.vocab.cli import main


def test_cli_round_trip(tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from getok.vocab import VocabLayout

    tiny, g4, g8, r2 = (tmp_path / d for d in ("tiny", "g4", "g8", "r2"))
    assert main(["tiny-model", "init", str(tiny), "--vision-depth", "1", "--fullatt", "3"]) == 2
    assert "fullatt_block_indexes" in capsys.readouterr().err
    assert not tiny.exists()
    assert main(["tiny-model", "init", str(tiny), "--layers", "1", "--vision-depth", "1", "--tied", "--hidden", "128"]) == 0
    assert "tiny qwen3_vl written" in capsys.readouterr().out
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert model.config.tie_word_embeddings and model.config.text_config.num_hidden_layers == 1
    assert model.config.vision_config.patch_size == 7
    assert model.config.text_config.rope_parameters["mrope_section"] == [4, 6, 6]
    q25 = tmp_path / "q25"
    assert main(["tiny-model", "init", str(q25), "--family", "qwen2_5_vl", "--patch", "14", "--layers", "1",
                 "--vision-depth", "1"]) == 0
    m25 = AutoModelForImageTextToText.from_pretrained(q25)
    assert type(m25).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert list(m25.config.vision_config.fullatt_block_indexes) == [0]

    assert main(["vocab", "resize-grid", "--model", str(tiny), "--new-n", "8", "--out", str(g8)]) == 2
    assert "no getok_layout.json" in capsys.readouterr().err
    assert main(["vocab", "add", "--model", str(tiny), "--codec", "grid_offset:n=4,r=1,step=0.5",
                 "--init", "2d", "--out", str(g4)]) == 0
    assert main(["vocab", "resize-grid", "--model", str(g4), "--new-n", "8", "--out", str(g8)]) == 0
    assert main(["vocab", "resize-offsets", "--model", str(g8), "--r", "2", "--out", str(r2)]) == 0
    layout = VocabLayout.load(r2)
    assert layout.codecs == ["grid_offset:n=8,r=2,step=0.5"]
    assert [h["op"] for h in layout.extra["history"]] == ["resize_grid", "resize_offsets"]
    proc = AutoProcessor.from_pretrained(r2)
    layout.validate(proc.tokenizer)
    m = AutoModelForImageTextToText.from_pretrained(r2)
    assert m.get_input_embeddings().weight.shape[0] == len(proc.tokenizer)
    capsys.readouterr()
    assert main(["vocab", "show", str(r2)]) == 0
    assert "layout matches the tokenizer" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["vocab", "add", "--model", str(tiny)])  # --codec and --out are required


def test_cli_builds_the_tiny_qwen3_vl_moe(tmp_path, capsys):
    from transformers import AutoConfig

    d = tmp_path / "moe"
    assert main(["tiny-model", "init", str(d), "--family", "qwen3_vl_moe", "--patch", "16", "--layers", "1",
                 "--vision-depth", "1", "--experts", "2", "--experts-per-token", "1", "--moe-intermediate", "64"]) == 0
    assert "tiny qwen3_vl_moe written" in capsys.readouterr().out
    cfg = AutoConfig.from_pretrained(d)
    assert cfg.model_type == "qwen3_vl_moe" and cfg.vision_config.patch_size == 16
    tc = cfg.text_config
    assert (tc.num_experts, tc.num_experts_per_tok, tc.moe_intermediate_size) == (2, 1, 64)
    assert main(["tiny-model", "init", str(tmp_path / "dense"), "--experts", "2"]) == 2  # dense: no experts
    assert "only family qwen3_vl_moe" in capsys.readouterr().err
