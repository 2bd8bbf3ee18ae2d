"""The main environment seen from an engine's environment: its python, and the artefacts built with it (the
engine contract tests of EasyR1 and verl run in their own venvs; what they feed to the engines is built by
getok in the main ``.venv``, as a user builds it before a launch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def main_python() -> Path:
    """The main environment's python (``$GETOK_MAIN_PYTHON``, default ``.venv/bin/python``)."""
    return Path(os.environ.get("GETOK_MAIN_PYTHON", REPO / ".venv" / "bin" / "python"))


def build_artefacts(script: Path, out: Path) -> Path:
    """Run ``script OUT`` with the main environment's python; skip when that python is missing, raise (with its
    output) when the build fails or leaves no ``OUT/DONE``."""
    py = main_python()
    if not py.is_file():
        pytest.skip(f"the main environment's python {py} is missing (make install, or set GETOK_MAIN_PYTHON)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(py), str(script), str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    if proc.returncode != 0 or not (out / "DONE").is_file():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise RuntimeError(f"building the artefacts with {py} failed (exit {proc.returncode})")
    return out
