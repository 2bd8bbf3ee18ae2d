"""Token names: one generator per token family, and their parsers. Token sets are data.

* grid cells: ``<g{n}_r{cy}_c{cx}>`` with row and column zero-padded to the width of ``n - 1``
  (``<g32_r07_c03>`` is column 3, row 7 of a 32 x 32 grid). Generated row-major, so sorting the names
  gives id order, and the grid size is in the name so grids of two sizes can share a vocabulary.
* offsets: ``<off_{dx}_{dy}>`` with signed integers (``<off_0_0>`` is "stay", ``<off_-1_1>`` moves one
  step left and one down); generated with dx outer, dy inner, both ascending.
* ``<DELETE>``: withdraw a proposed point.
* 1-D bins: ``<loc_{i:04d}>`` (Pix2Seq / Florence-2 style), ``0 <= i < bins``.

Vocabulary limits (:func:`check_vocab`, applied when a codec spec is parsed, before any token is made): a
grid has ``1 <= n <= 362`` (:data:`MAX_GRID_N`), offsets ``0 <= r <= 16`` (:data:`MAX_OFFSET_R`), bins ``2 <= bins <= 10000``
(:data:`MAX_BINS`), and one codec adds at most :data:`MAX_NEW_TOKENS` = ``1 << 17`` = 131072 tokens —
a 362 x 362 grid. Real configurations are far below: GETok's ``n=32`` adds 1034 tokens with its offsets,
Pix2Seq / Florence-2's 1000 bins 1000; a 7B model's embedding grows by ~0.9 GB per 131072 rows in bf16.
"""

from __future__ import annotations

import functools
import math
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
    "MAX_NEW_TOKENS",
    "MAX_BINS",
    "MAX_OFFSET_R",
    "MAX_GRID_N",
    "check_vocab",
]

DELETE = "<DELETE>"

#: Most tokens one codec may add to a tokenizer (a spec asking for more is refused when it is parsed).
MAX_NEW_TOKENS = 1 << 17
#: Largest number of 1-D bins per axis.
MAX_BINS = 10_000
#: Largest offset radius (``(2r + 1)^2`` offset tokens).
MAX_OFFSET_R = 16
#: Largest grid side: ``n * n`` cell tokens within :data:`MAX_NEW_TOKENS` (362).
MAX_GRID_N = math.isqrt(MAX_NEW_TOKENS)


def check_vocab(codec: str, *, n: int | None = None, r: int | None = None, bins: int | None = None,
                extra: int = 0, count: bool = True) -> int:
    """Validate the token-family parameters of a codec spec and return how many tokens they add.

    ``n`` (grid side, ``n * n`` cell tokens), ``r`` (offset radius, ``(2r + 1)^2`` tokens), ``bins`` (one
    token per bin) and ``extra`` (e.g. ``<DELETE>``) are what the codec *uses*; each given value must lie in
    its range, and (with ``count``) their total must not exceed :data:`MAX_NEW_TOKENS` — so an absurd spec
    such as ``polygon:vertex=grid,n=100000`` is refused at once instead of building 10^10 token names.
    Raises :class:`ConfigError` naming ``codec.param`` and the limit.

    >>> check_vocab("grid_offset", n=32, r=1, extra=1)
    1034
    >>> check_vocab("grid", n=400)
    Traceback (most recent call last):
    ...
    getok.errors.ConfigError: grid.n must be in [1, 362] (n * n tokens within MAX_NEW_TOKENS = 1 << 17), got 400
    >>> check_vocab("grid_offset", n=362, r=16)
    Traceback (most recent call last):
    ...
    getok.errors.ConfigError: grid_offset.n=362 adds 132133 new tokens, more than the limit of 131072 (MAX_NEW_TOKENS = 1 << 17): use n <= 360
    """
    limits = (
        ("n", n, 1, MAX_GRID_N, " (n * n tokens within MAX_NEW_TOKENS = 1 << 17)"),
        ("r", r, 0, MAX_OFFSET_R, ""),
        ("bins", bins, 2, MAX_BINS, ""),
    )
    for name, v, lo, hi, why in limits:
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{codec}.{name} must be an integer, got {v!r}")
        if not lo <= v <= hi:
            raise ConfigError(f"{codec}.{name} must be in [{lo}, {hi}]{why}, got {v}")
    offsets = (2 * r + 1) ** 2 if r is not None else 0
    total = (n * n if n is not None else 0) + offsets + (bins or 0) + extra
    if count and total > MAX_NEW_TOKENS:
        if n is not None:
            what, hint = f"n={n}", f"use n <= {math.isqrt(max(MAX_NEW_TOKENS - offsets - (bins or 0) - extra, 0))}"
        else:
            what, hint = f"bins={bins}", f"use bins <= {MAX_NEW_TOKENS - offsets - extra}"
        raise ConfigError(
            f"{codec}.{what} adds {total} new tokens, more than the limit of {MAX_NEW_TOKENS} "
            f"(MAX_NEW_TOKENS = 1 << 17): {hint}"
        )
    return total

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
