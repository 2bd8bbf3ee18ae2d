"""The response envelope: ``<think>…</think><answer>…</answer>``.

Models trained with GRPO reason in ``<think>`` and put the codec answer in ``<answer>``. SFT data can
use the same envelope (with a short templated thought) or the bare answer; :func:`extract_answer` reads
either, so evaluation does not depend on how the model was trained.
"""

from __future__ import annotations

import re

from .errors import DecodeError

__all__ = ["wrap_response", "parse_response", "extract_answer", "extract_think"]

# The envelope used to be read with the regexes ``^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$`` and
# ``<answer>(.*?)</answer>`` (re.S). Their lazy groups rescan the rest of the text from every candidate
# tag, so a runaway completion ("</think><answer>" repeated) took quadratic time. The scans below return
# exactly what those regexes matched (tests pin it), with str.find / one whitespace match per tag: linear.
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_SPACES = re.compile(r"\s*")  # the regexes' \s (the same set as str.isspace)


def _skip_spaces(text: str, pos: int) -> int:
    """First index at or after ``pos`` that is not whitespace (``len(text)`` if none)."""
    return _SPACES.match(text, pos).end()


def _envelope(text: str) -> tuple[str, str] | None:
    r"""``(think, answer)`` as ``^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$`` (re.S) matches
    them, unstripped; ``None`` where that regex does not match.

    The answer ends at the last ``</answer>`` with only whitespace after it (the one place ``\s*$`` can
    follow); the think ends at the first ``</think>`` that whitespace and ``<answer>`` follow, with that
    ``</answer>`` after the ``<answer>`` (a later ``</think>`` only moves the ``<answer>`` later).
    """
    start = _skip_spaces(text, 0)
    if not text.startswith(_THINK_OPEN, start):
        return None
    close = text.rfind(_ANSWER_CLOSE)
    if close < 0 or _skip_spaces(text, close + len(_ANSWER_CLOSE)) != len(text):
        return None
    body = start + len(_THINK_OPEN)
    end = text.find(_THINK_CLOSE, body)
    while end >= 0:
        a = _skip_spaces(text, end + len(_THINK_CLOSE))
        if text.startswith(_ANSWER_OPEN, a):
            if a + len(_ANSWER_OPEN) > close:
                return None
            return text[body:end], text[a + len(_ANSWER_OPEN) : close]
        end = text.find(_THINK_CLOSE, end + len(_THINK_CLOSE))
    return None


def _first_between(text: str, open_tag: str, close_tag: str) -> str | None:
    """The content of the first ``open_tag … close_tag`` as ``re.search(open(.*?)close, re.S)`` finds it
    (the first opening tag, up to the first closing tag after it), else ``None``."""
    i = text.find(open_tag)
    if i < 0:
        return None
    j = text.find(close_tag, i + len(open_tag))
    return None if j < 0 else text[i + len(open_tag) : j]


def wrap_response(answer: str, think: str | None = None) -> str:
    """``answer`` in the envelope; ``think=None`` gives the bare answer.

    >>> wrap_response("<g32_r01_c02>", "the red disc")
    '<think>the red disc</think><answer><g32_r01_c02></answer>'
    """
    if think is None:
        return answer
    return f"<think>{think}</think><answer>{answer}</answer>"


def parse_response(text: str) -> tuple[str, str]:
    """Strict: ``(think, answer)`` of a full envelope, else :class:`DecodeError` (reason ``format``).

    >>> parse_response("<think>x</think><answer>none</answer>")
    ('x', 'none')
    """
    if not isinstance(text, str):
        raise DecodeError("response must be a string", "format")
    m = _envelope(text)
    if m is None or _ANSWER_OPEN in m[1] or _THINK_OPEN in m[0]:
        raise DecodeError("response is not <think>…</think><answer>…</answer>", "format")
    return m[0].strip(), m[1].strip()


def extract_answer(text: str) -> str:
    """Lenient: the content of the first ``<answer>…</answer>``, else the whole text, stripped.

    >>> extract_answer("<think>t</think><answer> <g32_r01_c02> </answer>")
    '<g32_r01_c02>'
    >>> extract_answer("none")
    'none'
    """
    if not isinstance(text, str):
        raise DecodeError("response must be a string", "not_text")
    answer = _first_between(text, _ANSWER_OPEN, _ANSWER_CLOSE)
    return (text if answer is None else answer).strip()


def extract_think(text: str) -> str:
    """Lenient: the content of the first ``<think>…</think>``, stripped; ``""`` without one.

    >>> extract_think("<think> look left </think><answer>none</answer>"), extract_think("none")
    ('look left', '')
    """
    if not isinstance(text, str):
        return ""
    think = _first_between(text, _THINK_OPEN, _THINK_CLOSE)
    return "" if think is None else think.strip()
