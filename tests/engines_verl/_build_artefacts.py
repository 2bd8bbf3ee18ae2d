"""Build what the verl contract tests feed to verl, with getok in the MAIN environment (transformers 5.2x).

Run by ``tests/engines_verl/conftest.py`` as ``<main venv>/bin/python tests/engines_verl/_build_artefacts.py OUT``:
writes ``OUT/model`` (tiny Qwen2.5-VL + the grid_offset vocabulary, a merged getok checkpoint saved by
transformers 5), ``OUT/tasks`` (a getok dataset of single-target mask questions, with thoughts) and ``OUT/v2``
(``getok rl export-verl``: verl rows for stage 2), as a user would before a launch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.engines._build_artefacts import build_tasks, run, tiny_checkpoint  # the EasyR1 artefacts' own steps


def build(out: Path) -> None:
    ckpt = tiny_checkpoint(out)
    build_tasks(out)
    run("rl", "export-verl", "--data", str(out / "tasks"), "--out", str(out / "v2"), "--model", str(ckpt), "--quiet")
    (out / "DONE").write_text("ok\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
