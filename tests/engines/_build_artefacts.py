"""Build what the engine contract tests feed to EasyR1, with getok in the MAIN environment (transformers 5).

Run by ``tests/engines/conftest.py`` as ``<main venv>/bin/python tests/engines/_build_artefacts.py OUT``:
writes ``OUT/model`` (tiny Qwen2.5-VL + the grid_offset vocabulary, saved by transformers 5, a merged getok
checkpoint), ``OUT/easyr1-model`` (``getok rl export-easyr1-model``), ``OUT/tasks`` / ``OUT/stage2-data``
(getok datasets), ``OUT/e1`` / ``OUT/e2`` (``getok rl export-easyr1 --stage 1 / 2``) and ``OUT/logits.npz``
(the logits transformers 5 computes for one prompt, to compare with transformers 4.5x).
"""

from __future__ import annotations

import sys
from pathlib import Path

SPEC = "grid_offset:n=8,r=1,step=0.5"
PROMPT = "Segment the red disc."


def probe_image():
    import numpy as np
    from PIL import Image

    return Image.fromarray((np.random.RandomState(0).rand(112, 112, 3) * 255).astype("uint8"))


def tiny_checkpoint(out: Path) -> Path:
    """``OUT/model``: a merged getok checkpoint of the tiny Qwen2.5-VL with the grid_offset vocabulary."""
    from getok.train.callbacks import write_checkpoint_info
    from getok.vocab import add_spatial_tokens, build_tiny_model, load_model_and_processor, save_with_layout
    from getok.vocab.tiny import TinyModelConfig

    base = build_tiny_model(out / "base", TinyModelConfig(family="qwen2_5_vl", patch_size=14))
    model, processor = load_model_and_processor(base)
    layout = add_spatial_tokens(processor, model, [SPEC])
    ckpt = save_with_layout(model, processor, layout, out / "model")
    write_checkpoint_info(ckpt, layout, "", {"tuning": "merged"})
    return ckpt


def run(*argv: str) -> None:
    """``getok ARGV``; a non-zero exit stops the build."""
    from getok.cli.main import main

    rc = main(list(argv))
    if rc != 0:
        raise SystemExit(f"getok {' '.join(argv)} exited {rc}")


def build_tasks(out: Path) -> Path:
    """``OUT/tasks``: single-target and multi-target mask questions of 4 scenes, with thoughts."""
    run("build", "tasks", "--scenes", "4", "--codec", SPEC, "--tasks", "text>mask,point>mask,box>mask", "--think",
        "--out", str(out / "tasks"), "--quiet")  # fmt: skip
    return out / "tasks"


def build(out: Path) -> None:
    import numpy as np
    import torch

    ckpt = tiny_checkpoint(out)
    run("rl", "export-easyr1-model", "--model", str(ckpt), "--out", str(out / "easyr1-model"))
    build_tasks(out)
    run("rl", "export-easyr1", "--stage", "1", "--data", str(out / "tasks"), "--out", str(out / "e1"),
        "--model", str(out / "easyr1-model"), "--quiet")  # fmt: skip
    run("rl", "make-stage2-data", "--model", str(ckpt), "--data", str(out / "tasks"), "--out", str(out / "stage2-data"),
        "--max-new-tokens", "8", "--limit", "8", "--quiet")  # fmt: skip
    run("rl", "export-easyr1", "--stage", "2", "--data", str(out / "stage2-data"), "--out", str(out / "e2"),
        "--model", str(out / "easyr1-model"), "--quiet")  # fmt: skip

    from transformers import AutoModelForImageTextToText, AutoProcessor

    d = out / "easyr1-model"
    proc = AutoProcessor.from_pretrained(str(d))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inp = proc(images=[probe_image()], text=[text], return_tensors="pt")
    with torch.no_grad():
        logits = AutoModelForImageTextToText.from_pretrained(str(d)).eval()(**inp).logits
    np.savez(out / "logits.npz", input_ids=inp["input_ids"].numpy(), logits=logits.numpy())
    (out / "DONE").write_text("ok\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
