"""The family matrix: every VLM family of :mod:`getok.vocab.families`, built tiny from its config, through
getok's whole path.

One test per family runs every step in order and records each cell (``pass`` or the one-line reason):

``tokens``    add the spatial tokens: old embedding / head rows bit-identical, every token non-special, one id;
``lora``      LoRA setup: adapters on the language model only, new rows trainable, vision tower / projector frozen;
``full``      full setup with ``train_vision=false, train_merger=false``: exactly the language model trains;
``sft_lora``  6 real SFT steps through :func:`getok.train.sft.run_sft` (the ``getok train sft`` path) with
              LoRA (rank 8) + trainable new rows: the loss falls;
``sft``       the same with full fine-tuning (vision tower frozen, the tiny recipe's default): the loss falls;
              later steps start from this checkpoint;
``generate``  free and grammar-constrained generation (:func:`getok.eval.generate.generate_answers`, batch 3);
``decode``    the constrained answers decoded by the codec and rasterised to a mask of the image's size;
``grpo1``     one GRPO stage-1 step (:func:`getok.rl.grpo.run_grpo`) from the SFT checkpoint;
``grpo2``     one GRPO stage-2 step (two-turn rollouts from the policy's own proposals) from stage 1's checkpoint.

PaliGemma is refused at start (no chat template): its row is that one line. With ``GETOK_FAMILY_MATRIX_DIR``
set, each family's cells are written there as JSON (``benchmarks/family_matrix.py`` runs this file and renders
the README table from them). About 10 s per family on the 2-core CPU.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")

from getok.errors import GetokError  # noqa: E402
from getok.vocab.families import FAMILIES, SUPPORTED_FAMILIES  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPEC = "grid_offset:n=8,r=1,step=0.5"
STEPS = ("tokens", "lora", "full", "sft_lora", "sft", "generate", "decode", "grpo1", "grpo2")
#: steps that need an earlier step's output
NEEDS = {"generate": "sft", "decode": "generate", "grpo1": "sft", "grpo2": "grpo1"}

SFT_FAST = [
    "vision_warmup.steps=0", "data.scenes.n=8", "data.num_samples=32", "train.batch_size=4", "train.lr=5e-3",
    "train.warmup_ratio=0", "train.scheduler=constant", "train.logging_steps=1", "eval.enabled=false",
    "train.max_steps=6", "train.save_steps=100", "train.resume=never",
]  # fmt: skip
GRPO_FAST = [
    "eval.enabled=false", "train.max_steps=1", "train.save_steps=1", "data.scenes.n=4", "rl.max_completion_length=8",
    "proposals.max_new_tokens=8", "rl.prompts_per_step=2", "rl.num_generations=2", "train.resume=never",
]  # fmt: skip


def _reason(exc: BaseException) -> str:
    """One line: the exception type and the first line of its message, cut at 160 characters."""
    msg = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {msg}"[:160]


class _Cells:
    """Runs the steps of one family, recording ``pass`` / the reason / ``not run (<step> failed)``."""

    def __init__(self, family: str):
        self.family = family
        self.cells: dict[str, str] = {}
        self.state: dict = {}

    def run(self, step: str, fn) -> None:
        need = NEEDS.get(step)
        if need and self.cells.get(need) != "pass":
            self.cells[step] = f"not run ({need} failed)"
            return
        try:
            fn(self.state)
        except Exception as exc:  # noqa: BLE001 - recorded, and the test fails on it below
            self.cells[step] = _reason(exc)
        else:
            self.cells[step] = "pass"

    def write(self) -> None:
        d = os.environ.get("GETOK_FAMILY_MATRIX_DIR")
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)
            (Path(d) / f"{self.family}.json").write_text(json.dumps({"family": self.family, "cells": self.cells}))


# ------------------------------------------------------------------------------------------------ steps
def _load(base):
    from getok.vocab import load_model_and_processor

    return load_model_and_processor(base)


def _step_tokens(base):
    def run(st):
        import torch

        from getok.vocab import add_spatial_tokens

        model, proc = _load(base)
        tok = proc.tokenizer
        e0 = model.get_input_embeddings().weight.detach().clone()
        h0 = model.get_output_embeddings().weight.detach().clone()
        n0 = len(tok)
        layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
        assert min(layout.ids) >= n0 and len(layout.ids) == len(layout.tokens) == 74
        assert torch.equal(model.get_input_embeddings().weight[:n0], e0[:n0]), "old embedding rows changed"
        assert torch.equal(model.get_output_embeddings().weight[:n0], h0[:n0]), "old head rows changed"
        added = tok.added_tokens_decoder
        for t, i in zip(layout.tokens, layout.ids):
            assert tok.encode(t, add_special_tokens=False) == [i], t
            assert not added[i].special, f"{t} is special"
        st["tokens"] = len(layout.tokens)

    return run


def _parts(model):
    from getok.vocab.adapters import adapter_for

    ad = adapter_for(model)
    return {id(p): ad.parameter_part(n, model) for n, p in model.named_parameters()}, ad


def _step_lora(base):
    def run(st):
        from getok.vocab import add_spatial_tokens, get_peft_model_for

        model, proc = _load(base)
        layout = add_spatial_tokens(proc, model, [SPEC], init="2d")
        parts, _ = _parts(model)
        pm = get_peft_model_for(model, layout, rank=4)
        trainable = {n: p for n, p in pm.named_parameters() if p.requires_grad}
        assert any("lora_A" in n for n in trainable) and any("trainable_tokens" in n for n in trainable)
        assert not [n for n, p in pm.named_parameters() if p.requires_grad and parts.get(id(p), "new") != "new"]
        lora = [n for n in trainable if "lora_" in n]
        assert lora and all(parts.get(id(p), "new") == "new" for p in trainable.values())
        frozen_vision = sum(p.numel() for p in pm.parameters() if parts.get(id(p)) in ("vision", "projector"))
        assert frozen_vision > 0
        st["lora_trainable"] = sum(p.numel() for p in trainable.values())

    return run


def _step_full(base):
    def run(st):
        from getok.vocab import add_spatial_tokens, full_finetune_setup

        model, proc = _load(base)
        add_spatial_tokens(proc, model, [SPEC], init="2d")
        counts = full_finetune_setup(model, train_vision=False, train_merger=False)
        parts, _ = _parts(model)
        by = {"language": 0, "projector": 0, "vision": 0}
        seen = set()
        for p in model.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.requires_grad:
                by[parts[id(p)]] += p.numel()
        assert by["vision"] == 0 and by["projector"] == 0, by
        assert counts["trainable"] == by["language"] > 0 and counts["frozen"] > 0
        counts = full_finetune_setup(model, train_vision=False, train_merger=True)
        assert counts["trainable"] > by["language"], "train_merger=true trains the projector"
        st["full_trainable"] = by["language"]

    return run


def _step_sft(base, out, mode: str = "full"):
    def run(st):
        from getok.train.callbacks import read_metrics
        from getok.train.config import load_sft_config
        from getok.train.sft import run_sft

        over = [f"tuning.mode={mode}"] + (["tuning.rank=8"] if mode == "lora" else [])
        cfg = load_sft_config(None, [*SFT_FAST, *over, f"model.path={base}", f"output_dir={out}"])
        summary = run_sft(cfg, progress=False)
        losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
        assert summary["train"]["steps"] == 6 and len(losses) == 6
        assert np.mean(losses[-2:]) < np.mean(losses[:2]), f"loss did not fall: {losses}"
        if mode == "full":
            st["sft_final"] = Path(summary["final"])
            st["sft_data"] = out / "data" / "train"

    return run


def _step_generate(st):
    from getok.data_builders.dataset import read_dataset
    from getok.eval.generate import generate_answers

    model, proc = _load(st["sft_final"])
    ds = read_dataset(st["sft_data"])
    samples = [s for s in ds.samples if len(s.turns) == 1][:3]
    free = generate_answers(model, proc, samples, image_root=ds.root, max_new_tokens=8, batch_size=3, progress=False)
    con = generate_answers(model, proc, samples, image_root=ds.root, max_new_tokens=8, batch_size=3, progress=False,
                           constrained=True)  # fmt: skip
    assert len(free) == len(con) == 3 and all(isinstance(a, str) for a in free)
    st["answers"] = list(zip(samples, con))
    st["image_root"] = ds.root


def _step_decode(st):
    from getok.codecs import get_codec
    from getok.decoding import get_decoder
    from getok.eval.generate import load_sample_image

    decoder = get_decoder("raster")
    for sample, answer in st["answers"]:
        res = get_codec(sample.codec).try_decode(answer, sample.size, kind=sample.kind)
        assert res.valid, f"{answer!r}: {res.error}"
        decoder.set_image(load_sample_image(sample, st["image_root"]))
        for g in res.geometries:
            mask = decoder.decode(g)
            assert mask.shape == tuple(sample.size) and mask.dtype == bool


def _step_grpo(stage: int, out):
    def run(st):
        from getok.rl.grpo import run_grpo
        from getok.rl.grpo_config import load_grpo_config
        from getok.train.callbacks import read_metrics

        start = st["sft_final"] if stage == 1 else st["grpo1_final"]
        cfg = load_grpo_config(REPO / f"configs/grpo/tiny-cpu-stage{stage}.yaml",
                               [f"model.path={start}", f"output_dir={out}", *GRPO_FAST])  # fmt: skip
        summary = run_grpo(cfg, progress=False)
        assert summary["train"]["steps"] == 1
        recs = [r for r in read_metrics(out / "metrics.jsonl") if "reward" in r]
        assert recs and all(math.isfinite(r["reward"]) and 0.0 <= r["reward"] <= 1.0 for r in recs)
        st[f"grpo{stage}_final"] = Path(summary["final"])

    return run


# ------------------------------------------------------------------------------------------------ the matrix
@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_family_through_getok(family, tmp_path):
    from getok.vocab.families import build_family_model

    base = build_family_model(family, tmp_path / "base")
    cells = _Cells(family)
    cells.run("tokens", _step_tokens(base))
    cells.run("lora", _step_lora(base))
    cells.run("full", _step_full(base))
    cells.run("sft_lora", _step_sft(base, tmp_path / "sft_lora", "lora"))
    cells.run("sft", _step_sft(base, tmp_path / "sft"))
    cells.run("generate", _step_generate)
    cells.run("decode", _step_decode)
    cells.run("grpo1", _step_grpo(1, tmp_path / "grpo1"))
    cells.run("grpo2", _step_grpo(2, tmp_path / "grpo2"))
    cells.write()
    failed = {k: v for k, v in cells.cells.items() if v != "pass"}
    assert not failed, f"{family}: {failed}"


def test_paligemma_is_refused_at_start_in_one_line(tmp_path):
    from getok.rl.grpo import run_grpo
    from getok.rl.grpo_config import load_grpo_config
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft
    from getok.vocab.families import build_family_model, make_family_model

    _, proc = make_family_model("paligemma")
    base = build_family_model("paligemma", tmp_path / "base")
    msgs = []
    for run in (
        lambda: run_sft(load_sft_config(None, [f"model.path={base}", f"output_dir={tmp_path / 'sft'}"]), progress=False),
        lambda: run_grpo(load_grpo_config(None, [f"model.path={base}", f"output_dir={tmp_path / 'g'}"]), progress=False),
    ):
        with pytest.raises(GetokError, match=r"^model family 'paligemma' is not supported: .*no chat template") as ei:
            run()
        msgs.append(str(ei.value))
    assert len(set(msgs)) == 1 and "\n" not in msgs[0]
    assert not (tmp_path / "sft").exists() and not (tmp_path / "g").exists()  # refused before any work
    cells = _Cells("paligemma")
    cells.cells = {"refused": msgs[0]}
    cells.write()


def test_families_cover_the_issue_list():
    assert set(FAMILIES) == {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "internvl", "llava_onevision",
                             "idefics3", "gemma3", "llava", "mistral3", "paligemma"}  # fmt: skip
    assert FAMILIES[-1] == "paligemma" and SUPPORTED_FAMILIES == FAMILIES[:-1]


# ------------------------------------------------------------------------------------------------ the adapters
def _image(size):
    from PIL import Image

    return Image.new("RGB", (size[1], size[0]), (200, 30, 30))


@pytest.fixture(scope="module")
def processors():
    from getok.vocab.families import make_family_model

    return {f: make_family_model(f)[1] for f in SUPPORTED_FAMILIES}


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_sample_lengths_are_what_the_processor_produces(processors, family):
    """SFT's length filter (adapter image-token counts) against the real processed length, per family."""
    from getok.train.data import sample_lengths
    from getok.train.sft import set_pixel_bounds
    from getok.vocab.adapters import adapter_for

    proc = processors[family]
    set_pixel_bounds(proc, 56 * 56, 112 * 112)  # what the tiny recipes pass; a no-op where there are no bounds
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Where is the red square?"}, {"type": "image"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "<g8_r1_c2>"}]}]  # fmt: skip
    for size in [(112, 112), (80, 120)]:
        text = proc.apply_chat_template(msgs, tokenize=False)
        real = proc(text=[text], images=[[_image(size)]])["input_ids"][0]
        assert sample_lengths(proc, [msgs], [[size]]) == [len(real)], size
        assert adapter_for(proc).image_token_count(proc, size) > 0


