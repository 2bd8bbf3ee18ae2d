"""Token names: one generator per token family, and their parsers. Token sets are data.

* grid cells: ``<g{n}_r{cy}_c{cx}>`` with row and column zero-padded to the width of ``n - 1``
  (``<g32_r07_c03>`` is column 3, row 7 of a 32 x 32 grid). Generated row-major, so sorting the names
  gives id order, and the grid size is in the name so grids of two sizes can share a vocabulary.
* offsets: ``<off_{dx}_{dy}>`` with signed integers (``<off_0_0>`` is "stay", ``<off_-1_1>`` moves one
  step left and one down); generated with dx outer, dy inner, both ascending.
* ``<DELETE>``: withdraw a proposed point.
* 1-D bins: ``<loc_{i:04d}>`` (Pix2Seq / Florence-2 style), ``0 <= i < bins``.
"""

from __future__ import annotations

import functools
import re

from ..errors import ConfigError

__all__ = [
    "DELETE",
    "grid_token",
    "grid_tokens",
    "parse_grid_token",
    "offset_token",
    "offset_tokens",
    "parse_offset_token",
    "bin_token",
    "bin_tokens",
    "parse_bin_token",
    "TOKEN_RE",
]

DELETE = "<DELETE>"

#: Matches any angle-bracket token (used to split answers into tokens).
TOKEN_RE = re.compile(r"<[^<>\s]{1,32}>")

_GRID_RE = re.compile(r"^<g(\d+)_r(\d+)_c(\d+)>$")
_OFF_RE = re.compile(r"^<off_(-?\d+)_(-?\d+)>$")
_BIN_RE = re.compile(r"^<loc_(\d+)>$")


def _width(n: int) -> int:
    return len(str(max(int(n) - 1, 0)))


def grid_token(cx: int, cy: int, n: int) -> str:
    """Name of cell ``(cx, cy)`` of an ``n x n`` grid.

    >>> grid_token(3, 7, 32)
    '<g32_r07_c03>'
    """
    if not (0 <= cx < n and 0 <= cy < n):
        raise ConfigError(f"cell ({cx}, {cy}) outside a {n}x{n} grid")
    w = _width(n)
    return f"<g{n}_r{cy:0{w}d}_c{cx:0{w}d}>"


def grid_tokens(n: int) -> list[str]:
    """All ``n * n`` cell tokens in row-major (= id = sort) order."""
    return [grid_token(cx, cy, n) for cy in range(n) for cx in range(n)]


@functools.lru_cache(maxsize=1 << 16)  # pure and over a finite vocabulary: decoding's hot path
def parse_grid_token(token: str) -> tuple[int, int, int] | None:
    """``'<g32_r07_c03>'`` → ``(n, cx, cy)`` = ``(32, 3, 7)``; ``None`` for other strings."""
    m = _GRID_RE.match(token)
    if not m:
        return None
    n, cy, cx = (int(v) for v in m.groups())
    if not (0 <= cx < n and 0 <= cy < n) or len(m.group(2)) != _width(n) or len(m.group(3)) != _width(n):
        return None
    return n, cx, cy


def offset_token(dx: int, dy: int) -> str:
    """``offset_token(-1, 0)`` → ``'<off_-1_0>'``."""
    return f"<off_{int(dx)}_{int(dy)}>"


def offset_tokens(r: int) -> list[str]:
    """All ``(2r + 1)^2`` offset tokens, dx outer, dy inner, ascending."""
    return [offset_token(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)]


@functools.lru_cache(maxsize=1 << 16)  # pure and over a finite vocabulary: decoding's hot path
def parse_offset_token(token: str) -> tuple[int, int] | None:
    """``'<off_-1_0>'`` → ``(-1, 0)``; ``None`` for other strings (``'<off_-0_0>'`` included)."""
    m = _OFF_RE.match(token)
    if not m or m.group(1) == "-0" or m.group(2) == "-0":
        return None
    return int(m.group(1)), int(m.group(2))


def bin_token(i: int, bins: int) -> str:
    """``bin_token(7, 1000)`` → ``'<loc_0007>'``."""
    if not 0 <= i < bins:
        raise ConfigError(f"bin {i} outside [0, {bins})")
    return f"<loc_{int(i):0{max(4, _width(bins))}d}>"


def bin_tokens(bins: int) -> list[str]:
    return [bin_token(i, bins) for i in range(bins)]


def parse_bin_token(token: str, bins: int) -> int | None:
    m = _BIN_RE.match(token)
    if not m or len(m.group(1)) != max(4, _width(bins)):
        return None
    i = int(m.group(1))
    return i if i < bins else None
