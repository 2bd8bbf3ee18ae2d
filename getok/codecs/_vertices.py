"""How a sequence of normalised points is written: as text numbers, bins, grid cells or cell + offset.

Codecs compose these: a point is one vertex, a box two, a polyline or polygon ring many. Every format
has the same four operations: ``format`` (points → text), ``parse`` (text → points, raising
:class:`DecodeError`), ``snap`` (the quantisation round trip, used to drop vertices that collapse) and
``new_tokens``.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from ..errors import ConfigError, DecodeError
from ..ops.grid import points_to_cells_offsets
from ..ops.quantize import dequantize, quantize
from .token_names import (
    TOKEN_RE,
    bin_token,
    bin_tokens,
    grid_token,
    grid_tokens,
    offset_token,
    offset_tokens,
    parse_bin_token,
    parse_grid_token,
    parse_offset_token,
)

_WS = re.compile(r"\s+")


def split_tokens(line: str) -> list[str]:
    """Split a line made only of ``<...>`` tokens (whitespace allowed between them)."""
    toks = TOKEN_RE.findall(line)
    if "".join(toks) == line:  # the common case: nothing between the tokens
        return toks
    compact = _WS.sub("", line)
    toks = TOKEN_RE.findall(compact)
    if "".join(toks) != compact:
        bad = TOKEN_RE.sub("", compact)[:20]
        raise DecodeError(f"unexpected text {bad!r} between tokens", "stray_text")
    return toks


class Vertices:
    """Base of the vertex formats. ``sep`` separates polygons of one object."""

    sep = ";"

    def new_tokens(self) -> list[str]:
        return []

    def snap(self, pts_norm: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def format(self, pts_norm: np.ndarray, single: bool = False) -> str:  # pragma: no cover
        raise NotImplementedError

    def parse(self, text: str, single: bool = False) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class TextVertices(Vertices):
    """Numbers as text. ``style="norm3"``: ``[0.512, 0.250]`` (Shikra / SimpleSeg, 3 decimals);
    ``style="int1000"``: ``[512, 250]`` (Qwen2-VL integers in ``[0, 1000)``). A sequence is a list of
    pairs ``[[x, y], [x, y]]``; polygons of one object are separated by ``"; "``."""

    sep = "; "
    STYLES = ("norm3", "int1000")

    def __init__(self, style: str = "norm3") -> None:
        if style not in self.STYLES:
            raise ConfigError(f"text style must be one of {self.STYLES}, got {style!r}")
        self.style = style

    def _q(self, v):
        if self.style == "norm3":
            return quantize(v, 1000, "round")
        return quantize(v, 1000, "floor")

    def _dq(self, q):
        if self.style == "norm3":
            return dequantize(q, 1000, "round")
        return dequantize(q, 1000, "floor")

    def snap(self, pts_norm):
        return self._dq(self._q(pts_norm))

    def _num(self, q: int) -> str:
        return f"{q / 1000:.3f}" if self.style == "norm3" else str(int(q))

    def format_numbers(self, values_norm) -> str:
        """Flat values → ``"[a, b, ...]"``."""
        return "[" + ", ".join(self._num(q) for q in self._q(np.asarray(values_norm).ravel())) + "]"

    def format(self, pts_norm, single: bool = False) -> str:
        pts = np.asarray(pts_norm, dtype=np.float64).reshape(-1, 2)
        if single:
            return self.format_numbers(pts[0])
        return "[" + ", ".join(self.format_numbers(p) for p in pts) + "]"

    def parse_numbers(self, text: str, count: int | None = None) -> np.ndarray:
        """``"[a, b, ...]"`` → normalised values; checks range and (optionally) the count."""
        vals = _json_list(text)
        if not all(_is_number(v) for v in vals):
            raise DecodeError(f"expected a flat list of numbers, got {text[:40]!r}", "bad_structure")
        if count is not None and len(vals) != count:
            raise DecodeError(f"expected {count} numbers, got {len(vals)}", "bad_count")
        return self._values(vals)

    def _values(self, vals) -> np.ndarray:
        a = np.asarray(vals, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise DecodeError("non-finite coordinate", "out_of_range")
        if self.style == "norm3":
            if (a < 0).any() or (a > 1).any():
                raise DecodeError("normalised coordinate outside [0, 1]", "out_of_range")
            return a
        if (a < 0).any() or (a > 1000).any() or not np.all(a == np.floor(a)):
            raise DecodeError("coordinate is not an integer in [0, 1000)", "out_of_range")
        return self._dq(np.minimum(a, 999))

    def parse(self, text: str, single: bool = False) -> np.ndarray:
        if single:
            return self.parse_numbers(text, 2).reshape(1, 2)
        vals = _json_list(text)
        if not vals or not all(
            isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in vals
        ):
            raise DecodeError(f"expected a list of [x, y] pairs, got {text[:40]!r}", "bad_structure")
        return self._values(vals).reshape(-1, 2)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _json_list(text: str) -> list:
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        raise DecodeError(f"expected a bracketed list, got {t[:40]!r}", "bad_structure")
    if t.count("[") > 4096:
        raise DecodeError("list nested or repeated too deeply", "bad_structure")
    try:
        vals = json.loads(t, parse_constant=lambda c: math.nan)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not a list of numbers: {exc}", "bad_structure") from None
    if not isinstance(vals, list):
        raise DecodeError("expected a list", "bad_structure")
    return vals


class BinVertices(Vertices):
    """1-D bins: ``<loc_0512><loc_0250>`` per point (x then y), ``bins`` levels per axis."""

    def __init__(self, bins: int = 1000) -> None:
        self.bins = int(bins)

    def new_tokens(self):
        return bin_tokens(self.bins)

    def snap(self, pts_norm):
        return dequantize(quantize(pts_norm, self.bins), self.bins)

    def format(self, pts_norm, single: bool = False) -> str:
        q = quantize(np.asarray(pts_norm).reshape(-1, 2), self.bins)
        return "".join(bin_token(int(v), self.bins) for v in q.ravel())

    def parse(self, text: str, single: bool = False) -> np.ndarray:
        toks = split_tokens(text)
        idx = [parse_bin_token(t, self.bins) for t in toks]
        if any(i is None for i in idx):
            bad = toks[idx.index(None)]
            raise DecodeError(f"unknown token {bad!r} (expected <loc_NNNN>)", "unknown_token")
        if not idx or len(idx) % 2:
            raise DecodeError(f"expected pairs of bins, got {len(idx)} tokens", "bad_count")
        if single and len(idx) != 2:
            raise DecodeError(f"expected one point (2 bins), got {len(idx)} tokens", "bad_count")
        return dequantize(np.asarray(idx).reshape(-1, 2), self.bins)


class GridVertices(Vertices):
    """One grid-cell token per point: ``<g32_r07_c03>``; the point decodes to the cell centre."""

    def __init__(self, n: int = 32) -> None:
        self.n = int(n)

    def new_tokens(self):
        return grid_tokens(self.n)

    def snap(self, pts_norm):
        return dequantize(quantize(pts_norm, self.n), self.n)

    def cells(self, pts_norm) -> np.ndarray:
        return quantize(np.asarray(pts_norm).reshape(-1, 2), self.n)

    def format_cells(self, cells) -> str:
        return "".join(grid_token(int(cx), int(cy), self.n) for cx, cy in np.asarray(cells).reshape(-1, 2))

    def format(self, pts_norm, single: bool = False) -> str:
        return self.format_cells(self.cells(pts_norm))

    def parse_cells(self, text: str) -> np.ndarray:
        flat = self.parse_indices(text)
        return np.stack([flat % self.n, flat // self.n], axis=1)

    def parse_indices(self, text: str) -> np.ndarray:
        """Row-major cell indices ``cy * n + cx`` of a line of grid tokens, in order (repeats kept)."""
        memo = self.__dict__.setdefault("_cell_memo", {})  # token -> row-major index cy * n + cx, valid only
        if text[:1] == "<" and text[-1:] == ">":  # the common case: known tokens only, split without a regex
            try:
                return np.fromiter(map(memo.__getitem__, text[1:-1].split("><")), dtype=np.int64)
            except KeyError:  # a token not seen yet, or text that is not a token: the checked path
                pass
        toks = split_tokens(text)
        if not toks:
            raise DecodeError("no grid tokens", "empty")
        idx = [memo.get(t[1:-1]) for t in toks]
        if None in idx:  # first sight of a token (or an invalid one): parse and remember
            for k, t in enumerate(toks):
                if idx[k] is None:
                    p = parse_grid_token(t)
                    if p is None or p[0] != self.n:
                        raise DecodeError(f"unknown token {t!r} (expected a {self.n}x{self.n} grid cell)", "unknown_token")
                    idx[k] = memo[t[1:-1]] = p[2] * self.n + p[1]
        return np.fromiter(idx, dtype=np.int64, count=len(idx))

    def parse(self, text: str, single: bool = False) -> np.ndarray:
        cells = self.parse_cells(text)
        if single and len(cells) != 1:
            raise DecodeError(f"expected one cell, got {len(cells)}", "bad_count")
        return dequantize(cells, self.n)


class GridOffsetVertices(GridVertices):
    """A cell and an offset per point: ``<g32_r07_c03><off_1_0>``; the point decodes to the cell centre
    moved by ``(dx, dy) * step`` cells (GETok's default ``r = 1``, ``step = 0.5``: effective 2n)."""

    def __init__(self, n: int = 32, r: int = 1, step: float = 0.5) -> None:
        super().__init__(n)
        self.r = int(r)
        self.step = float(step)

    def new_tokens(self):
        return grid_tokens(self.n) + offset_tokens(self.r)

    def cells_offsets(self, pts_norm):
        pts = np.asarray(pts_norm, dtype=np.float64).reshape(-1, 2)
        return points_to_cells_offsets(pts, self.n, self.r, self.step, (1, 1))

    def positions(self, cells, offsets) -> np.ndarray:
        pos = (np.asarray(cells) + 0.5 + np.asarray(offsets) * self.step) / self.n
        return np.clip(pos, 0.0, 1.0)

    def snap(self, pts_norm):
        return self.positions(*self.cells_offsets(pts_norm))

    def format(self, pts_norm, single: bool = False) -> str:
        cells, offs = self.cells_offsets(pts_norm)
        return "".join(
            grid_token(int(c[0]), int(c[1]), self.n) + offset_token(int(o[0]), int(o[1]))
            for c, o in zip(cells, offs)
        )

    def parse_offset(self, token: str) -> tuple[int, int]:
        memo = self.__dict__.setdefault("_offset_memo", {})  # token -> (dx, dy), valid tokens only
        o = memo.get(token)
        if o is None:
            o = parse_offset_token(token)
            if o is None or max(abs(o[0]), abs(o[1])) > self.r:
                raise DecodeError(f"unknown token {token!r} (expected an offset with radius {self.r})", "unknown_token")
            memo[token] = o
        return o

    def parse(self, text: str, single: bool = False) -> np.ndarray:
        toks = split_tokens(text)
        if not toks or len(toks) % 2:
            raise DecodeError(f"expected (cell, offset) pairs, got {len(toks)} tokens", "bad_count")
        if single and len(toks) != 2:
            raise DecodeError(f"expected one (cell, offset) pair, got {len(toks)} tokens", "bad_count")
        cells = self.parse_cells("".join(toks[0::2]))
        offs = np.asarray([self.parse_offset(t) for t in toks[1::2]], dtype=np.int64)
        return self.positions(cells, offs)
