"""The log-probs GRPO differentiates are the policy's: TRL's batched, left-padded forward on the tiny
Qwen3-VL (M-RoPE positions, image tokens) equals a plain forward of the eval-time prompt and image.

A mismatch (wrong positions under padding, a lost image, another prompt template) would make every policy
gradient train a different model than the one evaluated; this pins it on the default tiny family.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

REPO = Path(__file__).resolve().parents[2]


def test_grpo_logps_equal_a_plain_forward_of_the_eval_prompt(tmp_path, monkeypatch):
    import torch
    from PIL import Image

    import getok.rl.grpo as G
    from getok.data_builders.dataset import read_dataset
    from getok.eval.generate import prompt_messages
    from getok.rl.grpo_config import load_grpo_config

    cfg = load_grpo_config(REPO / "configs/grpo/tiny-cpu-stage1.yaml", [
        "model.path=tiny", "tuning.mode=full", f"output_dir={tmp_path}", "eval.enabled=false",
        "train.max_steps=1", "train.lr=1e-12", "data.scenes.n=8", "data.tasks=[point>mask, box>mask]",
        "rl.prompts_per_step=4", "rl.num_generations=2", "rl.max_completion_length=6"])  # fmt: skip
    seen = {}
    make = G.make_trainer

    def capture(*a, **k):
        tr = make(*a, **k)
        inner = tr._get_per_token_logps_and_entropies

        def wrap(model, input_ids, attention_mask, logits_to_keep, *aa, **kw):
            out = inner(model, input_ids, attention_mask, logits_to_keep, *aa, **kw)
            seen.setdefault("batch", (input_ids.clone(), attention_mask.clone(), logits_to_keep, out[0].detach().clone(),
                                      kw["pixel_values"].clone(), kw["image_grid_thw"].clone()))  # fmt: skip
            return out

        tr._get_per_token_logps_and_entropies = wrap
        seen["trainer"] = tr
        return tr

    monkeypatch.setattr(G, "make_trainer", capture)
    G.run_grpo(cfg, progress=False)
    ids, mask, k, logps, pixels, thw = seen["batch"]
    tr = seen["trainer"]
    model, proc = tr.model.eval(), tr.processing_class
    tok, ip = proc.tokenizer, proc.image_processor
    ds = read_dataset(tmp_path / "data" / "train")
    per = int(thw[0].prod())
    assert (~mask[:, :-k].bool()).any(), "the batch should hold prompts of different lengths (left padding)"
    checked = 0
    for i in range(ids.shape[0]):
        prompt = tok.decode(ids[i, :-k][mask[i, :-k].bool()]).replace("<|image_pad|>", "")
        comp = ids[i, -k:][mask[i, -k:].bool()]
        mine = pixels[i * per:(i + 1) * per]
        (s,) = [s for s in ds if proc.apply_chat_template(prompt_messages(s), add_generation_prompt=True,
                                                          tokenize=False).replace("<|image_pad|>", "") == prompt
                and torch.equal(ip(images=[Image.open(ds.image_path(s)).convert("RGB")], return_tensors="pt")
                                ["pixel_values"], mine)]  # fmt: skip
        text = proc.apply_chat_template(prompt_messages(s), add_generation_prompt=True, tokenize=False)
        enc = proc(text=[text], images=[Image.open(ds.image_path(s)).convert("RGB")], return_tensors="pt")
        full = torch.cat([enc["input_ids"], comp[None]], 1)
        kw = {n: v for n, v in enc.items() if n not in ("input_ids", "attention_mask")}
        if "mm_token_type_ids" in kw:
            kw["mm_token_type_ids"] = torch.cat([kw["mm_token_type_ids"], torch.zeros_like(comp)[None]], 1)
        with torch.no_grad():
            logits = model(input_ids=full, attention_mask=torch.ones_like(full), **kw).logits[0].float()
        plain = torch.log_softmax(logits[-len(comp) - 1:-1], -1).gather(-1, comp[:, None])[:, 0]
        torch.testing.assert_close(plain, logps[i][mask[i, -k:].bool()].float(), atol=1e-4, rtol=0)
        checked += 1
    assert checked == ids.shape[0] == 8
