"""The ``Codec`` protocol, its registry and the answer-level grammar shared by every codec.

An *answer* is the text a model writes for one query:

* ``none`` — the explicit no-target answer (no object matches);
* otherwise one line per instance, joined by ``"\\n"``; each codec defines the grammar of a line.

A *spec* string names a codec and its full configuration, e.g. ``"grid:n=32"`` or
``"polygon:vertex=bins,bins=1000,eps=0.01,holes=false"``; :func:`get_codec` parses it and
``codec.spec`` renders the canonical form (every field, declaration order) that datasets and
checkpoints record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from ..errors import ConfigError, DecodeError, GeometryError
from ..geometry import KINDS, Geometry
from ..registry import Registry, parse_spec

__all__ = [
    "AnswerShape",
    "NO_TARGET",
    "Codec",
    "CodecProtocol",
    "DecodeResult",
    "register_codec",
    "get_codec",
    "list_codecs",
    "parse_spec",
]

#: The explicit no-target answer of every codec.
NO_TARGET = "none"

CODECS = Registry("codec")


@runtime_checkable
class CodecProtocol(Protocol):
    """What every codec offers (structural type for users' own codecs)."""

    name: str
    spec: str
    kinds: tuple[str, ...]

    def new_tokens(self) -> list[str]: ...

    def encode(self, geometries: Sequence[Geometry], kind: str = "mask") -> str: ...

    def decode(self, text: str, size: tuple[int, int], kind: str = "mask") -> list[Geometry]: ...

    def try_decode(self, text: str, size: tuple[int, int], kind: str = "mask") -> DecodeResult: ...


@dataclass(frozen=True)
class AnswerShape:
    """The token structure of one instance line (:meth:`Codec.answer_shape`).

    ``unit``: ``cell`` (a grid token), ``cell_off`` (a grid token + an offset token), ``bin2`` (two bin tokens),
    ``refine`` (one offset / ``<DELETE>`` token per proposed cell); ``inst``: ``one`` / ``two`` units (a point, a
    box), ``seq`` (a sequence), ``rings`` (polygons), ``refine``; the grid ``n``, offset radius ``r`` and
    ``step``, the ``bins``, and whether the answer is a ``box``.
    """

    unit: str
    inst: str
    n: int = 0
    r: int = 0
    step: float = 0.5
    bins: int = 0
    box: bool = False


@dataclass
class DecodeResult:
    """Outcome of a non-raising decode: geometries, or the error that made the answer invalid."""

    geometries: list[Geometry]
    error: DecodeError | None = None

    @property
    def valid(self) -> bool:
        return self.error is None


def _coerce(value: str, typ, field: str):
    name = typ.__name__ if isinstance(typ, type) else str(typ).replace("'", "")
    if name.endswith("| None"):
        if value.lower() in ("none", "null", ""):
            return None
        name = name[: -len("| None")].strip()
    t = {"int": int, "float": float, "bool": bool, "str": str}.get(name, str)
    try:
        if t is bool:
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if t is int:
            return int(value)
        if t is float:
            return float(value)
    except ValueError as exc:
        raise ConfigError(f"codec parameter {field}={value!r} is not a valid {t.__name__}") from exc
    return value


class Codec:
    """Base class: spec handling, the answer-level grammar and the non-raising decode.

    Subclasses set ``name``, ``kinds``, a frozen dataclass ``Config`` whose ``__post_init__`` validates
    its fields, and implement :meth:`new_tokens`, :meth:`encode_one` and :meth:`decode_one`.
    """

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = KINDS
    Config: ClassVar[type] = object

    def __init__(self, **params) -> None:
        try:
            self.config = self.Config(**params)
        except TypeError as exc:
            known = [f.name for f in dataclasses.fields(self.Config)]
            raise ConfigError(f"codec {self.name!r}: {exc}; known parameters: {known}") from exc

    # ------------------------------------------------------------------ spec
    @classmethod
    def from_params(cls, params: dict[str, str]) -> Codec:
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise ConfigError(
                f"codec {cls.name!r} has no parameter(s) {unknown}; known: {list(fields)}"
            )
        kwargs = {k: _coerce(v, fields[k].type, k) for k, v in params.items()}
        return cls(**kwargs)

    @property
    def spec(self) -> str:
        """Canonical spec: name and every configuration field in declaration order."""
        parts = []
        for f in dataclasses.fields(self.config):
            v = getattr(self.config, f.name)
            parts.append(f"{f.name}={str(v).lower() if isinstance(v, bool) else v}")
        return f"{self.name}:{','.join(parts)}" if parts else self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Codec) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    # ------------------------------------------------------------------ vocabulary
    def new_tokens(self) -> list[str]:
        """Tokens this codec needs added to a tokenizer (none for plain-text codecs)."""
        return []

    def token_text(self, token: str) -> str | None:
        """Plain text with the meaning of one of :meth:`new_tokens` (used by the ``text`` init)."""
        return None

    # ------------------------------------------------------------------ grammar
    def answer_shape(self, kind: str, refine: bool = False) -> AnswerShape:
        """The token structure of one instance line of a ``kind`` answer (``refine``: a refinement turn), for
        constrained decoding (:mod:`getok.eval.constrained`); :class:`ConfigError` where the codec's answers
        are not written in its own tokens. Each codec that constrained decoding covers overrides it."""
        raise ConfigError(
            f"constrained decoding does not cover codec {self.name!r} (covered: grid, grid_offset, bins, "
            "polygon with grid / grid_offset / bins vertices)"
        )

    #: Units per instance line of each answer kind (:class:`AnswerShape` ``inst``).
    INSTANCE_UNITS: ClassVar[dict[str, str]] = {"point": "one", "box": "two", "polyline": "seq", "mask": "seq"}

    def _refusing_refinement(self, kind: str, refine: bool) -> None:
        if refine:
            raise ConfigError(
                f"refinement grammars need a grid_offset codec and kind 'mask', got {self.spec!r} / {kind!r}"
            )

    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigError(f"codec {self.name!r} answers kinds {self.kinds}, not {kind!r}")

    def encode(self, geometries: Sequence[Geometry], kind: str = "mask") -> str:
        """Geometries → answer text (``"none"`` for an empty list)."""
        self._check_kind(kind)
        if isinstance(geometries, Geometry):
            geometries = [geometries]
        if len(geometries) == 0:
            return NO_TARGET
        return "\n".join(self.encode_one(g, kind) for g in geometries)

    def decode(self, text: str, size: tuple[int, int], kind: str = "mask") -> list[Geometry]:
        """Answer text → geometries in pixel space; raises :class:`DecodeError` with the reason."""
        self._check_kind(kind)
        if not isinstance(text, str):
            raise DecodeError(f"answer must be a string, got {type(text).__name__}", "not_text")
        body = text.strip()
        if not body:
            raise DecodeError("empty answer (the no-target answer is 'none')", "empty")
        if body.lower() == NO_TARGET:
            return []
        lines = [ln.strip() for ln in body.split("\n") if ln.strip()]
        out = []
        for i, line in enumerate(lines):
            try:
                out.append(self.decode_one(line, size, kind))
            except DecodeError as exc:
                raise DecodeError(f"instance {i}: {exc}", exc.reason) from None
            except GeometryError as exc:  # decoded values that violate the conventions
                raise DecodeError(f"instance {i}: {exc}", "bad_geometry") from None
        return out

    def try_decode(self, text: str, size: tuple[int, int], kind: str = "mask") -> DecodeResult:
        """Like :meth:`decode` but returns the error instead of raising it."""
        try:
            return DecodeResult(self.decode(text, size, kind))
        except DecodeError as exc:
            return DecodeResult([], exc)

    def encode_one(self, geometry: Geometry, kind: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode_one(self, line: str, size: tuple[int, int], kind: str) -> Geometry:  # pragma: no cover
        raise NotImplementedError


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Class decorator: make a codec available to :func:`get_codec` under ``cls.name``."""
    if not cls.name:
        raise ConfigError(f"{cls.__name__} needs a name to be registered")
    return CODECS.register(cls.name)(cls)


def list_codecs() -> list[str]:
    """Names of the registered codecs."""
    return CODECS.names()


def get_codec(spec: str | Codec) -> Codec:
    """Build a codec from a spec string (``"grid:n=32"``); a codec instance is returned as is.

    >>> get_codec("grid:n=8").spec
    'grid:n=8'
    """
    if isinstance(spec, Codec):
        return spec
    name, params = parse_spec(spec)
    return CODECS.get(name).from_params(params)
