"""``VocabLayout``: which spatial tokens a model, a dataset or a checkpoint was made with.

A layout lists the codec specs and the tokens they add, in order, and (once tokens are in a tokenizer)
their ids. Its :attr:`~VocabLayout.hash` covers specs and tokens (not ids, which depend on the base
tokenizer), so a dataset built for ``grid_offset:n=32,r=1,step=0.5`` matches any model whose vocabulary has
exactly those tokens. Saved as ``getok_layout.json`` next to checkpoints and datasets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..codecs.base import Codec, get_codec
from ..errors import LayoutMismatchError

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
        from ..io import atomic_write_text

        path = Path(directory) / LAYOUT_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> VocabLayout:
        """Read a layout from a file or a directory holding ``getok_layout.json``."""
        p = Path(path)
        if p.is_dir():
            p = p / LAYOUT_FILE
        if not p.is_file():
            raise LayoutMismatchError(f"no vocabulary layout at {p}")
        return cls.from_dict(json.loads(p.read_text()))
