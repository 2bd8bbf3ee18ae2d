"""The response envelope: ``<think>…</think><answer>…</answer>``.

Models trained with GRPO reason in ``<think>`` and put the codec answer in ``<answer>``. SFT data can
use the same envelope (with a short templated thought) or the bare answer; :func:`extract_answer` reads
either, so evaluation does not depend on how the model was trained.
"""

from __future__ import annotations

import re

from .errors import DecodeError

__all__ = ["wrap_response", "parse_response", "extract_answer"]

_ENVELOPE = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.S)
_ANSWER = re.compile(r"<answer>(?P<answer>.*?)</answer>", re.S)


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
    m = _ENVELOPE.match(text)
    if not m or "<answer>" in m.group("answer") or "<think>" in m.group("think"):
        raise DecodeError("response is not <think>…</think><answer>…</answer>", "format")
    return m.group("think").strip(), m.group("answer").strip()


def extract_answer(text: str) -> str:
    """Lenient: the content of the first ``<answer>…</answer>``, else the whole text, stripped.

    >>> extract_answer("<think>t</think><answer> <g32_r01_c02> </answer>")
    '<g32_r01_c02>'
    >>> extract_answer("none")
    'none'
    """
    if not isinstance(text, str):
        raise DecodeError("response must be a string", "not_text")
    m = _ANSWER.search(text)
    return (m.group("answer") if m else text).strip()
