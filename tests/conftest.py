"""Shared fixtures: where the shared real-dev data lives, and small masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DEV = (REPO / ".." / "shared" / "data" / "real-dev").resolve()


@pytest.fixture(scope="session")
def real_dev_root() -> Path:
    """``../shared/data/real-dev`` next to the repository; skips (with the reason) where it is absent."""
    if not (REAL_DEV / "manifest.json").is_file():
        pytest.skip(f"real-dev data not found at {REAL_DEV} (a clone outside the workspace has no ../shared)")
    return REAL_DEV


@pytest.fixture(scope="session")
def real_dev_masks(real_dev_root):
    """All real-dev instance masks as ``(image_size, mask)`` pairs, decoded with pycocotools."""
    import json

    from pycocotools import mask as mask_utils

    out = []
    for rec in json.loads((real_dev_root / "manifest.json").read_text()):
        h, w = rec["height"], rec["width"]
        for obj in rec["objects"]:
            seg = obj["segmentation"]
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else mask_utils.frPyObjects(seg, h, w)
            out.append(((h, w), mask_utils.decode(rle).astype(bool)))
    return out


def disk(size=(64, 80), center=(40, 30), radius=12) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    return (xx + 0.5 - center[0]) ** 2 + (yy + 0.5 - center[1]) ** 2 <= radius**2


@pytest.fixture
def disk_mask():
    return disk()


# ---------------------------------------------------------------------------------------------- kill + resume
def _metric_steps(path: Path) -> list[int]:
    import json

    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):  # a line the kill cut
            pass
    return steps


def run_cli(argv: list[str], log: Path, *, kill_after_step: int | None = None, timeout: float = 600) -> None:
    """Run ``getok ARGV`` in a subprocess (stderr to ``log``). With ``kill_after_step`` the process is
    SIGKILLed as soon as ``output_dir/metrics.jsonl`` has a row beyond that step (so the killed attempt has
    logged past its last checkpoint); the output directory is the ``output_dir=`` argument."""
    import signal
    import subprocess
    import sys
    import time

    out = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("output_dir=")))
    cmd = [sys.executable, "-m", "getok.cli.main", *argv]
    with open(log, "a") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
        t0 = time.monotonic()
        if kill_after_step is None:
            rc = p.wait(timeout=timeout)
            assert rc == 0, log.read_text()[-4000:]
            return
        while p.poll() is None and max(_metric_steps(out / "metrics.jsonl"), default=0) <= kill_after_step:
            assert time.monotonic() - t0 < timeout, "the run never reached the step to kill at"
            time.sleep(0.02)
        assert p.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-4000:]}"
        p.send_signal(signal.SIGKILL)
        p.wait()


@pytest.fixture
def kill_and_resume(tmp_path):
    """``f(argv, kill_after_step) -> (reference_dir, resumed_dir)``: the same command run once uninterrupted
    and once SIGKILLed after ``kill_after_step`` then rerun (which resumes from its last checkpoint)."""

    def run(argv: list[str], kill_after_step: int) -> tuple[Path, Path]:
        ref, res = tmp_path / "reference", tmp_path / "resumed"
        run_cli([*argv, f"output_dir={ref}"], tmp_path / "reference.log")
        run_cli([*argv, f"output_dir={res}"], tmp_path / "resumed.log", kill_after_step=kill_after_step)
        assert max(_metric_steps(res / "metrics.jsonl")) > kill_after_step  # the killed attempt logged past it
        run_cli([*argv, f"output_dir={res}"], tmp_path / "resumed.log")
        return ref, res

    return run


def safetensors_tensors(directory: Path) -> dict:
    """Every tensor of the ``*.safetensors`` files in a directory, by name (numpy)."""
    from safetensors.numpy import load_file

    out = {}
    for f in sorted(Path(directory).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def fresh_python(code: str) -> list[str]:
    """The words ``code`` prints when run in a fresh interpreter: what an import really loads, unaffected by
    the modules this test process has imported already."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def need_deepspeed(why: str = "deepspeed is not installed") -> None:
    """Skip without DeepSpeed, except under ``GETOK_REQUIRE_DEEPSPEED=1`` (``make test-deepspeed``, CI), where a
    DeepSpeed that does not import fails the test instead of skipping it."""
    import importlib
    import os

    try:
        importlib.import_module("deepspeed")
    except ImportError as e:
        if os.environ.get("GETOK_REQUIRE_DEEPSPEED") == "1":
            pytest.fail(f"GETOK_REQUIRE_DEEPSPEED=1 (make test-deepspeed) but deepspeed does not import: {e}")
        pytest.skip(why)
