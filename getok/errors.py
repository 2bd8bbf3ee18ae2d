"""One exception hierarchy for getok.

Every error the package raises on purpose derives from :class:`GetokError`, so callers can catch the
package's failures without catching programming errors (``TypeError`` from a bad call stays a
``TypeError``). Subclasses also derive from the matching built-in (``ValueError``, ``ImportError``) so
that generic handlers keep working.
"""

from __future__ import annotations

import importlib

__all__ = [
    "GetokError",
    "DecodeError",
    "GeometryError",
    "ConfigError",
    "DataError",
    "LayoutMismatchError",
    "MissingDependencyError",
]


class GetokError(Exception):
    """Root of every error getok raises on purpose."""


class DecodeError(GetokError, ValueError):
    """Model output (or any answer text) that does not parse under a codec.

    ``reason`` is a short machine-friendly tag (``"unknown_token"``, ``"bad_count"``, ...) used to count
    invalid outputs by cause; the message says what was wrong and where.
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class GeometryError(GetokError, ValueError):
    """A geometry, mask or coordinate array that violates the conventions (shape, range, dtype)."""


class ConfigError(GetokError, ValueError):
    """A configuration value or codec spec that is unknown, of the wrong type or out of range."""


class DataError(GetokError, ValueError):
    """A dataset, manifest, image or annotation that cannot be used as given."""


class LayoutMismatchError(GetokError, ValueError):
    """A vocabulary layout that disagrees with a tokenizer, a checkpoint or a dataset."""


class MissingDependencyError(GetokError, ImportError):
    """An optional dependency that a feature needs is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra to install.

    >>> require("json", "core").__name__
    'json'
    """

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised through callers
        what = feature or module
        raise MissingDependencyError(
            f"{what} needs the optional dependency {module!r}: pip install 'getok[{extra}]'"
        ) from exc
