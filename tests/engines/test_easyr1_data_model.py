"""Our exported model directory through EasyR1's tokenizer / processor helpers (``verl/utils/tokenizer.py``)
under transformers 4.5x, and our exported rows through its ``RLHFDataset`` (``verl/utils/dataset.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import REPO, require_engines

require_engines()

FORMAT_PROMPT = REPO / "configs/easyr1/format_prompt.jinja"


@pytest.fixture(scope="module")
def helpers(artefacts, easyr1_root):
    from verl.utils.tokenizer import get_processor, get_tokenizer

    d = str(artefacts / "easyr1-model")
    # as verl/trainer/main.py calls them
    tok = get_tokenizer(d, override_chat_template=None, trust_remote_code=False, use_fast=True)
    proc = get_processor(d, override_chat_template=None, trust_remote_code=False, use_fast=True)
    return tok, proc


def test_the_transformers5_directory_does_not_load_here_but_the_export_does(artefacts, helpers, easyr1_root):
    from verl.utils.tokenizer import get_tokenizer

    with pytest.raises((ValueError, AttributeError, TypeError)):  # why the export exists (TokenizersBackend / list)
        get_tokenizer(str(artefacts / "model"), use_fast=True)
    tok, proc = helpers
    assert proc is not None and type(proc).__name__ == "Qwen2_5_VLProcessor"
    assert type(proc.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    assert proc.image_processor.patch_size == 14
    assert tok.pad_token_id is not None and tok.eos_token == "<|im_end|>"


def test_spatial_tokens_are_single_non_special_ids_that_survive_skip_special_tokens(artefacts, helpers):
    from getok.vocab.layout import VocabLayout

    tok, _ = helpers
    layout = VocabLayout.load(artefacts / "easyr1-model")
    for t in layout.tokens:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    probe = "".join(layout.tokens[:24])
    assert tok.decode(tok.encode(probe, add_special_tokens=False), skip_special_tokens=True).replace(" ", "") == probe


def test_same_logits_under_transformers_4_as_under_5(artefacts, helpers):
    import torch
    from transformers import AutoModelForImageTextToText

    from ._build_artefacts import PROMPT, probe_image

    _, proc = helpers
    ref = np.load(artefacts / "logits.npz")
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inp = proc(images=[probe_image()], text=[text], return_tensors="pt")
    assert np.array_equal(inp["input_ids"].numpy(), ref["input_ids"])
    model = AutoModelForImageTextToText.from_pretrained(str(artefacts / "easyr1-model")).eval()
    with torch.no_grad():
        logits = model(**inp).logits.numpy()
    assert np.abs(logits - ref["logits"]).max() < 1e-4


@pytest.mark.parametrize("stage", [1, 2])
def test_rlhf_dataset_reads_our_rows(stage, artefacts, helpers):
    import datasets
    from verl.utils.dataset import RLHFDataset

    tok, proc = helpers
    export = artefacts / f"e{stage}"
    rows = list(datasets.Dataset.from_parquet(str(export / "train.parquet")))
    ds = RLHFDataset(
        data_path=str(export / "train.parquet"), tokenizer=tok, processor=proc, prompt_key="problem",
        answer_key="answer", image_key="images", max_prompt_length=1024, truncation="error",
        format_prompt=str(FORMAT_PROMPT), min_pixels=3136, max_pixels=1003520, filter_overlong_prompts=False,
    )  # fmt: skip
    # its overlong filter, called on each row here (datasets.filter would fork worker processes after torch started)
    assert len(ds) == len(rows) > 0 and all(ds._filter_overlong_prompts(ds.dataset[i]) for i in range(len(ds)))
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    vision_end = tok.convert_tokens_to_ids("<|vision_end|>")
    for i in range(len(ds)):
        item = ds[i]
        assert item["ground_truth"] == rows[i]["answer"]  # the packed truth reaches the reward untouched
        truth = json.loads(item["ground_truth"])
        assert truth["task"] == f"stage{stage}"
        ids = item["input_ids"][item["attention_mask"].bool()].tolist()
        assert item["position_ids"].shape[0] == 4  # text + M-RoPE (t, h, w) positions from the processor's grid
        assert ids.count(image_pad) > 0 and len(item["multi_modal_data"]["images"]) == 1
        assert vision_end in ids
        prompt = tok.decode(item["raw_prompt_ids"])
        # SFT's prompt (user_content): no newline where text meets the image, in the message and in the rendering
        content = ds._build_messages(ds.dataset[i])[0]["content"]
        assert [c["type"] for c in content].count("image") == 1
        assert all(not c["text"].startswith("\n") and not c["text"].endswith("\n") for c in content if c["type"] == "text")
        assert "<|vision_end|>\n" not in prompt and "<|im_start|>user\n\n" not in prompt
        assert "First think about the image" in prompt  # our format_prompt.jinja was applied
        if stage == 2:
            assert "Previous answer: " + truth["proposal"] in prompt  # spatial tokens decode back intact
