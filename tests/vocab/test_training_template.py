"""SFT with a base model's REAL chat template (issue 17, item 1).

getok's SFT runs TRL's ``SFTTrainer`` with ``assistant_only_loss=True``, which needs ``{% generation %}``
markers in the chat template. getok's tiny and family models carry templates with markers; a real base model
(Qwen2.5-VL-7B, Qwen3-VL-8B ...) does not. These tests put the real templates TRL ships
(``trl.chat_template_utils.<name>_chat_template``, read from TRL's package, nothing downloaded) on tiny
processors of the same family and check:

* :meth:`~getok.vocab.adapters.ModelAdapter.training_chat_template` returns TRL's training template for the
  real Qwen2.5-VL / Qwen3-VL / Gemma 3 / Idefics3 templates, ``None`` for getok's own (markers);
* with that training template the assistant mask of one getok sample (an image + a grid-token answer, spatial
  tokens added) is exactly the answer and its end-of-turn token (plus the template's whitespace around them),
  in ``apply_chat_template(..., return_assistant_tokens_mask=True)`` and in TRL's own collator's labels;
* 2 real SFT steps through :func:`getok.train.sft.run_sft` with the real Qwen2.5-VL template in the model dir;
* a template without markers that TRL does not know (a family's template with the markers taken out) is
  refused by :func:`run_sft` at start, in one line naming the family and the fix, before any output is written.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("trl")

from getok.errors import ConfigError  # noqa: E402

SPEC = "grid_offset:n=8,r=1,step=0.5"
#: family -> (name of the real template in trl.chat_template_utils, the turn's end-of-turn token)
REAL = {
    "qwen2_5_vl": ("qwen2_5_vl", "<|im_end|>"),
    "qwen3_vl": ("qwen3_vl", "<|im_end|>"),
    "gemma3": ("gemma3", "<end_of_turn>"),
    "idefics3": ("idefics3", "<end_of_utterance>"),
}
_MARKERS = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")


def _real(name: str) -> tuple[str, str]:
    from trl import chat_template_utils as ctu

    return getattr(ctu, f"{name}_chat_template"), getattr(ctu, f"{name}_training_chat_template")


@pytest.fixture(scope="module")
def sample():
    """One getok sample: a procedural scene and its ``text>mask`` question, answered in grid tokens."""
    from PIL import Image

    from getok.data_builders.export import trl_messages
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import TaskConfig, build_tasks

    scenes = generate_scenes(1, seed=0)
    s = build_tasks(scenes, SPEC, TaskConfig(tasks=("text>mask",), seed=0))[0]
    assert len(s.turns) == 1 and s.turns[0].assistant.startswith("<g8_")
    return trl_messages(s), s.turns[0].assistant, Image.fromarray(scenes[0].image)


def _family_with_tokens(family: str):
    from getok.vocab import add_spatial_tokens
    from getok.vocab.families import make_family_model

    model, proc = make_family_model(family)
    add_spatial_tokens(proc, model, [SPEC])
    return model, proc


@pytest.mark.parametrize("family", list(REAL))
def test_real_template_is_swapped_and_masks_exactly_the_answer(family, sample):
    from trl.chat_template_utils import has_generation_markers
    from trl.data_utils import prepare_multimodal_messages
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from getok.vocab.adapters import adapter_for

    _, proc = _family_with_tokens(family)
    ad = adapter_for(proc)
    assert ad.training_chat_template(proc) is None  # getok's family template has markers: used as is
    name, end = REAL[family]
    real, training = _real(name)
    assert not has_generation_markers(real)
    proc.chat_template = real
    assert ad.training_chat_template(proc) == training  # what TRL's SFTTrainer swaps in

    messages, answer, image = sample
    tok = proc.tokenizer
    mm = prepare_multimodal_messages(messages, images=[image])  # what TRL's collator renders
    out = proc.apply_chat_template([mm], chat_template=training, tokenize=True, return_dict=True,
                                   return_assistant_tokens_mask=True, return_tensors="pt")  # fmt: skip
    ids, mask = out["input_ids"][0].tolist(), out["assistant_masks"][0].tolist()
    on = [i for i, m in enumerate(mask) if m]
    assert on and on == list(range(on[0], on[-1] + 1)), "the mask is one span"
    span = [ids[i] for i in on]
    core = [t for t in span if tok.decode([t]).strip()]  # whitespace the template writes around the turn aside
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"]
    assert len(answer_ids) == answer.count("<g8_")  # one id per grid token
    assert core == [*answer_ids, tok.convert_tokens_to_ids(end)]
    assert tok.decode(span).strip() == answer + end
    image_id = getattr(proc, "image_token_id", None) or tok.convert_tokens_to_ids(proc.image_token)
    assert image_id in ids and on[0] > max(i for i, t in enumerate(ids) if t == image_id)  # the prompt is out

    # TRL's own collator (what SFT trains on) with the template TRL swaps in: labels = the same span
    coll = DataCollatorForVisionLanguageModeling(processor=proc, assistant_only_loss=True, chat_template=training)
    batch = coll([{"messages": messages, "images": [image]}])
    labels = batch["labels"][0].tolist()
    assert [i for i, t in enumerate(labels) if t != -100] == on
    assert [labels[i] for i in on] == span


def test_real_qwen_template_trains_through_getoks_sft(tmp_path, caplog):
    """2 SFT steps through run_sft with the real Qwen2.5-VL template in the model directory: the start check
    passes, the trainer is built with TRL's training template swapped in, the loss is finite."""
    import logging
    import math

    from getok.train.callbacks import read_metrics
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft
    from getok.vocab.families import build_family_model

    base = build_family_model("qwen2_5_vl", tmp_path / "base")
    real, _ = _real("qwen2_5_vl")
    (base / "chat_template.jinja").write_text(real)
    from transformers import AutoProcessor

    assert AutoProcessor.from_pretrained(base).chat_template == real
    over = ["vision_warmup.steps=0", "data.scenes.n=4", "data.num_samples=8", "train.batch_size=4",
            "train.logging_steps=1", "eval.enabled=false", "train.max_steps=2", "train.save_steps=100",
            "train.resume=never", f"model.path={base}", f"output_dir={tmp_path / 'sft'}"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="getok.train.sft"):
        summary = run_sft(load_sft_config(None, over), progress=False)
    assert "TRL's training template renders the samples" in caplog.text
    losses = [r["loss"] for r in read_metrics(tmp_path / "sft" / "metrics.jsonl") if "loss" in r]
    assert summary["train"]["steps"] == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)


