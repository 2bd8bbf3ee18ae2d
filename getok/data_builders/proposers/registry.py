"""Proposer registry: build a :class:`~getok.data_builders.proposers.base.MaskProposer` from a spec string.

Specs follow the codec syntax ``"name:key=value,..."``: ``"superpixel:method=slic,n_segments=400"``,
``"sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b"``, ``"sam2:pretrained=/path/sam2_dir"``,
``"exact"`` (needs ``label_map=`` as a keyword override: the label map is data, not a setting).
Values that look like ints, floats, booleans or ``none`` are converted.
"""

from __future__ import annotations

from ...errors import ConfigError
from ...registry import Registry
from .base import MaskProposer

__all__ = ["register_proposer", "get_proposer", "list_proposers"]

_PROPOSERS = Registry("proposer")


def register_proposer(name: str):
    """Decorator: register a proposer factory (a class or a function taking keyword settings)."""
    return _PROPOSERS.register(name)


def list_proposers() -> list[str]:
    """Names of the registered proposers.

    >>> from getok.data_builders.proposers import list_proposers
    >>> list_proposers()
    ['exact', 'sam', 'sam2', 'superpixel']
    """
    return _PROPOSERS.names()


def get_proposer(spec: str | MaskProposer, **overrides) -> MaskProposer:
    """A proposer from ``"name:key=value,..."`` (an instance is returned as is).

    Keyword ``overrides`` are passed to the factory after the spec's values (objects such as a label
    map or a prebuilt model go there).

    >>> from getok.data_builders.proposers import get_proposer
    >>> get_proposer("superpixel:method=slic,n_segments=50").settings()["n_segments"]
    50
    """
    if not isinstance(spec, str):
        if isinstance(spec, MaskProposer):
            return spec
        raise ConfigError(f"a proposer spec must be a string or a MaskProposer, got {type(spec).__name__}")
    return _PROPOSERS.build(spec, **overrides)
