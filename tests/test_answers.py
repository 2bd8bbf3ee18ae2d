"""The response envelope (getok.answers): exact accept / reject behaviour and extracted text on tricky
inputs, equality with the regexes it used to be read with, and linear time on runaway completions."""

import itertools
import re
import time

import pytest

from getok.answers import extract_answer, extract_think, parse_response
from getok.errors import DecodeError

# The regexes the envelope used to be read with (quadratic on runaway input): the behaviour to keep.
_REF_ENVELOPE = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.S)
_REF_ANSWER = re.compile(r"<answer>(?P<answer>.*?)</answer>", re.S)
_REF_THINK = re.compile(r"<think>(.*?)</think>", re.S)


def ref_parse(text):
    m = _REF_ENVELOPE.match(text)
    if not m or "<answer>" in m.group("answer") or "<think>" in m.group("think"):
        return None
    return m.group("think").strip(), m.group("answer").strip()


def ref_extract_answer(text):
    m = _REF_ANSWER.search(text)
    return (m.group("answer") if m else text).strip()


def ref_extract_think(text):
    m = _REF_THINK.search(text)
    return m.group(1).strip() if m else ""


def parsed(text):
    try:
        return parse_response(text)
    except DecodeError as exc:
        assert exc.reason == "format"
        return None


# (text, parse_response result or None for a format error, extract_answer, extract_think)
CASES = [
    ("<think>a</think><answer>b</answer>", ("a", "b"), "b", "a"),
    ("  \n<think> a </think>\n\t<answer> b </answer>\n  ", ("a", "b"), "b", "a"),
    ("<think>a</think>\n<answer>line1\nline2</answer>", ("a", "line1\nline2"), "line1\nline2", "a"),
    ("<think>a</think> <answer></answer>", ("a", ""), "", "a"),
    ("<think>a</think><answer>b</answer>\n", ("a", "b"), "b", "a"),
    ("<think>a</think>\u00a0<answer>b</answer>\u2003", ("a", "b"), "b", "a"),  # unicode whitespace
    # text after </answer>, before <think>, between </think> and <answer>
    ("<think>a</think><answer>b</answer>c", None, "b", "a"),
    ("x<think>a</think><answer>b</answer>", None, "b", "a"),
    ("<think>a</think>x<answer>b</answer>", None, "b", "a"),
    # missing closers, malformed or differently cased tags
    ("<think>a</think><answer>", None, "<think>a</think><answer>", "a"),
    ("<think>a<answer>b</answer>", None, "b", ""),
    ("<think>a</think><answer>b</answer >", None, "<think>a</think><answer>b</answer >", "a"),
    ("<THINK>a</THINK><answer>b</answer>", None, "b", ""),
    ("", None, "", ""),
    ("none", None, "none", ""),
    # nested / repeated tags: the answer runs to the last </answer> (only whitespace may follow it), the
    # think to the first </think> that whitespace and <answer> follow
    ("<think>a</think><answer>b</answer></answer>", ("a", "b</answer>"), "b", "a"),
    ("<think>a</think><answer>b</answer>\n\n</answer>", ("a", "b</answer>"), "b", "a"),
    ("<think>a</think><answer>b</answer>x</answer>", ("a", "b</answer>x"), "b", "a"),
    ("<think>a</think><answer></answer></answer>", ("a", "</answer>"), "", "a"),
    ("<think>a</think>x</think><answer>c</answer>", ("a</think>x", "c"), "c", "a"),
    ("<think>a</think></think><answer>b</answer>", ("a</think>", "b"), "b", "a"),
    ("<think><answer>b</answer></think><answer>c</answer>", ("<answer>b</answer>", "c"), "b", "<answer>b</answer>"),
    ("<think>a</think><answer>b<answer>c</answer>", None, "b<answer>c", "a"),
    ("<think>a<think>b</think><answer>c</answer>", None, "c", "a<think>b"),
    ("<think></think><answer></answer><think></think><answer>z</answer>", None, "", ""),
]


@pytest.mark.parametrize("text,envelope,answer,think", CASES)
def test_tricky_inputs(text, envelope, answer, think):
    assert parsed(text) == envelope
    assert extract_answer(text) == answer
    assert extract_think(text) == think
    # the expectations are those of the reference regexes
    assert (ref_parse(text), ref_extract_answer(text), ref_extract_think(text)) == (envelope, answer, think)


PIECES = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "x"]


def _same_as_reference(text: str) -> bool:
    want = ref_parse(text)
    assert parsed(text) == want, text
    assert extract_answer(text) == ref_extract_answer(text), text
    assert extract_think(text) == ref_extract_think(text), text
    return want is not None


def test_same_results_as_the_reference_regexes_on_every_short_tag_sequence():
    """Every sequence of up to 5 pieces over tags, whitespace and text: the scans return what the
    regexes did (accept / reject and the extracted text)."""
    for k in range(6):
        for combo in itertools.product(PIECES, repeat=k):
            _same_as_reference("".join(combo))


def test_same_results_as_the_reference_regexes_around_an_envelope():
    """An envelope with any piece (or none) before, inside and after each of its tags."""
    fill = ["", *PIECES]
    n_accepted = 0
    for a, b, c, d, e in itertools.product(fill, repeat=5):
        n_accepted += _same_as_reference(f"{a}<think>{b}</think>{c}<answer>{d}</answer>{e}")
    assert n_accepted > 1000  # the sweep reaches accepted envelopes, not only rejections


def test_non_text_is_rejected():
    with pytest.raises(DecodeError) as exc:
        parse_response(None)
    assert exc.value.reason == "format"
    with pytest.raises(DecodeError) as exc:
        extract_answer(3)
    assert exc.value.reason == "not_text"
    assert extract_think(None) == ""


def _rep(unit: str, n: int) -> str:
    return unit * (n // len(unit))


N = 200_000

#: Runaway completions that made the regexes quadratic (seconds each at 100 k characters), with what
#: parse_response / extract_answer / extract_think must return.
RUNAWAY = {
    "close_open_pairs": (
        "<think>" + _rep("</think><answer></answer>", N) + "x",
        None,
        "",
        "",
    ),
    "answer_openers": (_rep("<answer>", N), None, _rep("<answer>", N), ""),
    "think_openers": ("<think>" + _rep("<think>", N), None, "<think>" + _rep("<think>", N), ""),
    "answer_after_answer": (
        "<think>a</think><answer>" + _rep("</think><answer>", N),
        None,
        ("<think>a</think><answer>" + _rep("</think><answer>", N)).strip(),
        "a",
    ),
    "think_closers_then_envelope": (
        "<think>" + _rep("</think>x", N) + "</think><answer><g4_r0_c0></answer>",
        (_rep("</think>x", N), "<g4_r0_c0>"),
        "<g4_r0_c0>",
        "",
    ),
    "whitespace_runs": (
        "<think>a</think>" + " " * N + "<answer>b" + " " * N,
        None,
        ("<think>a</think>" + " " * N + "<answer>b").strip(),
        "a",
    ),
}


@pytest.mark.parametrize("name", sorted(RUNAWAY))
def test_runaway_completions_parse_in_linear_time(name):
    text, envelope, answer, think = RUNAWAY[name]
    assert len(text) >= N
    t0 = time.perf_counter()
    got = (parsed(text), extract_answer(text), extract_think(text))
    elapsed = time.perf_counter() - t0
    assert got == (envelope, answer, think)
    # the regexes took 5-20 s on these at 200 k characters; the scans take milliseconds
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s for {len(text)} characters"