def _strip_markers(template: str) -> str:
    from trl.chat_template_utils import has_generation_markers

    out = _MARKERS.sub("", template)
    assert has_generation_markers(template) and not has_generation_markers(out)
    return out


@pytest.mark.parametrize("family", ["internvl", "llava_onevision", "mistral3", "llava"])
def test_unknown_template_without_markers_is_refused(family):
    from getok.vocab.adapters import adapter_for
    from getok.vocab.families import make_family_model

    _, proc = make_family_model(family)
    proc.chat_template = _strip_markers(proc.chat_template)
    with pytest.raises(ConfigError, match=rf"^model family '{family}': its chat template has no .*generation"):
        adapter_for(proc).training_chat_template(proc)


def test_sft_refuses_such_a_template_at_start_in_one_line(tmp_path):
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft
    from getok.vocab.families import build_family_model

    base = build_family_model("internvl", tmp_path / "base")
    (base / "chat_template.jinja").write_text(_strip_markers((base / "chat_template.jinja").read_text()))
    cfg = load_sft_config(None, [f"model.path={base}", f"output_dir={tmp_path / 'sft'}"])
    with pytest.raises(ConfigError) as ei:
        run_sft(cfg, progress=False)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("model family 'internvl'")
    assert "{% generation %}" in msg and "chat_template.jinja" in msg  # names the fix
    assert not (tmp_path / "sft").exists()  # refused before anything is written
