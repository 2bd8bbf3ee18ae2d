"""``grid_offset``: GETok grid tokens plus offset tokens and ``<DELETE>``.

Spec: ``grid_offset:n=32,r=1,step=0.5``. Offsets move a point by ``(dx, dy) * step`` cells with
``|dx|, |dy| <= r`` (GETok: 9 offset tokens, half-cell step, so a 32-grid reaches an effective 64).

Two uses:

* **One turn** — point / box / polyline answers write each point as a cell and an offset:
  ``<g32_r07_c03><off_1_0>``. A ``mask`` answer is the set of cells, as in ``grid`` (the proposal).
* **Refinement turn** — given a proposal (cells, in order), the answer has one line per proposed
  instance with, for each proposed cell in order, an offset token or ``<DELETE>``:
  ``<off_0_0><off_1_-1><DELETE>``. :meth:`GridOffsetCodec.decode_refinement` applies it to the proposal.

Examples
--------
>>> from getok import Geometry, get_codec
>>> c = get_codec("grid_offset:n=4")
>>> c.encode([Geometry(size=(40, 40), points=[[19.0, 5.0]])], kind="point")
'<g4_r0_c1><off_1_0>'
>>> prop = c.decode("<g4_r0_c0><g4_r1_c0>", (40, 40))
>>> ref = c.decode_refinement("<off_1_0><DELETE>", prop)
>>> ref[0].refined_points().tolist()
[[10.0, 5.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..conventions import denormalize_points, normalize_points
from ..errors import ConfigError, DecodeError
from ..geometry import Geometry
from ..ops.grid import apply_offsets
from ._shapes import geometry_box, geometry_points
from ._vertices import GridOffsetVertices, split_tokens
from .base import NO_TARGET, AnswerShape, DecodeResult, register_codec
from .grid import GridCodec
from .token_names import DELETE, check_vocab, offset_token

__all__ = ["GridOffsetCodec"]


@dataclass(frozen=True)
class GridOffsetConfig:
    n: int = 32
    r: int = 1
    step: float = 0.5

    def __post_init__(self):
        check_vocab("grid_offset", n=self.n, r=self.r, extra=1)  # cells + offsets + <DELETE> <= MAX_NEW_TOKENS
        if not 0 < self.step <= 1:
            raise ConfigError(f"grid_offset.step must be in (0, 1] (a fraction of a cell), got {self.step}")


@register_codec
class GridOffsetCodec(GridCodec):
    name = "grid_offset"
    Config = GridOffsetConfig

    def _make_vertices(self):
        c = self.config
        return GridOffsetVertices(c.n, c.r, c.step)

    def new_tokens(self):
        return self.vertices.new_tokens() + [DELETE]

    def encode_one(self, g: Geometry, kind: str) -> str:
        if kind == "mask":
            return super().encode_one(g, kind)
        if kind == "box":
            pts = geometry_box(g).reshape(2, 2)
        else:
            pts = geometry_points(g)[: 1 if kind == "point" else None]
        return self.vertices.format(normalize_points(pts, g.size))

    def answer_shape(self, kind: str, refine: bool = False) -> AnswerShape:
        c = self.config
        if refine:
            if kind != "mask":
                self._refusing_refinement(kind, refine)
            return AnswerShape("refine", "refine", n=c.n, r=c.r, step=c.step)
        unit = "cell" if kind == "mask" else "cell_off"
        return AnswerShape(unit, self.INSTANCE_UNITS[kind], n=c.n, r=c.r, step=c.step, box=kind == "box")

    def decode_one(self, line: str, size, kind: str) -> Geometry:
        if kind == "mask":
            return super().decode_one(line, size, kind)
        pts = denormalize_points(self.vertices.parse(line, single=kind == "point"), size)
        if kind == "box":
            if len(pts) != 2:
                raise DecodeError(f"a box needs 2 (cell, offset) pairs, got {len(pts)}", "bad_count")
            b = pts.reshape(4)
            if b[0] > b[2] or b[1] > b[3]:
                raise DecodeError("box corners out of order", "bad_box")
            return Geometry(size=size, box=b)
        return Geometry(size=size, points=pts)

    def token_text(self, token):
        if token == DELETE:
            return "delete"
        return super().token_text(token)

    # ----------------------------------------------------------------- refinement turn
    def encode_refinement(self, geometries: Sequence[Geometry]) -> str:
        """Refinement answer for proposals carrying ``offsets`` and/or ``deleted`` (one line each)."""
        if len(geometries) == 0:
            return NO_TARGET
        lines = []
        for g in geometries:
            if g.cells is None or len(g.cells) == 0:
                raise DecodeError("a refinement needs proposed cells", "empty")
            k = len(g.cells)
            offs = g.offsets if g.offsets is not None else np.zeros((k, 2), dtype=np.int64)
            dele = g.deleted if g.deleted is not None else np.zeros(k, dtype=bool)
            if g.offsets is not None and not np.isclose(g.offset_step, self.config.step):
                raise ConfigError(f"offsets use step {g.offset_step}, codec uses {self.config.step}")
            if np.abs(offs).max(initial=0) > self.config.r:
                raise ConfigError(f"offsets exceed the codec radius r={self.config.r}")
            lines.append("".join(DELETE if d else offset_token(*o) for o, d in zip(offs, dele)))
        return "\n".join(lines)

    def decode_refinement(self, text: str, proposal: Sequence[Geometry]) -> list[Geometry]:
        """Apply a refinement answer to a proposal; raises :class:`DecodeError` when they disagree.

        Each line must hold exactly one offset or ``<DELETE>`` per proposed cell of the matching
        proposal instance. Returns the proposal instances with ``offsets``, ``deleted`` and the
        refined ``points`` filled in.
        """
        if not isinstance(text, str):
            raise DecodeError("answer must be a string", "not_text")
        body = text.strip()
        if not proposal:
            if body.lower() == NO_TARGET:
                return []
            raise DecodeError("the proposal is empty; the only valid refinement is 'none'", "count_mismatch")
        if not body:
            raise DecodeError("empty refinement answer", "empty")
        lines = [ln.strip() for ln in body.split("\n") if ln.strip()]
        if len(lines) != len(proposal):
            raise DecodeError(
                f"refinement has {len(lines)} lines for {len(proposal)} proposed instances", "count_mismatch"
            )
        out = []
        for i, (line, g) in enumerate(zip(lines, proposal)):
            if g.cells is None or g.grid_n != self.n:
                raise DecodeError(f"instance {i}: proposal has no cells on the {self.n}-grid", "count_mismatch")
            toks = split_tokens(line)
            if len(toks) != len(g.cells):
                raise DecodeError(
                    f"instance {i}: {len(toks)} refinement tokens for {len(g.cells)} proposed cells",
                    "count_mismatch",
                )
            codes, rows = self._refinement_table()
            idx = [codes.get(t, -1) for t in toks]
            if -1 in idx:  # a token outside the table: the parser decides (and names the error)
                arr = np.empty((len(toks), 3), dtype=np.int64)
                for k, t in enumerate(toks):
                    if idx[k] >= 0:
                        arr[k] = rows[idx[k]]
                        continue
                    try:
                        arr[k] = (*self.vertices.parse_offset(t), 0)
                    except DecodeError as exc:
                        raise DecodeError(f"instance {i}: {exc}", exc.reason) from None
            else:
                arr = rows[np.fromiter(idx, dtype=np.int64, count=len(idx))]
            offs, dele = arr[:, :2], arr[:, 2].astype(bool)
            step = self.config.step
            refined = apply_offsets(g.cells, self.n, g.size, offs, step, dele)
            # the fields are built here from a validated proposal: skip re-validation (reward hot path)
            out.append(g._derive(grid_n=self.n, offsets=offs, deleted=dele, offset_step=float(step), points=refined))
        return out

    def _refinement_table(self) -> tuple[dict, np.ndarray]:
        """``({token: row}, rows)`` with ``rows[row] = (dx, dy, deleted)`` for every offset token of the
        codec and ``<DELETE>``."""
        table = self.__dict__.get("_refine_table")
        if table is None:
            r = self.config.r
            moves = [(dx, dy, 0) for dx in range(-r, r + 1) for dy in range(-r, r + 1)] + [(0, 0, 1)]
            names = [offset_token(dx, dy) for dx, dy, _ in moves[:-1]] + [DELETE]
            table = ({t: k for k, t in enumerate(names)}, np.array(moves, dtype=np.int64))
            self.__dict__["_refine_table"] = table
        return table

    def try_decode_refinement(self, text: str, proposal: Sequence[Geometry]):
        """Non-raising :meth:`decode_refinement`."""

        try:
            return DecodeResult(self.decode_refinement(text, proposal))
        except DecodeError as exc:
            return DecodeResult([], exc)
