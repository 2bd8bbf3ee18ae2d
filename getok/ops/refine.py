"""Refinement moves of proposed points and the per-point refinement score — one implementation, used by
the offset builder's labels, the stage-2 reward and the self-correction evaluation.

A proposed point (a cell centre) moves by an offset ``(dx, dy)`` of ``step`` cells per unit, with
``|dx|, |dy| <= r``, or is deleted. Where it lands is :func:`moved_positions` (clipped to the image, as
:func:`getok.ops.grid.apply_offsets` clips refined points); whether it lands on a mask is
:func:`getok.ops.points.points_in_mask`.

The per-point score (DESIGN.md, "Stage-2 rewards"), against the matched target mask:

* a kept point (moved or not): ``+1`` if it ends on the mask, ``-1`` if it started on it and leaves,
  ``0`` if it stays off (:func:`kept_scores`);
* a deleted point: ``+1`` when no position reachable by one move (the null move included) lies on the
  mask — a valid delete — else ``bad_delete`` (0 by default; :func:`delete_scores`).

>>> start_in = np.array([True, True, False]); end_in = np.array([True, False, False])
>>> kept_scores(start_in, end_in).tolist()
[1.0, -1.0, 0.0]
>>> point_scores(start_in, end_in, deleted=np.array([False, False, True]),
...              salvageable=np.array([False, False, False])).tolist()
[1.0, -1.0, 1.0]
"""

from __future__ import annotations

import functools

import numpy as np

from ..conventions import as_size
from .points import pixel_of

__all__ = [
    "offset_moves",
    "move_index",
    "moved_positions",
    "landing_pixels",
    "kept_scores",
    "delete_scores",
    "point_scores",
]


@functools.lru_cache(maxsize=16)
def offset_moves(r: int) -> np.ndarray:
    """All moves ``(M, 2)`` ``(dx, dy)`` with ``|dx|, |dy| <= r``, ``M = (2r+1)^2``, row-major (dy, then dx);
    read-only.

    >>> offset_moves(1)[:3].tolist()
    [[-1, -1], [0, -1], [1, -1]]
    """
    d = np.arange(-int(r), int(r) + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    out = np.stack([dx.ravel(), dy.ravel()], axis=1).astype(np.int64)
    out.setflags(write=False)
    return out


def move_index(offsets, r: int) -> np.ndarray:
    """Each offset's row in :func:`offset_moves` ``(r)``.

    >>> move_index([[-1, -1], [1, 0]], 1).tolist()
    [0, 5]
    """
    o = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return (o[:, 1] + r) * (2 * r + 1) + (o[:, 0] + r)


@functools.lru_cache(maxsize=64)
def _radius_pixels(r: int, n: int, h: int, w: int, step: float) -> np.ndarray:
    out = _move_pixels(offset_moves(r), n, h, w, step)
    out.setflags(write=False)
    return out


def _move_pixels(moves: np.ndarray, n: int, h: int, w: int, step: float) -> np.ndarray:
    """Moves in steps → pixels, with :func:`~getok.ops.grid.apply_offsets`' arithmetic (offsets x step x cell)."""
    return np.asarray(moves, dtype=np.float64).reshape(-1, 2) * step * np.array([w / n, h / n])


def moved_positions(points, moves, n: int, size: tuple[int, int], step: float) -> np.ndarray:
    """Where points ``(P, 2)`` XY pixels land after each move, ``(P, M, 2)``, clipped to ``[0, W] x [0, H]``.

    ``moves`` is an offset radius ``r`` (every move of :func:`offset_moves`, in its order) or moves
    ``(M, 2)`` in steps.
    """
    h, w = as_size(size)
    if np.ndim(moves) == 0:
        mv = _radius_pixels(int(moves), int(n), h, w, float(step))
    else:
        mv = _move_pixels(moves, int(n), h, w, float(step))
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pos = p[:, None, :] + mv[None, :, :]
    return np.minimum(np.maximum(pos, 0.0), np.array([w, h], dtype=np.float64))


def landing_pixels(points, moves, n: int, step: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``(rows, cols)``, each ``(P, M)``, where points land after moves (:func:`moved_positions`, read
    by :func:`getok.ops.points.pixel_of`)."""
    return pixel_of(moved_positions(points, moves, n, size, step), as_size(size))


def kept_scores(start_in, end_in) -> np.ndarray:
    """Score of kept points: ``+1`` ends on the mask, ``-1`` started on it and leaves, ``0`` stays off
    (arrays broadcast: e.g. ``start_in[:, None]`` against every move's ``end_in``)."""
    return np.where(end_in, 1.0, np.where(start_in, -1.0, 0.0))


def delete_scores(salvageable, bad_delete: float = 0.0) -> np.ndarray:
    """Score of deleted points: ``+1`` when no reachable position is on the mask, else ``bad_delete``."""
    return np.where(salvageable, float(bad_delete), 1.0)


def point_scores(start_in, end_in, deleted, salvageable, bad_delete: float = 0.0) -> np.ndarray:
    """Per-point score ``(K,)`` (module docstring); ``end_in`` / ``salvageable`` are read only where the point
    is kept / deleted."""
    deleted = np.asarray(deleted, dtype=bool)
    return np.where(deleted, delete_scores(salvageable, bad_delete), kept_scores(start_in, end_in))
