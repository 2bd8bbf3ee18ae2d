"""What an answer may be: :class:`AnswerGrammar` (a codec, an answer kind, a refinement's cell counts, the
envelope), built for a sample or a codec; the codec owns the token structure of one instance line
(:meth:`~getok.codecs.base.Codec.answer_shape`). :mod:`getok.eval.constrained` turns a grammar into a
token-level machine and a logits processor (the table of what is covered is there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..answers import extract_answer
from ..codecs.base import AnswerShape, Codec, get_codec
from ..errors import ConfigError

__all__ = [
    "AnswerGrammar",
    "grammar_for",
    "refinement_grammar",
    "grammar_for_sample",
    "proposal_counts",
    "is_constrainable",
]


@dataclass(frozen=True)
class AnswerGrammar:
    """What one answer may be.

    Parameters
    ----------
    codec : str
        Codec spec (``"grid_offset:n=32,r=1,step=0.5"``).
    kind : str
        Answer kind (``mask``, ``point``, ``box``, ``polyline``).
    refine : tuple of int, optional
        A refinement answer (``grid_offset`` only): the number of proposed cells of each proposed instance,
        in order; ``()`` for an empty proposal (the only valid refinement is ``none``).
    envelope : bool
        Wrap the answer in ``<think>…</think><answer>…</answer>``.
    allow_none : bool
        Allow the no-target answer ``none`` (always allowed for an empty refinement proposal).
    max_instances : int, optional
        Cap on the instance lines (``None``: only the token budget limits them).
    max_think : int, optional
        Cap on thought tokens with ``envelope`` (``None``: the budget).
    """

    codec: str
    kind: str = "mask"
    refine: tuple[int, ...] | None = None
    envelope: bool = False
    allow_none: bool = True
    max_instances: int | None = None
    max_think: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", get_codec(self.codec).spec)
        if self.refine is not None:
            r = tuple(int(k) for k in self.refine)
            if any(k < 1 for k in r):
                raise ConfigError(f"AnswerGrammar.refine counts must be >= 1 (cells per proposed instance), got {r}")
            object.__setattr__(self, "refine", r)
        if self.max_instances is not None and self.max_instances < 1:
            raise ConfigError(f"AnswerGrammar.max_instances must be >= 1, got {self.max_instances}")
        if self.max_think is not None and self.max_think < 0:
            raise ConfigError(f"AnswerGrammar.max_think must be >= 0, got {self.max_think}")
        _shape(get_codec(self.codec), self.kind, self.refine)  # raises for unsupported codecs / kinds


def _shape(codec: Codec, kind: str, refine) -> AnswerShape:
    """The codec's own answer shape (:meth:`~getok.codecs.base.Codec.answer_shape`): each codec owns its grammar."""
    if kind not in codec.kinds:
        raise ConfigError(f"codec {codec.spec!r} has no {kind!r} answers (kinds {codec.kinds})")
    return codec.answer_shape(kind, refine is not None)


def is_constrainable(codec, kind: str = "mask") -> bool:
    """Whether :func:`grammar_for` covers answers of ``kind`` in ``codec``."""
    try:
        _shape(get_codec(codec), kind, None)
    except ConfigError:
        return False
    return True


def grammar_for(codec, kind: str = "mask", *, envelope: bool = False, **kwargs) -> AnswerGrammar:
    """The grammar of a one-turn answer; raises :class:`ConfigError` for codecs that are not covered."""
    return AnswerGrammar(get_codec(codec).spec, kind, None, envelope, **kwargs)


def refinement_grammar(codec, counts: Sequence[int], *, envelope: bool = False, **kwargs) -> AnswerGrammar:
    """The grammar of a refinement turn: ``counts[i]`` offset / ``<DELETE>`` tokens on line ``i``."""
    return AnswerGrammar(get_codec(codec).spec, "mask", tuple(int(k) for k in counts), envelope, **kwargs)


def proposal_counts(codec, proposal_text: str, size) -> tuple[int, ...]:
    """Cells per instance of a proposal answer (``()`` for ``none``); :class:`DecodeError` when it does not parse."""

    return tuple(len(g.cells) for g in get_codec(codec).decode(extract_answer(proposal_text), size, "mask"))


def grammar_for_sample(sample, turns=None, *, codec=None, envelope: bool | None = None) -> AnswerGrammar:
    """The grammar of the answer a sample (or the conversation ``turns`` about it) asks for next.

    A conversation of more than one turn in a ``grid_offset`` codec asks for a refinement of the
    proposal in its **first** assistant message (self-correction: one token per originally proposed
    cell); otherwise the sample's ``kind`` in ``codec`` (default: the sample's). ``envelope`` defaults to
    whether the sample's target answer is wrapped in ``<think>…</think><answer>…</answer>``.
    """
    turns = list(sample.turns if turns is None else turns)
    c = get_codec(codec or sample.codec)
    if envelope is None:
        envelope = sample.answer.lstrip().startswith("<think>")
    if len(turns) > 1 and c.name == "grid_offset":
        return refinement_grammar(c, proposal_counts(c, turns[0].assistant, sample.size), envelope=envelope)
    return grammar_for(c, sample.kind, envelope=envelope)
