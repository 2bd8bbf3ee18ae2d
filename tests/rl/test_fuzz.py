"""10^4 fuzzed responses: token soup from the codec vocabularies and junk → finite rewards in range."""

import math

import numpy as np

from getok.codecs.token_names import DELETE, bin_token, grid_token, offset_token
from getok.rl.rewards import KEYS, RewardScorer
from getok.rl.truth import pack_truth

from .conftest import disk, rect

SIZE = (40, 48)
N = 8
RANGES = {
    "point_refine": (-1.0, 1.0),
    "box_refine": (-1.0, 1.0),
    "mask_gain": (-1.0, 1.0),
    "n_pred": (0.0, math.inf),
    "n_gt": (0.0, math.inf),
}
ENVELOPE = ["<think>", "</think>", "<answer>", "</answer>", "<|im_end|>"]
JUNK = [
    "",
    " ",
    "\n",
    "none",
    "None",
    "<",
    ">",
    "<g8_r>",
    "<off_-0_0>",
    "<g8_r08_c00>",
    "<DELETE",
    "[[",
    "]]",
    "[0.5, 0.5]",
    "0.25",
    ", ",
    ";",
    "-1",
    "nan",
    "1e9",
    "\u00e9",
    "<loc_0999>",
    "<g16_r01_c02>",
    "<off_3_0>",
    "</think><think>",
    ".",
]


def _vocab(rng) -> list[str]:
    grid = [grid_token(int(cx), int(cy), N) for cx, cy in rng.integers(0, N, (20, 2))]
    offs = [offset_token(int(dx), int(dy)) for dx, dy in rng.integers(-1, 2, (9, 2))]
    return grid + offs + [DELETE, bin_token(int(rng.integers(1000)), 1000)]


def _polygon(rng) -> str:
    k = int(rng.integers(1, 7))
    return "[" + ", ".join(f"[{x:.3f}, {y:.3f}]" for x, y in rng.uniform(-0.1, 1.1, (k, 2))) + "]"


def _structured(rng, task: str) -> str:
    """A well-formed answer with random content: random cells (duplicates, many lines), refinements with
    the right counts, degenerate polygons (1-2 vertices, collinear, outside [0, 1])."""
    lines = []
    for _ in range(int(rng.integers(1, 5))):
        if task == "stage1":
            lines.append(
                "".join(grid_token(int(cx), int(cy), N) for cx, cy in rng.integers(0, N, (int(rng.integers(1, 12)), 2)))
            )
        elif task == "polygon":
            lines.append(_polygon(rng) if rng.random() < 0.8 else "[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]")
    if task == "stage2":
        return _refinement(rng)
    return "\n".join(lines)


def _soup(rng, task: str) -> str:
    if rng.random() < 0.3:
        return f"<think>fuzz</think><answer>{_structured(rng, task)}</answer>"
    vocab = _vocab(rng)
    parts = []
    for _ in range(int(rng.integers(0, 40))):
        u = rng.random()
        if u < 0.6:
            parts.append(vocab[int(rng.integers(len(vocab)))])
        elif u < 0.7:
            parts.append("\n")
        elif u < 0.8 and task == "polygon":
            parts.append(_polygon(rng))
        elif u < 0.9:
            parts.append(JUNK[int(rng.integers(len(JUNK)))])
        else:
            parts.append(ENVELOPE[int(rng.integers(len(ENVELOPE)))])
    body = "".join(parts)
    if rng.random() < 0.7:  # mostly well enveloped, so that many answers get past the format check
        think = ". ".join(["look"] * int(rng.integers(0, 3)))
        return f"<think>{think}</think><answer>{body}</answer>"
    return body


def test_fuzzed_responses_give_finite_in_range_rewards():
    rng = np.random.default_rng(1234)
    masks = [rect(SIZE, 0, 0, 18, 12), disk(SIZE, 32, 26, 9)]
    truths = {
        "stage1": [pack_truth(SIZE, masks, codec=f"grid:n={N}"), pack_truth(SIZE, [], codec=f"grid:n={N}")],
        "stage2": [
            pack_truth(
                SIZE, masks, codec=f"grid_offset:n={N}", task="stage2", proposal="<g8_r0_c0><g8_r1_c1>\n<g8_r5_c6>"
            ),
            pack_truth(SIZE, [], codec=f"grid_offset:n={N}", task="stage2", proposal="<g8_r2_c2>"),
        ],
        "polygon": [pack_truth(SIZE, masks, codec="polygon", task="polygon")],
    }
    scorer = RewardScorer()
    counts = {"stage1": 4000, "stage2": 3000, "polygon": 3000}
    valid = dict.fromkeys(counts, 0)
    for task, count in counts.items():
        items = [{"response": _soup(rng, task), "truth": truths[task][k % len(truths[task])]} for k in range(count)]
        # a few structured answers too, so every task has valid cases
        for k in range(0, count, 10):
            if task == "stage1":
                items[k]["response"] = "<think>a</think><answer><g8_r0_c0><g8_r1_c1>\n<g8_r5_c6></answer>"
            elif task == "stage2":
                items[k]["response"] = "<think>a</think><answer>" + _refinement(rng) + "</answer>"
                items[k]["truth"] = truths["stage2"][0]
            else:
                items[k]["response"] = "<think>a</think><answer>" + "[[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]]</answer>"
        for item, s in zip(items, scorer.score_batch(items)):
            assert set(KEYS[task]) <= set(s) and isinstance(s["reason"], str), item
            for k, v in s.items():
                if k == "reason":
                    continue
                lo, hi = RANGES.get(k, (0.0, 1.0))
                assert isinstance(v, float) and math.isfinite(v) and lo <= v <= hi, (k, v, item)
            assert s["invalid"] in (0.0, 1.0)
            assert (s["invalid"] == 1.0) == (s["reason"] != "")
            valid[task] += s["invalid"] == 0.0
    for task, count in counts.items():
        assert valid[task] >= count // 8, (task, valid)


def _refinement(rng) -> str:
    tok = [offset_token(int(dx), int(dy)) for dx, dy in rng.integers(-1, 2, (3, 2))] + [DELETE, DELETE]
    pick = lambda: tok[int(rng.integers(len(tok)))]  # noqa: E731
    return f"{pick()}{pick()}\n{pick()}"
