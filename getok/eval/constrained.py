"""Constrained decoding: a logits processor that only allows what the answer grammar allows next.

Every answer a constrained model writes parses (``codec.decode`` / ``decode_refinement`` succeed), including
when generation stops at ``max_new_tokens``: a token is allowed only if the answer can still be completed
within the remaining budget (the shortest completion is known in every state).

Covered (token-level grammars; the codec decides the vertex tokens):

================================  =========  =====================================================
codec                             kinds      one instance line
================================  =========  =====================================================
``grid``                          mask       ``<cell>+``
                                  point      ``<cell>``
                                  box        ``<cell><cell>`` (second cell not left of / above the first)
                                  polyline   ``<cell>+``
``grid_offset``                   mask       ``<cell>+`` (the proposal: cells only)
                                  point      ``<cell><off>``
                                  box        ``<cell><off><cell><off>`` (corners in order)
                                  polyline   ``(<cell><off>)+``
``grid_offset`` refinement        mask       exactly ``K_i`` of ``<off>|<DELETE>`` on line ``i`` (``K_i``
                                             cells proposed for instance ``i``), one line per proposed
                                             instance; ``none`` for an empty proposal
``bins``                          point      ``<loc><loc>``; box: 4 bins with ``x2 >= x1``, ``y2 >= y1``;
                                  mask       rings ``(<loc><loc>)+`` separated by ``;``; polyline ``(<loc><loc>)+``
``polygon`` (vertex = ``grid``,   mask       rings of vertices separated by ``;``
``grid_offset`` or ``bins``)      polyline   vertices
================================  =========  =====================================================

Every answer may also be ``none`` (the no-target answer; :class:`AnswerGrammar` ``allow_none``), instances
are separated by a line break, the answer ends with the end-of-sequence token. With ``envelope=True`` the
answer is wrapped as ``<think>…</think><answer>…</answer>``: the thought may use any ordinary text token
(none that contains ``<`` or ``>``, so it cannot open a tag), then ``</think><answer>`` is written, the
answer, ``</answer>`` and end of sequence.

**Not covered:** text-number codecs (``text_coords``, ``polygon`` with ``vertex=text`` / ``int1000``,
``rle_descriptors``) — a character-level grammar over BPE pieces is not implemented;
:func:`grammar_for` raises :class:`~getok.errors.ConfigError` for them.

Literal pieces (``none``, the line break, ``;``, the envelope tags) are forced in the tokenizer's own
encoding of the literal (one canonical tokenization). Grid cells need not be sorted or unique (the codec
accepts any order), so the grammar does not ask for it.

The grammar engine is tokenizer-agnostic numpy; :class:`TokenTables` maps it onto one tokenizer's ids and
:class:`~getok.eval.grammar_logits.GrammarLogitsProcessor` applies it in ``model.generate`` (torch imported
there only).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import weakref
from dataclasses import dataclass

import numpy as np

from ..codecs.base import get_codec
from ..codecs.token_names import DELETE, bin_tokens, grid_tokens, offset_tokens
from ..errors import ConfigError
from .grammar import (
    AnswerGrammar,
    _shape,
    grammar_for,
    grammar_for_sample,
    is_constrainable,
    proposal_counts,
    refinement_grammar,
)

__all__ = [
    "AnswerGrammar",
    "TokenTables",
    "GrammarMachine",
    "grammar_for",
    "refinement_grammar",
    "grammar_for_sample",
    "proposal_counts",
    "machine_for",
    "is_constrainable",
]

log = logging.getLogger(__name__)

#: Unit lengths in tokens: a grid cell, a cell + offset pair, an x / y pair of bins.
_UNIT_LEN = {"cell": 1, "cell_off": 2, "bin2": 2}
#: Instance shapes: exactly one vertex, exactly two (a box), a sequence, or rings separated by ``;``.
_INST = ("one", "two", "seq", "rings")


def machine_for(grammar: AnswerGrammar, tokenizer) -> GrammarMachine:
    """:class:`GrammarMachine` of ``grammar`` on ``tokenizer`` (token tables cached per tokenizer and codec)."""
    return GrammarMachine(grammar, TokenTables.get(tokenizer, grammar.codec))


# ------------------------------------------------------------------------------------------------ token tables
def _encode(tok, text: str) -> tuple[int, ...]:
    ids = tok.encode(text, add_special_tokens=False)
    if not ids:
        raise ConfigError(f"the tokenizer encodes {text!r} to nothing")
    return tuple(int(i) for i in ids)


class TokenTables:
    """One tokenizer's ids for the grammar's token classes (cached per tokenizer and codec).

    Attributes
    ----------
    cells : (n * n,) int64
        Ids of the grid cells in row-major order (index ``cy * n + cx``).
    offsets : (M, 2) int64 and offset_ids : (M,) int64
        Moves ``(dx, dy)`` and their token ids.
    delete : int
    bins : (bins,) int64
    literals : dict
        ``none``, ``nl``, ``sep``, ``open`` (``<think>``), ``close`` (``</think><answer>``), ``end``
        (``</answer>``): the tokenizer's encoding of each.
    plain : (V,) bool
        Ordinary text tokens allowed in a thought (no ``<`` / ``>``, not special, not added).
    """

    _cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, tokenizer, codec: str) -> None:
        self.tokenizer = tokenizer
        self.codec = get_codec(codec)
        c = self.codec
        vocab = tokenizer.get_vocab()

        def ids_of(tokens: list[str]) -> np.ndarray:
            missing = [t for t in tokens if t not in vocab]
            if missing:
                raise ConfigError(
                    f"the tokenizer lacks {len(missing)} tokens of codec {c.spec!r} (e.g. {missing[0]!r}); "
                    "add them with getok.vocab.add_tokens.add_spatial_tokens"
                )
            return np.asarray([vocab[t] for t in tokens], dtype=np.int64)

        cfg = c.config
        shape_n = getattr(cfg, "n", 0)
        vertex = getattr(cfg, "vertex", None)
        self.cells = self.offsets = self.offset_ids = self.bins = None
        self.delete = -1
        uses_grid = c.name in ("grid", "grid_offset") or vertex in ("grid", "grid_offset")
        if uses_grid:
            self.cells = ids_of(grid_tokens(shape_n))
        if c.name == "grid_offset" or vertex == "grid_offset":
            r = cfg.r
            toks = offset_tokens(r)
            self.offset_ids = ids_of(toks)
            self.offsets = np.asarray([[dx, dy] for dx in range(-r, r + 1) for dy in range(-r, r + 1)], dtype=np.int64)
            if c.name == "grid_offset":
                self.delete = int(ids_of([DELETE])[0])
        if c.name == "bins" or vertex == "bins":
            self.bins = ids_of(bin_tokens(cfg.bins))
        self.literals = {
            "none": _encode(tokenizer, "none"),
            "nl": _encode(tokenizer, "\n"),
            "sep": _encode(tokenizer, ";"),
            "open": _encode(tokenizer, "<think>"),
            "close": _encode(tokenizer, "</think><answer>"),
            "end": _encode(tokenizer, "</answer>"),
        }
        self.vocab_size = max(len(tokenizer), max(vocab.values()) + 1)
        self._plain: np.ndarray | None = None
        self._plain_ids: dict[int, np.ndarray] = {}
        # id -> (class, value) for the spatial tokens
        self.kind_of: dict[int, tuple[str, int]] = {}
        if self.cells is not None:
            self.kind_of.update({int(i): ("cell", k) for k, i in enumerate(self.cells)})
        if self.offset_ids is not None:
            self.kind_of.update({int(i): ("off", k) for k, i in enumerate(self.offset_ids)})
        if self.delete >= 0:
            self.kind_of[self.delete] = ("del", 0)
        if self.bins is not None:
            self.kind_of.update({int(i): ("bin", k) for k, i in enumerate(self.bins)})

    @classmethod
    def get(cls, tokenizer, codec) -> TokenTables:
        spec = get_codec(codec).spec
        try:
            per_tok = cls._cache.setdefault(tokenizer, {})
        except TypeError:  # not weak-referenceable
            return cls(tokenizer, spec)
        if spec not in per_tok:
            per_tok[spec] = cls(tokenizer, spec)
        return per_tok[spec]

    @property
    def plain(self) -> np.ndarray:
        """``(V,)`` bool: ordinary text tokens (for thoughts)."""
        if self._plain is None:
            tok = self.tokenizer
            ok = np.zeros(self.vocab_size, dtype=bool)
            for t, i in tok.get_vocab().items():
                if "<" not in t and ">" not in t:
                    ok[i] = True
            for i in getattr(tok, "added_tokens_decoder", {}) or {}:
                if int(i) < len(ok):
                    ok[int(i)] = False
            for i in tok.all_special_ids:
                ok[int(i)] = False
            self._plain = ok
        return self._plain

    def plain_ids(self, limit: int) -> np.ndarray:
        """Ids of the plain tokens below ``limit`` (the logits width), computed once per limit."""
        hit = self._plain_ids.get(limit)
        if hit is None:
            hit = np.flatnonzero(self.plain[:limit]).astype(np.int64)
            self._plain_ids[limit] = hit
        return hit


# ------------------------------------------------------------------------------------------------ the machine
@dataclass(frozen=True)
class _St:
    phase: str = "body"  # "think" | "body" | "done" | "dead"
    pending: tuple[int, ...] = ()
    then: str = ""  # what completing the pending literal does: think | body | none | nl | sep | done
    started: bool = False
    none: bool = False
    inst: int = 0
    upos: int = 0
    nv: int = 0
    cur: int = -1
    first: tuple = ()
    line: int = 0
    k: int = 0
    think: int = 0


class GrammarMachine:
    """A compiled :class:`AnswerGrammar` on one tokenizer: states, allowed tokens, shortest completions.

    ``start()`` gives the initial state; ``allowed(state, remaining)`` the token ids (a list of arrays) that
    keep the answer completable within ``remaining`` tokens, and whether end-of-sequence is allowed;
    ``advance(state, token_id)`` the next state. States are immutable.
    """

    def __init__(self, grammar: AnswerGrammar, tables: TokenTables) -> None:
        if get_codec(grammar.codec).spec != tables.codec.spec:
            raise ConfigError(f"token tables are for {tables.codec.spec!r}, grammar for {grammar.codec!r}")
        self.g = grammar
        self.t = tables
        self.shape = _shape(tables.codec, grammar.kind, grammar.refine)
        s = self.shape
        self.U = _UNIT_LEN.get(s.unit, 1)
        self.req_min = {"one": 1, "two": 2, "seq": 1, "rings": 1, "refine": 0}[s.inst]
        self.req_max = {"one": 1, "two": 2}.get(s.inst, math.inf)
        self.lit = tables.literals
        self.tail = len(self.lit["end"]) if grammar.envelope else 0
        if s.unit == "cell" or s.unit == "cell_off":
            n = s.n
            self._cx = np.tile(np.arange(n), n)  # (n*n,) column of each cell index (row-major)
            self._cy = np.repeat(np.arange(n), n)
        if s.unit == "cell_off":
            self._maxpos_x = np.minimum((self._cx + 0.5 + s.r * s.step) / n, 1.0)
            self._maxpos_y = np.minimum((self._cy + 0.5 + s.r * s.step) / n, 1.0)

    # ------------------------------------------------------------------ states
    def start(self) -> _St:
        if self.g.envelope:
            return _St(phase="think", pending=self.lit["open"], then="think")
        return _St(phase="body")

    def _apply_then(self, s: _St) -> _St:
        then = s.then
        s = dataclasses.replace(s, pending=(), then="")
        if then == "think":
            return dataclasses.replace(s, phase="think")
        if then == "body":
            return dataclasses.replace(s, phase="body")
        if then == "none":
            return dataclasses.replace(s, started=True, none=True)
        if then == "nl":
            if self.shape.inst == "refine":
                return dataclasses.replace(s, line=s.line + 1, k=0)
            return dataclasses.replace(s, inst=s.inst + 1, nv=0, upos=0, first=(), cur=-1)
        if then == "sep":
            return dataclasses.replace(s, nv=0, upos=0, cur=-1)
        if then == "done":
            return dataclasses.replace(s, phase="done")
        raise AssertionError(then)

    def _body_complete(self, s: _St) -> bool:
        if s.phase != "body" or s.pending:
            return False
        if s.none:
            return True
        if self.shape.inst == "refine":
            counts = self.g.refine
            return bool(counts) and s.line == len(counts) - 1 and s.k == counts[-1]
        return s.started and s.upos == 0 and self.req_min <= s.nv <= self.req_max

    def complete(self, s: _St) -> bool:
        """Whether the answer may end here (end-of-sequence allowed)."""
        if s.phase == "done":
            return True
        return not self.g.envelope and self._body_complete(s)

    def _body_min(self, s: _St) -> int:
        """Fewest tokens that complete the body from ``s`` (``s`` in phase body, no pending literal)."""
        if s.none:
            return 0
        if self.shape.inst == "refine":
            counts = self.g.refine
            if not counts:
                return len(self.lit["none"])
            return (counts[s.line] - s.k) + sum(counts[s.line + 1 :]) + (len(counts) - 1 - s.line) * len(self.lit["nl"])
        need_units = max(self.req_min - s.nv - (1 if s.upos else 0), 0)
        rest = (self.U - s.upos) if s.upos else 0
        body = rest + need_units * self.U
        if not s.started and self.g.allow_none:
            body = min(body, len(self.lit["none"]))
        return body

    def min_complete(self, s: _St) -> int:
        """Fewest tokens (end-of-sequence not counted) that turn ``s`` into a complete answer."""
        if s.phase in ("done", "dead"):
            return 0
        if s.pending:
            return len(s.pending) + self.min_complete(self._apply_then(s))
        if s.phase == "think":
            return len(self.lit["close"]) + self._body_min(_St(phase="body")) + self.tail
        body = self._body_min(s)
        if self._body_complete(s):
            return self.tail
        return body + self.tail

    # ------------------------------------------------------------------ options
    def _options(self, s: _St) -> list[tuple[str, np.ndarray | int, _St]]:
        """``(class, ids, successor)`` for every class of token allowed next by the grammar alone."""
        lit = self.lit
        if s.phase in ("done", "dead"):
            return []
        if s.pending:
            nxt = dataclasses.replace(s, pending=s.pending[1:])
            if not nxt.pending:
                nxt = self._apply_then(dataclasses.replace(nxt, pending=(), then=s.then))
            return [("lit", s.pending[0], nxt)]
        if s.phase == "think":
            out = [("lit", lit["close"][0], self._literal(s, lit["close"], "body"))]
            if self.g.max_think is None or s.think < self.g.max_think:
                out.append(("plain", -1, dataclasses.replace(s, think=s.think + 1)))
            return out
        out: list[tuple[str, np.ndarray | int, _St]] = []
        if self._body_complete(s):
            if self.g.envelope:
                out.append(("lit", lit["end"][0], self._literal(s, lit["end"], "done")))
        if s.none:
            return out
        if self.shape.inst == "refine":
            return out + self._refine_options(s)
        allow_none = self.g.allow_none
        if not s.started and allow_none:
            out.append(("lit", lit["none"][0], self._literal(dataclasses.replace(s, started=True), lit["none"], "none")))
        out.extend(self._unit_options(s))
        if s.started and s.upos == 0 and self.req_min <= s.nv:
            if self.g.max_instances is None or s.inst + 1 < self.g.max_instances:
                out.append(("lit", lit["nl"][0], self._literal(s, lit["nl"], "nl")))
            if self.shape.inst == "rings":
                out.append(("lit", lit["sep"][0], self._literal(s, lit["sep"], "sep")))
        return out

    def _literal(self, s: _St, ids: tuple[int, ...], then: str) -> _St:
        """The state after the first token of literal ``ids``."""
        nxt = dataclasses.replace(s, pending=ids[1:], then=then)
        return self._apply_then(nxt) if not nxt.pending else nxt

    def _refine_options(self, s: _St) -> list:
        counts = self.g.refine
        if not counts:  # empty proposal: only "none"
            if s.started:
                return []
            return [("lit", self.lit["none"][0], self._literal(dataclasses.replace(s, started=True), self.lit["none"], "none"))]
        out = []
        st = dataclasses.replace(s, started=True)
        if s.k < counts[s.line]:
            nxt = dataclasses.replace(st, k=s.k + 1)
            out.append(("off", self.t.offset_ids, nxt))
            out.append(("del", self.t.delete, nxt))
        elif s.line < len(counts) - 1:
            out.append(("lit", self.lit["nl"][0], self._literal(st, self.lit["nl"], "nl")))
        return out

    def _unit_options(self, s: _St) -> list:
        sh = self.shape
        st = dataclasses.replace(s, started=True)
        if s.upos == 0:
            if s.nv >= self.req_max:
                return []
            second = sh.box and s.nv == 1
            if sh.unit in ("cell", "cell_off"):
                ids = self.t.cells
                if second:
                    if sh.unit == "cell":
                        ok = (self._cx >= s.first[0]) & (self._cy >= s.first[1])
                    else:
                        ok = (self._maxpos_x >= s.first[0]) & (self._maxpos_y >= s.first[1])
                    ids = ids[ok]
                if sh.unit == "cell":
                    return [("cell", ids, dataclasses.replace(st, nv=s.nv + 1))]
                return [("cell", ids, dataclasses.replace(st, upos=1))]
            ids = self.t.bins
            if second:
                ids = ids[s.first[0] :]
            return [("bin", ids, dataclasses.replace(st, upos=1))]
        # second token of a two-token unit
        if sh.unit == "cell_off":
            ids = self.t.offset_ids
            if sh.box and s.nv == 1:
                px, py = self._positions(s.cur)
                ok = (px >= s.first[0]) & (py >= s.first[1])
                ids = ids[ok]
            return [("off", ids, dataclasses.replace(st, upos=0, nv=s.nv + 1))]
        ids = self.t.bins
        if sh.box and s.nv == 1:
            ids = ids[s.first[1] :]
        return [("bin", ids, dataclasses.replace(st, upos=0, nv=s.nv + 1))]

    def _positions(self, cell_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised positions of a cell moved by every offset, as the codec computes them: ``(M,)`` x, y."""
        sh = self.shape
        cx, cy = int(self._cx[cell_index]), int(self._cy[cell_index])
        o = self.t.offsets
        px = np.clip((cx + 0.5 + o[:, 0] * sh.step) / sh.n, 0.0, 1.0)
        py = np.clip((cy + 0.5 + o[:, 1] * sh.step) / sh.n, 0.0, 1.0)
        return px, py

    # ------------------------------------------------------------------ public
    def allowed(self, s: _St, remaining: int) -> tuple[list, bool]:
        """Token ids allowed next (a list of int64 arrays / the string ``"plain"``) and whether EOS is.

        ``remaining`` counts the tokens still allowed, this one included. When no option fits the budget
        (it was too small from the start), the options with the shortest completion are returned.
        """
        eos = self.complete(s)
        opts = self._options(s)
        fit = []
        best, best_need = [], math.inf
        for cls, ids, nxt in opts:
            need = 1 + self.min_complete(nxt)
            if need <= remaining:
                fit.append((cls, ids))
            if need < best_need:
                best, best_need = [(cls, ids)], need
            elif need == best_need:
                best.append((cls, ids))
        chosen = fit if (fit or eos) else best
        out = []
        for cls, ids in chosen:
            if cls == "plain":
                out.append("plain")
            else:
                arr = np.atleast_1d(np.asarray(ids, dtype=np.int64))
                if arr.size:
                    out.append(arr)
        return out, eos

    def advance(self, s: _St, token_id: int) -> _St:
        """The state after ``token_id`` (``phase="dead"`` for a token the grammar does not allow)."""
        tid = int(token_id)
        for cls, ids, nxt in self._options(s):
            if cls == "plain":
                if 0 <= tid < len(self.t.plain) and self.t.plain[tid]:
                    return nxt
                continue
            if cls == "lit":
                if tid == ids:
                    return nxt
                continue
            hit = self.t.kind_of.get(tid)
            if hit is None or hit[0] != cls:
                continue
            if not np.any(np.atleast_1d(ids) == tid):
                continue
            return self._record(s, nxt, cls, hit[1])
        return dataclasses.replace(s, phase="dead")

    def _record(self, s: _St, nxt: _St, cls: str, value: int) -> _St:
        """Remember what a box's ordering constraint needs (first vertex, current unit's first token)."""
        sh = self.shape
        if not sh.box:
            return nxt
        if sh.unit == "cell" and cls == "cell" and s.nv == 0:
            return dataclasses.replace(nxt, first=(int(self._cx[value]), int(self._cy[value])))
        if sh.unit == "cell_off":
            if cls == "cell":
                return dataclasses.replace(nxt, cur=value)
            if cls == "off" and s.nv == 0:
                px, py = self._positions(s.cur)
                return dataclasses.replace(nxt, first=(float(px[value]), float(py[value])), cur=-1)
        if sh.unit == "bin2" and cls == "bin":
            if s.upos == 0 and s.nv == 0:
                return dataclasses.replace(nxt, cur=value)
            if s.upos == 1 and s.nv == 0:
                return dataclasses.replace(nxt, first=(s.cur, value), cur=-1)
        return nxt
