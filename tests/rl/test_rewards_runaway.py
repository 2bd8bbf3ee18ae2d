"""Runaway completions (200 k characters of repeated tags, whitespace, end-of-turn tokens) parse and
score through the stage-1 and stage-2 rewards in linear time, with the same results as short ones."""

import time

import pytest

from getok.rl.rewards import RewardConfig, RewardScorer
from getok.rl.rewards_common import clean_response, split_envelope
from getok.rl.truth import pack_truth

from .conftest import rect

N = 200_000
SIZE = (64, 64)
#: The regexes this replaced took 5-25 s per completion here; the scans take milliseconds. The bound
#: is loose so that a loaded machine passes and a quadratic scan does not.
BOUND_S = 1.0


def _rep(unit: str, n: int = N) -> str:
    return unit * (n // len(unit))


#: Completions that are not a valid envelope (each shape made a regex quadratic).
BROKEN = {
    "close_open_pairs": "<think>" + _rep("</think><answer></answer>") + "x",
    "answer_openers": _rep("<answer>"),
    "think_openers": "<think>" + _rep("<think>"),
    "answer_after_answer": "<think>a</think><answer>" + _rep("</think><answer>"),
    "whitespace_then_open_tag": "<think>a</think>" + " " * N + "<answer>x",
    "unclosed_answer_end_tokens": "<think>a</think><answer>" + _rep("<|im_end|>\n"),
}


def _valid(answer: str) -> dict:
    """Valid completions of ``answer`` with a runaway part."""
    return {
        "runaway_think_closers": "<think>" + _rep("</think>x") + f"</think><answer>{answer}</answer>",
        "runaway_end_tokens": f"<think>a</think><answer>{answer}</answer>" + _rep("<|im_end|>\n"),
        "runaway_whitespace": " " * N + f"<think>a</think>{' ' * N}<answer>{answer}</answer>" + " " * N,
    }


@pytest.fixture(scope="module")
def truths():
    m = rect(SIZE, 0, 0, 16, 32)  # cells (0, 0) and (0, 1) of the 4 x 4 grid
    return {
        "stage1": pack_truth(SIZE, [m], codec="grid:n=4"),
        "stage2": pack_truth(SIZE, [m], codec="grid_offset:n=4", task="stage2", proposal="<g4_r0_c0><g4_r1_c0>"),
    }


ANSWERS = {"stage1": "<g4_r0_c0><g4_r1_c0>", "stage2": "<off_0_0><off_0_0>"}


def _timed(scorer, response, truth):
    t0 = time.perf_counter()
    s = scorer.score(response, truth)
    return s, time.perf_counter() - t0


@pytest.mark.parametrize("task", ["stage1", "stage2"])
@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("envelope", ["think", "any"])
def test_broken_runaway_completion_is_invalid_fast(truths, task, name, envelope):
    cfg = RewardConfig.from_dict({task: {"envelope": envelope}})
    scorer = RewardScorer(cfg)
    response = BROKEN[name]
    assert len(response) >= N
    s, elapsed = _timed(scorer, response, truths[task])
    assert s["invalid"] == 1.0 and s["overall"] == 0.0 and s["reason"]
    if envelope == "think":
        assert s["reason"] == "format"
    assert elapsed < BOUND_S, f"{task}/{name}/{envelope}: {elapsed:.2f} s"


@pytest.mark.parametrize("task", ["stage1", "stage2"])
@pytest.mark.parametrize("name", ["runaway_think_closers", "runaway_end_tokens", "runaway_whitespace"])
def test_valid_runaway_completion_scores_like_its_short_form(truths, task, name):
    scorer = RewardScorer()
    answer = ANSWERS[task]
    response = _valid(answer)[name]
    assert len(response) >= N
    s, elapsed = _timed(scorer, response, truths[task])
    short = scorer.score(f"<think>a</think><answer>{answer}</answer>", truths[task])
    assert s["invalid"] == 0.0 and s["reason"] == ""
    assert short["invalid"] == 0.0 and short["overall"] > 0.5
    keys = ("mask_iou", "mask", "box") if task == "stage1" else ("iou_init", "iou_ref", "point_refine", "mask_gain")
    for k in keys:
        assert s[k] == short[k], k
    assert elapsed < BOUND_S, f"{task}/{name}: {elapsed:.2f} s"


def test_split_envelope_on_runaway_text():
    think, answer = split_envelope("<think>" + _rep("</think>x") + "</think><answer> none </answer>")
    assert answer == "none" and think == _rep("</think>x")
    t0 = time.perf_counter()
    assert split_envelope("<think>" + _rep("<think>"), "any") == ("", "<think>" + _rep("<think>"))
    assert split_envelope(_rep("<answer>") + "</answer>", "any") == ("", _rep("<answer>")[len("<answer>") :])
    assert time.perf_counter() - t0 < BOUND_S


def test_clean_response_strips_a_runaway_end_token_tail_in_linear_time():
    # one slice per stripped token made this quadratic: 2.4 s at a million characters
    body = "<think>a</think><answer>none</answer>"
    text = body + _rep("<|im_end|>\n", 1_000_000)
    t0 = time.perf_counter()
    out = clean_response(text)
    elapsed = time.perf_counter() - t0
    assert out == body
    assert elapsed < 0.75, f"{elapsed:.2f} s"


@pytest.mark.parametrize(
    "text,want",
    [
        ("<answer>a</answer><|im_end|>", "<answer>a</answer>"),
        ("a <|im_end|> \n<|endoftext|></s> <|eot_id|>\n", "a"),
        ("a<|im_end|>x", "a<|im_end|>x"),
        ("<|im_end|>", ""),
        (" \t", ""),
        ("a</s", "a</s"),
        ("a <|im_end", "a <|im_end"),
        ("<|im_end|>a", "<|im_end|>a"),
    ],
)
def test_clean_response_cases(text, want):
    assert clean_response(text) == want


def test_clean_response_matches_the_slicing_loop_it_replaced():
    import random

    tokens = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")

    def reference(text):
        out = text.rstrip()
        while out.endswith(tokens):
            for tok in tokens:
                if out.endswith(tok):
                    out = out[: -len(tok)].rstrip()
        return out

    rng = random.Random(0)
    pieces = [*tokens, " ", "\n", "x", "<", "|>", "</", "s>", "\u00a0"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert clean_response(text) == reference(text), text


@pytest.mark.parametrize("end", ["<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>", "<eos>", "<end_of_utterance>",
                                 "<|end|>", "<end_of_turn>\n<eos>"])  # fmt: skip
def test_every_family_end_of_turn_marker_is_dropped_before_scoring(end):
    from getok.rl.rewards_common import _END_TOKENS

    body = "<think>x</think><answer><g8_r1_c2></answer>"
    assert clean_response(body + end) == body
    # no marker is a suffix of another (the stripping loop relies on it)
    assert not any(a != b and a.endswith(b) for a in _END_TOKENS for b in _END_TOKENS)
