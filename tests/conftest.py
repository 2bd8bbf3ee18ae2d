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
