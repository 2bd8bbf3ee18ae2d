"""The EasyR1 reward file, loaded the way EasyR1 loads it: ``path.py:fn`` → importlib from the file path."""

import importlib.util
import json
import math
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import getok.rl
from getok.codecs.token_names import grid_token
from getok.ops.grid import mask_to_cells
from getok.rl.truth import pack_truth

from .conftest import rect, wrap

REWARD_FILE = Path(getok.rl.__file__).resolve().parent / "easyr1_reward.py"


def load_like_easyr1(reward_function: str, **reward_function_kwargs):
    """EasyR1's FunctionRewardManager: split ``path:name``, exec the file as ``custom_reward_fn``."""
    path, name = reward_function.rsplit(":", 1)
    assert Path(path).exists()
    spec = importlib.util.spec_from_file_location("custom_reward_fn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_reward_fn"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("custom_reward_fn", None)
    return module, partial(getattr(module, name), **reward_function_kwargs)


def answer(masks, n=32) -> str:
    return "\n".join("".join(grid_token(int(cx), int(cy), n) for cx, cy in mask_to_cells(m, n)) for m in masks)


def check_scores(scores, n):
    assert isinstance(scores, list) and len(scores) == n
    keys = set(scores[0])
    assert "overall" in keys and "reason" not in keys
    for s in scores:
        assert set(s) == keys  # EasyR1 averages every key into a metric
        assert all(isinstance(v, float) and math.isfinite(v) for v in s.values())
        assert 0.0 <= s["overall"] <= 1.0


def test_reward_file_loads_from_its_path_and_scores_the_exact_input():
    module, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score")
    assert module.REWARD_TYPE == "batch"
    size = (64, 96)
    masks = [rect(size, 0, 0, 24, 16), rect(size, 48, 8, 96, 32)]
    gt = pack_truth(size, masks, codec="grid:n=8")
    good = wrap(answer(masks, 8))
    inputs = [
        {"response": good, "response_length": 40, "ground_truth": gt},
        {"response": good + "<|im_end|>", "response_length": 41, "ground_truth": gt},  # skip_special_tokens=False
        {"response": "<think>a</think><answer>none</answer>", "response_length": 9, "ground_truth": gt},
        {"response": "garbage <g8_r0", "response_length": 5, "ground_truth": gt},
        {"response": good, "response_length": 40, "ground_truth": "not json"},
    ]
    scores = fn(inputs)
    check_scores(scores, len(inputs))
    assert scores[0]["mask_iou"] == 1.0 and scores[0]["invalid"] == 0.0
    assert scores[1] == scores[0]
    assert scores[2]["mask"] == 0.0 and scores[2]["invalid"] == 0.0
    assert scores[3]["overall"] == 0.0 and scores[3]["invalid"] == 1.0
    assert scores[4]["overall"] == 0.0 and scores[4]["invalid"] == 1.0
    with pytest.raises(ValueError, match="batch"):
        fn(inputs[0])


def test_reward_function_kwargs_reach_the_config():
    _, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score", config={"stage1": {"mask_floor": 0.0, "mask_ceil": 1.0}})
    size = (32, 32)
    gt = pack_truth(size, [rect(size, 0, 0, 16, 16)], codec="grid:n=4")
    (s,) = fn([{"response": wrap("<g4_r0_c0>"), "response_length": 3, "ground_truth": gt}])
    assert s["mask"] == pytest.approx(s["mask_iou"]) == pytest.approx(0.25)


def test_stage2_and_mixed_batches_share_keys():
    _, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score")
    size = (32, 32)
    s1 = pack_truth(size, [rect(size, 0, 0, 12, 8)], codec="grid:n=4")
    s2 = pack_truth(
        size, [rect(size, 0, 0, 12, 8)], codec="grid_offset:n=4", task="stage2", proposal="<g4_r0_c0><g4_r0_c1>"
    )
    scores = fn(
        [
            {"response": wrap("<off_0_0><off_-1_0>"), "response_length": 4, "ground_truth": s2},
            {"response": wrap("<g4_r0_c0>"), "response_length": 3, "ground_truth": s1},
        ]
    )
    check_scores(scores, 2)
    assert scores[0]["mask_gain"] == 1.0 and scores[0]["invalid"] == 0.0


@pytest.mark.shared
def test_real_dev_cases(real_dev_root):
    """Real COCO masks: the true grid answer beats a degraded one, which beats a miss, which beats junk."""
    from pycocotools import mask as mask_utils

    _, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score")
    records = json.loads((real_dev_root / "manifest.json").read_text())
    rng = np.random.default_rng(0)
    inputs, kinds = [], []
    for rec in records[:6]:
        h, w = rec["height"], rec["width"]
        objs = [o for o in rec["objects"] if not o["iscrowd"]][:3]
        masks = []
        for o in objs:
            rle = mask_utils.merge(mask_utils.frPyObjects(o["segmentation"], h, w))
            masks.append(mask_utils.decode(rle).astype(bool))
        if not masks:
            continue
        gt = pack_truth((h, w), masks, codec="grid:n=32", image=rec["image"], image_id=str(rec["coco_image_id"]))
        lines = answer(masks).split("\n")
        degraded = "\n".join(
            "".join(t for t in line.replace("><", ">\x00<").split("\x00") if rng.random() < 0.5) or line
            for line in lines
        )
        for kind, text in (
            ("true", wrap("\n".join(lines))),
            ("degraded", wrap(degraded)),
            ("none", wrap("none")),
            ("junk", "I cannot see it"),
        ):
            inputs.append({"response": text, "response_length": len(text) // 4, "ground_truth": gt})
            kinds.append(kind)
    scores = fn(inputs)
    check_scores(scores, len(inputs))
    by = {k: [s for s, kk in zip(scores, kinds) if kk == k] for k in ("true", "degraded", "none", "junk")}
    assert len(by["true"]) >= 5
    assert np.mean([t["mask_iou"] for t in by["true"]]) > 0.4  # a 32-grid answer is coarse on small objects
    for t, d, n, j in zip(by["true"], by["degraded"], by["none"], by["junk"]):
        assert t["invalid"] == 0.0 and t["mask_iou"] > 0.1
        assert t["mask_iou"] >= d["mask_iou"] and t["overall"] > n["overall"] > j["overall"] == 0.0
