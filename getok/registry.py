"""A named registry of factories built from spec strings (``"name:key=value,..."``), and the one spec parser.

Codecs, decoders, proposers, model adapters and vocabulary init strategies are registered this way (codecs
parse their values with their typed configs, the others with :func:`parse_value`). Decoders and proposers: a factory (a class or a function taking
keyword settings) registered under a name, built from a spec whose values are parsed as int, float,
bool or ``none`` when they look so; objects (a model, a label map) come as keyword overrides.

>>> reg = Registry("widget")
>>> @reg.register("box")
... def make_box(size=1, solid=False):
...     return ("box", size, solid)
>>> reg.build("box:size=3,solid=true")
('box', 3, True)
>>> reg.build("ball")
Traceback (most recent call last):
...
getok.errors.ConfigError: unknown widget 'ball'; registered: ['box']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

__all__ = ["Registry", "parse_spec", "parse_value"]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"grid:n=32"`` → ``("grid", {"n": "32"})``.

    >>> parse_spec("polygon:vertex=bins,eps=0.02")
    ('polygon', {'vertex': 'bins', 'eps': '0.02'})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a spec must be a non-empty string like 'grid:n=32', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"spec {spec!r}: expected key=value, got {item!r}")
        if key.strip() in params:
            raise ConfigError(f"spec {spec!r}: {key.strip()!r} given twice")
        params[key.strip()] = value.strip()
    return name.strip(), params


def parse_value(v: str) -> Any:
    """A spec value as bool / None / int / float when it looks so, else the string."""
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


class Registry:
    """Factories by name; ``kind`` names what they build in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str):
        """Decorator: register a factory under ``name`` (registering the same one twice is harmless)."""

        def wrap(factory):
            if name in self._factories and self._factories[name] is not factory:
                raise ConfigError(f"a {self.kind} named {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return wrap

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name`` (:class:`ConfigError` naming the registered ones)."""
        try:
            return self._factories[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {self.names()}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def build(self, spec: str, *, context: dict | None = None, **overrides) -> Any:
        """Build from ``"name:key=value,..."``; keyword ``overrides`` go after the spec's values.

        ``context`` holds what a caller knows about the data (e.g. a dataset ``manifest``): each entry goes
        to the factory only when the factory takes a parameter of that name, so one call serves every
        registered factory.
        """
        name, params = parse_spec(spec)
        self.get(name)  # an unknown name: ConfigError naming the registered ones
        kwargs: dict = {k: parse_value(v) for k, v in params.items()}
        kwargs.update(overrides)
        if context:
            params = inspect.signature(self._factories[name]).parameters
            kwargs.update({k: v for k, v in context.items() if k in params and k not in kwargs})
        try:
            return self._factories[name](**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: bad settings {sorted(kwargs)}: {exc}") from exc
