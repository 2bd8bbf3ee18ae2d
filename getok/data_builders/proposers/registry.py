"""Proposer registry: build a :class:`~getok.data_builders.proposers.base.MaskProposer` from a spec string.

Specs follow the codec syntax ``"name:key=value,..."``: ``"superpixel:method=slic,n_segments=400"``,
``"sam:checkpoint=/path/sam_vit_b.pth,model_type=vit_b"``, ``"sam2:pretrained=/path/sam2_dir"``,
``"exact"`` (needs ``label_map=`` as a keyword override: the label map is data, not a setting).
Values that look like ints, floats, booleans or ``none`` are converted.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ConfigError
from .base import MaskProposer

__all__ = ["register_proposer", "get_proposer", "list_proposers"]

_PROPOSERS: dict[str, Callable[..., MaskProposer]] = {}


def register_proposer(name: str):
    """Decorator: register a proposer factory (a class or a function taking keyword settings)."""

    def wrap(factory):
        if name in _PROPOSERS and _PROPOSERS[name] is not factory:
            raise ConfigError(f"a proposer named {name!r} is already registered")
        _PROPOSERS[name] = factory
        return factory

    return wrap


def list_proposers() -> list[str]:
    """Names of the registered proposers.

    >>> from getok.data_builders.proposers import list_proposers
    >>> list_proposers()
    ['exact', 'sam', 'sam2', 'superpixel']
    """
    return sorted(_PROPOSERS)


def _auto(v: str):
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            continue
    return v


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
    from ...codecs.base import parse_spec

    name, params = parse_spec(spec)
    if name not in _PROPOSERS:
        raise ConfigError(f"unknown proposer {name!r}; registered: {list_proposers()}")
    kwargs: dict = {k: _auto(v) for k, v in params.items()}
    kwargs.update(overrides)
    try:
        return _PROPOSERS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"proposer {name!r}: bad settings {sorted(kwargs)}: {exc}") from exc
