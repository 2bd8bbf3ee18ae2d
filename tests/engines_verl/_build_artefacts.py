"""Build what the verl contract tests feed to verl, with getok in the MAIN environment (transformers 5.2x).

Run by ``tests/engines_verl/conftest.py`` as ``<main venv>/bin/python tests/engines_verl/_build_artefacts.py OUT``:
writes ``OUT/model`` (tiny Qwen2.5-VL + the grid_offset vocabulary, a merged getok checkpoint saved by
transformers 5), ``OUT/tasks`` (a getok dataset of single-target mask questions, with thoughts) and ``OUT/v2``
(``getok rl export-verl``: verl rows for stage 2), as a user would before a launch.
"""

from __future__ import annotations

import sys
from pathlib import Path

SPEC = "grid_offset:n=8,r=1,step=0.5"


def build(out: Path) -> None:
    from getok.cli.main import main
    from getok.train.callbacks import write_checkpoint_info
    from getok.vocab import add_spatial_tokens, build_tiny_model, load_model_and_processor, save_with_layout
    from getok.vocab.tiny import TinyModelConfig

    base = build_tiny_model(out / "base", TinyModelConfig(family="qwen2_5_vl", patch_size=14))
    model, processor = load_model_and_processor(base)
    layout = add_spatial_tokens(processor, model, [SPEC])
    ckpt = save_with_layout(model, processor, layout, out / "model")
    write_checkpoint_info(ckpt, layout, "", {"tuning": "merged"})

    def run(*argv: str) -> None:
        rc = main(list(argv))
        if rc != 0:
            raise SystemExit(f"getok {' '.join(argv)} exited {rc}")

    run("build", "tasks", "--scenes", "4", "--codec", SPEC, "--tasks", "text>mask,point>mask,box>mask", "--think",
        "--out", str(out / "tasks"), "--quiet")  # fmt: skip
    run("rl", "export-verl", "--data", str(out / "tasks"), "--out", str(out / "v2"), "--model", str(ckpt), "--quiet")
    (out / "DONE").write_text("ok\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
