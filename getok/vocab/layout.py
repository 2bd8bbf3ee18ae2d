"""``VocabLayout``: which spatial tokens a model, a dataset or a checkpoint was made with.

A layout lists the codec specs and the tokens they add, in order, and (once tokens are in a tokenizer)
their ids. Its :attr:`~VocabLayout.hash` covers specs and tokens (not ids, which depend on the base
tokenizer), so a dataset built for ``grid_offset:n=32,r=1,step=0.5`` matches any model whose vocabulary has
exactly those tokens. Saved as ``getok_layout.json`` next to checkpoints and datasets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..codecs.base import Codec, get_codec
from ..errors import LayoutMismatchError
from ..io import atomic_write_text

__all__ = ["VocabLayout", "LAYOUT_FILE"]

LAYOUT_FILE = "getok_layout.json"


@dataclass
class VocabLayout:
    """Codec specs, the tokens they add (ordered, de-duplicated) and, optionally, their ids."""

    codecs: list[str]
    tokens: list[str]
    ids: list[int] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_codecs(cls, codecs: Sequence[str | Codec]) -> VocabLayout:
        """Layout of the given codecs (specs or instances); tokens shared by two codecs appear once."""
        objs = [get_codec(c) for c in codecs]
        tokens = list(dict.fromkeys(t for c in objs for t in c.new_tokens()))
        return cls(codecs=[c.spec for c in objs], tokens=tokens)

    @property
    def hash(self) -> str:
        """Hex digest (16 chars) of the codec specs and the ordered tokens."""
        blob = json.dumps({"codecs": self.codecs, "tokens": self.tokens}, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"codecs": self.codecs, "tokens": self.tokens, "ids": self.ids, "hash": self.hash, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> VocabLayout:
        layout = cls(codecs=list(d["codecs"]), tokens=list(d["tokens"]), ids=d.get("ids"), extra=d.get("extra", {}))
        if "hash" in d and d["hash"] != layout.hash:
            raise LayoutMismatchError(f"layout file hash {d['hash']} does not match its content ({layout.hash})")
        return layout

    def save(self, directory: str | Path) -> Path:
        """Write ``getok_layout.json`` into ``directory`` atomically."""

        path = Path(directory) / LAYOUT_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    # ------------------------------------------------------------------ checks
    def with_ids(self, tokenizer) -> VocabLayout:
        """Copy with ``ids`` read from ``tokenizer`` (raises :class:`LayoutMismatchError` if a token is missing)."""
        vocab = tokenizer.get_vocab()
        missing = [t for t in self.tokens if t not in vocab]
        if missing:
            raise LayoutMismatchError(
                f"{len(missing)} layout token(s) are not in the tokenizer, first {missing[0]!r} "
                f"(layout {self.hash}, codecs {self.codecs}); add them with getok.vocab.add_spatial_tokens"
            )
        return VocabLayout(self.codecs, list(self.tokens), [int(vocab[t]) for t in self.tokens], dict(self.extra))

    def validate(self, tokenizer) -> VocabLayout:
        """Check this layout against a tokenizer; return ``self`` or raise :class:`LayoutMismatchError`.

        Every token must be in the tokenizer as a non-special added token (``special=True`` tokens vanish
        under ``decode(skip_special_tokens=True)``) that encodes to exactly one id, equal to ``ids[i]``
        when the layout carries ids. The message names the first differing token and ids.
        """
        vocab = tokenizer.get_vocab()
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        if self.ids is not None and len(self.ids) != len(self.tokens):
            raise LayoutMismatchError(f"layout has {len(self.tokens)} tokens but {len(self.ids)} ids")
        for i, tok in enumerate(self.tokens):
            tid = vocab.get(tok)
            if tid is None:
                raise LayoutMismatchError(
                    f"token {tok!r} (layout index {i}, codecs {self.codecs}) is not in the tokenizer "
                    f"({len(vocab)} entries)"
                )
            if self.ids is not None and int(self.ids[i]) != int(tid):
                raise LayoutMismatchError(
                    f"token {tok!r}: layout id {self.ids[i]} but tokenizer id {tid} (layout index {i}); "
                    "the tokenizer and the checkpoint / dataset were made with different vocabularies"
                )
            added = decoder.get(int(tid))
            if added is not None and getattr(added, "special", False):
                raise LayoutMismatchError(
                    f"token {tok!r} (id {tid}) is a special token: decode(skip_special_tokens=True) drops it; "
                    "spatial tokens must be added with special=False"
                )
        ids = [int(vocab[t]) for t in self.tokens]
        for start in range(0, len(ids), 256):  # back to back, in chunks below any model_max_length
            part, part_ids = self.tokens[start : start + 256], ids[start : start + 256]
            enc = list(tokenizer.encode("".join(part), add_special_tokens=False))
            if enc != part_ids:
                k = next((j for j, (a, b) in enumerate(zip(enc, part_ids)) if a != b), min(len(enc), len(part_ids)))
                k = min(k, len(part) - 1)
                raise LayoutMismatchError(
                    f"layout tokens do not each encode to one id: first difference at token {part[k]!r} "
                    f"(expected id {part_ids[k]}, got {enc[k] if k < len(enc) else 'nothing'})"
                )
        return self

    def check_matches(self, other: VocabLayout, what: str = "other") -> None:
        """Raise :class:`LayoutMismatchError` naming the first difference between two layouts (tokens, ids)."""
        first = next((i for i, (a, b) in enumerate(zip(self.tokens, other.tokens)) if a != b), None)
        tok_diff = ""
        if first is not None:
            tok_diff = f"token {first} differs: {self.tokens[first]!r} here, {other.tokens[first]!r} in the {what}"
        elif len(self.tokens) != len(other.tokens):
            tok_diff = f"{len(self.tokens)} tokens here, {len(other.tokens)} in the {what}"
        if self.codecs != other.codecs:
            raise LayoutMismatchError(
                f"codecs differ: {self.codecs} here, {other.codecs} in the {what}" + (f"; {tok_diff}" if tok_diff else "")
            )
        if tok_diff:
            raise LayoutMismatchError(tok_diff)
        if self.ids is not None and other.ids is not None:
            for t, a, b in zip(self.tokens, self.ids, other.ids):
                if int(a) != int(b):
                    raise LayoutMismatchError(f"token {t!r}: id {a} here, {b} in the {what}")

    @classmethod
    def load(cls, path: str | Path) -> VocabLayout:
        """Read a layout from a file or a directory holding ``getok_layout.json``."""
        p = Path(path)
        if p.is_dir():
            p = p / LAYOUT_FILE
        if not p.is_file():
            raise LayoutMismatchError(f"no vocabulary layout at {p}")
        return cls.from_dict(json.loads(p.read_text()))