@pytest.mark.parametrize("family", SUPPORTED_FAMILIES)
def test_end_of_turn_markers_come_from_the_adapters(processors, family):
    """Every family's end-of-turn tokens (read off its tokenizer and template) are in the one list the
    rewards strip, and an answer ending in them scores as the bare answer."""
    from getok.rl.rewards_common import clean_response
    from getok.vocab.adapters import END_OF_TURN_MARKERS, adapter_for

    proc = processors[family]
    ends = adapter_for(proc).end_of_turn_tokens(proc)
    assert ends and set(ends) <= set(END_OF_TURN_MARKERS), ends
    assert clean_response("<answer><g8_r1_c2></answer>" + "".join(ends)) == "<answer><g8_r1_c2></answer>"


def test_a_registered_familys_markers_are_stripped_too():
    from getok.rl.rewards_common import clean_response
    from getok.vocab.adapters import END_OF_TURN_MARKERS, GenericAdapter, register_adapter

    assert "<|getok_test_end|>" not in END_OF_TURN_MARKERS

    @register_adapter
    class _EndAdapter(GenericAdapter):
        name = "getok_test_end_vl"
        model_types = ("getok_test_end_vl",)
        end_markers = ("<|getok_test_end|>",)

    try:
        assert clean_response("none<|getok_test_end|>") == "none"
    finally:
        END_OF_TURN_MARKERS.remove("<|getok_test_end|>")


