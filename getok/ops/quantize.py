"""The one quantiser every codec uses.

Two modes over normalised values ``v`` in ``[0, 1]``:

* ``"floor"`` (bins): ``bins`` levels, ``q = clip(floor(v * bins), 0, bins - 1)``; dequantised to the bin
  centre ``(q + 0.5) / bins``. Used by grid cells, ``<loc_NNNN>`` bins and Qwen2-VL's ``[0, 1000)``
  integers. Maximum round-trip error: ``0.5 / bins``.
* ``"round"`` (decimals): ``bins + 1`` levels on the edges, ``q = round(v * bins)``; dequantised to
  ``q / bins``. Used by 3-decimal text (``bins = 1000``). Maximum error: ``0.5 / bins``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["quantize", "dequantize", "num_levels"]

_MODES = ("floor", "round")


def _check(bins: int, mode: str) -> None:
    if mode not in _MODES:
        raise ConfigError(f"quantiser mode must be one of {_MODES}, got {mode!r}")
    if int(bins) < 1:
        raise ConfigError(f"bins must be >= 1, got {bins}")


def num_levels(bins: int, mode: str = "floor") -> int:
    """Number of distinct quantised values."""
    _check(bins, mode)
    return int(bins) if mode == "floor" else int(bins) + 1


def quantize(values_norm, bins: int, mode: str = "floor") -> np.ndarray:
    """Normalised values → integer levels (``int64``, same shape).

    >>> quantize([0.0, 0.49, 0.5, 1.0], 4).tolist()
    [0, 1, 2, 3]
    >>> quantize([0.0004, 0.0005, 1.0], 1000, mode="round").tolist()
    [0, 0, 1000]
    """
    _check(bins, mode)
    v = np.clip(np.asarray(values_norm, dtype=np.float64), 0.0, 1.0)
    if mode == "floor":
        return np.clip(np.floor(v * bins), 0, bins - 1).astype(np.int64)
    return np.rint(v * bins).astype(np.int64)


def dequantize(levels, bins: int, mode: str = "floor") -> np.ndarray:
    """Integer levels → normalised values (``float64``).

    >>> dequantize([0, 3], 4).tolist()
    [0.125, 0.875]
    """
    _check(bins, mode)
    q = np.asarray(levels, dtype=np.float64)
    if mode == "floor":
        return (q + 0.5) / bins
    return q / bins
