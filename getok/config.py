"""Dataclasses are the config schema; YAML files and ``a.b=c`` overrides only fill them.

:func:`load_config` reads a YAML mapping into a (nested) dataclass, applies dotted command-line overrides,
and checks every key and type before anything expensive starts: an unknown key or a wrong type raises
:class:`~getok.errors.ConfigError` naming the field and what was expected.

>>> from dataclasses import dataclass
>>> @dataclass
... class Cfg:
...     lr: float = 1e-4
...     steps: int = 10
>>> load_config(Cfg, None, ["lr=0.5"]).lr
0.5
>>> load_config(Cfg, None, ["lrr=1"])
Traceback (most recent call last):
...
getok.errors.ConfigError: unknown config key 'lrr'; known keys of the top level: lr, steps
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .io import atomic_write_text

__all__ = ["load_config", "config_to_dict", "apply_overrides", "save_config", "check_numbers"]

T = TypeVar("T")


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if typ is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:  # ``X | None``: X's own message ("must be a finite number", ...)
            raise ConfigError(errors[0])
        raise ConfigError(f"config key {key!r}: {value!r} fits none of {typ}")
    if dataclasses.is_dataclass(typ):
        if isinstance(value, typ):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping for {typ.__name__}, got {type(value).__name__}")
        return _from_dict(typ, value, prefix=key + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {type(value).__name__}")
        inner = args[0] if args else Any
        out = [_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        return {_convert(k, kt, key): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config key {key!r} must be true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        out = None
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                pass
        if out is None:
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(out):  # YAML's .nan / .inf, or 'nan' / 'inf' in an override
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
        return out
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
    if typing.get_origin(typ) is typing.Literal:
        if value not in args:
            raise ConfigError(f"config key {key!r} must be one of {args}, got {value!r}")
        return value
    return value


def _field_value_error(v, positive: bool, non_negative: bool) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return "must be a finite number"
    if positive and not v > 0:
        return "must be > 0"
    if non_negative and not v >= 0:
        return "must be >= 0"
    return None


def check_numbers(obj, section: str, *, positive=(), non_negative=()) -> None:
    """The numeric checks every config dataclass shares, done in one place (call it from ``__post_init__``).

    * Every ``float`` field of ``obj`` — and every float in a list / tuple field — must be finite. NaN slips
      through comparisons such as ``v <= 0`` and ``inf`` makes a learning rate, a clip norm or a weight
      meaningless; either would otherwise surface later as a traceback from torch.
    * Fields named in ``positive`` must be > 0, those in ``non_negative`` >= 0; ``None`` (an unset optional
      field) passes.

    Raises :class:`ConfigError` ``"{section}.{field} must be ..., got ..."``.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Train:
    ...     lr: float = 1e-4
    ...     steps: int = 10
    >>> check_numbers(Train(lr=float("nan")), "train", positive=["lr"])
    Traceback (most recent call last):
    ...
    getok.errors.ConfigError: train.lr must be a finite number, got nan
    >>> check_numbers(Train(steps=0), "train", positive=["lr", "steps"])
    Traceback (most recent call last):
    ...
    getok.errors.ConfigError: train.steps must be > 0, got 0
    """
    positive, non_negative = set(positive), set(non_negative)
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        pos, nonneg = f.name in positive, f.name in non_negative
        if isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                problem = _field_value_error(item, pos, nonneg)
                if problem:
                    raise ConfigError(f"{section}.{f.name}[{i}] {problem}, got {item!r}")
            continue
        problem = _field_value_error(v, pos, nonneg)
        if problem:
            raise ConfigError(f"{section}.{f.name} {problem}, got {v!r}")
    unknown = (positive | non_negative) - {f.name for f in dataclasses.fields(obj)}
    if unknown:  # a typo in the caller, not in the user's config
        raise TypeError(f"check_numbers: {type(obj).__name__} has no field(s) {sorted(unknown)}")


def _from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r}; known keys of {where}: {', '.join(fields)}")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from exc


def config_to_dict(cfg) -> dict:
    """A dataclass config as plain, YAML-safe data."""
    return dataclasses.asdict(cfg)


def _parse_scalar(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=c`` strings to nested plain data (values parsed as YAML scalars / lists)."""
    out = dict(data)
    for ov in overrides or []:
        key, eq, raw = ov.partition("=")
        if not eq or not key:
            raise ConfigError(f"override {ov!r} is not key=value (e.g. train.lr=1e-4)")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            child = dict(child) if isinstance(child, dict) else {}
            node[p] = child
            node = child
        node[parts[-1]] = _parse_scalar(raw)
    return out


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml_mapping(path: str | Path) -> dict:
    """A config file's top-level mapping (empty file: ``{}``); a missing file, invalid YAML or another
    top-level type is a :class:`ConfigError` naming the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return loaded


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from defaults, then a YAML file, then ``a.b=c`` overrides; everything validated."""

    data: dict = {} if path is None else read_yaml_mapping(path)
    nested_ov = apply_overrides({}, overrides or [])
    return _from_dict(cls, _merge(data, nested_ov))


def save_config(cfg, path: str | Path) -> Path:
    """Write a config as YAML (atomically)."""
    import yaml

    return atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
