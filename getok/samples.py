"""``Sample``: one training / evaluation example, independent of any trainer's format.

A sample is an image reference, one or more conversation turns (the last assistant message is the
target; earlier turns are context, e.g. a stage-1 proposal before a refinement), and JSON-able ground
truth for rewards and metrics. Exporters (:mod:`getok.data_builders.export`) turn samples into TRL
``messages``, ShareGPT / LLaVA JSON or EasyR1 rows.

The first user message refers to the image with the placeholder ``<image>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .conventions import as_size
from .errors import DataError
from .geometry import KINDS

__all__ = ["Turn", "Sample", "IMAGE_PLACEHOLDER"]

IMAGE_PLACEHOLDER = "<image>"


@dataclass
class Turn:
    """One exchange: what the user asks and what the assistant answers."""

    user: str
    assistant: str


@dataclass
class Sample:
    """One example.

    Attributes
    ----------
    sample_id : str
        Unique within a dataset.
    image_id : str
    image : str
        Image path, relative to the dataset root (or absolute).
    size : (H, W)
    task : str
        ``"<query>><answer kind>"`` such as ``"text>mask"``, ``"point>mask"``, ``"box>mask"``,
        ``"text>box"``, or ``"refine"`` (offset / ``<DELETE>`` turn), ``"polygon"``.
    kind : str
        Kind of the final answer (``point``, ``box``, ``mask``, ``polyline``; ``mask`` for ``refine``).
    codec : str
        Codec spec of the answers.
    turns : list of Turn
        The conversation; the last assistant message is the target.
    truth : dict
        JSON-able ground truth: ``{"size": [H, W], "masks": [RLE, ...], "boxes": [[x1, y1, x2, y2], ...],
        "points": [[x, y], ...] (optional), "proposal": str (refine: the stage-1 answer)}``; one entry per
        target instance, empty lists for a no-target query.
    meta : dict
        Anything else (category, expression, source, builder settings).
    """

    sample_id: str
    image_id: str
    image: str
    size: tuple[int, int]
    task: str
    kind: str
    codec: str
    turns: list[Turn]
    truth: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = as_size(self.size)
        if self.kind not in KINDS:
            raise DataError(f"sample {self.sample_id}: kind must be one of {KINDS}, got {self.kind!r}")
        self.turns = [t if isinstance(t, Turn) else Turn(**t) for t in self.turns]
        if not self.turns:
            raise DataError(f"sample {self.sample_id}: no turns")

    @property
    def answer(self) -> str:
        """The target: the last assistant message."""
        return self.turns[-1].assistant

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Sample:
        try:
            return cls(**{**d, "turns": [Turn(**t) for t in d["turns"]]})
        except (TypeError, KeyError) as exc:
            raise DataError(f"not a sample record: {exc}") from exc
