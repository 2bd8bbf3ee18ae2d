"""Counting answer tokens: with a real tokenizer, and Qwen2-style for text numbers.

Qwen2's tokenizer splits every digit into its own token, and punctuation is mostly one token each;
papers report text-coordinate lengths that way. :func:`qwen_style_count` reproduces that count without a
tokenizer: every digit, every punctuation mark, every run of letters, and every angle-bracket token
(``<g32_r07_c03>``) counts one; spaces are folded into the following token.
"""

from __future__ import annotations

import re

__all__ = ["qwen_style_count", "tokenizer_count"]

_QWEN = re.compile(r"<[^<>\s]{1,32}>|\d|[A-Za-z]+|[^\sA-Za-z\d]|\n")


def qwen_style_count(text: str) -> int:
    """Qwen2-style token count.

    >>> qwen_style_count("[[0.512, 0.250]]")
    15
    >>> qwen_style_count("<g32_r07_c03><off_1_0>")
    2
    """
    return len(_QWEN.findall(text))


def tokenizer_count(text: str, tokenizer) -> int:
    """Number of ids a Hugging Face tokenizer gives ``text`` (no special tokens added)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