def test_gemma3_counts_its_soft_tokens_not_the_start_of_image_marker(processors):
    proc = processors["gemma3"]
    from getok.vocab.adapters import Gemma3Adapter, adapter_for

    assert isinstance(adapter_for(proc), Gemma3Adapter)
    assert adapter_for(proc).image_placeholder(proc) == "<start_of_image>"
    assert adapter_for(proc).image_token_count(proc, (112, 112)) == 4  # mm_tokens_per_image


def test_moe_generation_with_router_logits_left_on_by_training():
    """TRL's SFT leaves ``output_router_logits=True`` in an MoE config; batched generation with prompts of
    different lengths then failed in the load-balancing loss (a padded mask)."""
    import numpy as np

    from getok.eval.generate import generate_answers
    from getok.samples import Sample, Turn
    from getok.vocab.families import make_family_model

    model, proc = make_family_model("qwen3_vl_moe")
    model.config.text_config.output_router_logits = True
    img = np.zeros((112, 112, 3), np.uint8)
    samples = [Sample(f"s{i}", "i", "i.png", (112, 112), "text>mask", "mask", SPEC, [Turn(user=q, assistant="")], {})
               for i, q in enumerate(["<image>Where?", "<image>Where is the small blue circle on the left?"])]  # fmt: skip
    out = generate_answers(model, proc, samples, images=[img, img], max_new_tokens=4, batch_size=2, progress=False,
                           generation_kwargs={"min_new_tokens": 4})  # fmt: skip
    assert len(out) == 2 and model.config.text_config.output_router_logits is True


def test_readme_table_is_what_the_committed_run_gives():
    import importlib.util

    spec = importlib.util.spec_from_file_location("family_matrix", REPO / "benchmarks" / "family_matrix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "README family matrix is stale: python benchmarks/family_matrix.py --render"
    result = json.loads(mod.RESULT.read_text())
    assert list(result["families"]) == list(FAMILIES) and result["steps"] == list(STEPS)
