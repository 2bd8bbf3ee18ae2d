"""Boundary F-score and vertex Chamfer distance against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from getok.errors import GeometryError
from getok.eval.boundary import (
    boundary_f_score,
    boundary_precision_recall,
    boundary_tolerance,
    mask_boundary,
    vertex_chamfer,
)


def _square(size=20, lo=5, hi=15):
    m = np.zeros((size, size), bool)
    m[lo:hi, lo:hi] = True
    return m


def test_boundary_pixels():
    b = mask_boundary(_square())
    assert b.sum() == 36 and not b[6:14, 6:14].any()
    full = np.ones((6, 6), bool)
    assert not mask_boundary(full).any()  # the image border is not an object boundary
    assert not mask_boundary(np.zeros((4, 4), bool)).any()


def test_shift_by_three_with_one_pixel_tolerance():
    # 18 of the 36 boundary pixels of each square lie within 1 px of the other's boundary (counted by hand)
    p, r = boundary_precision_recall(np.roll(_square(), 3, axis=1), _square(), tol=1)
    assert (p, r) == (0.5, 0.5)
    assert boundary_f_score(np.roll(_square(), 3, axis=1), _square(), tol=3) == 1.0


def test_asymmetric_precision_recall():
    small = _square(lo=8, hi=12)  # 12 boundary pixels, 3 px inside the big square's boundary
    p, r = boundary_precision_recall(small, _square(), tol=2)
    assert p == 0.0 and r == 0.0
    p, r = boundary_precision_recall(small, _square(), tol=3)
    assert p == 1.0 and 0 < r < 1  # every small-boundary pixel is matched; the big corners are not
    f = boundary_f_score(small, _square(), tol=3)
    assert f == pytest.approx(2 * p * r / (p + r))


def test_empty_cases_and_tolerance():
    e = np.zeros((10, 10), bool)
    assert boundary_f_score(e, e) == 1.0
    assert boundary_f_score(e, _square(10, 2, 6)) == 0.0
    assert boundary_tolerance(0.008, (480, 640)) == 7  # DAVIS: ceil(0.008 * 800)
    assert boundary_tolerance(3, (10, 10)) == 3
    with pytest.raises(GeometryError, match="> 0"):
        boundary_tolerance(0, (10, 10))
    with pytest.raises(GeometryError, match="differ in shape"):
        boundary_f_score(e, np.zeros((10, 11), bool))


def test_vertex_chamfer():
    sq = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    assert vertex_chamfer(sq, sq) == 0.0
    assert vertex_chamfer(sq, sq + [3, 0]) == 2.0  # nearest distances 3, 1, 1, 3 each way
    # A = sq and sq + 10 (8 vertices), B = sq: the shifted copy's vertices are 6-6, 10-6, 10-10, 6-10 px
    # (dx-dy) from the corner (4, 4); B's vertices all lie on A
    far = np.hypot(6, 6) + 2 * np.hypot(10, 6) + np.hypot(10, 10)
    assert vertex_chamfer([sq, sq + 10], [sq]) == pytest.approx(0.5 * (far / 8 + 0))
    assert np.isnan(vertex_chamfer(sq, []))
    big = np.random.default_rng(0).random((600, 2)) * 100
    assert vertex_chamfer(big, big[::-1]) == 0.0  # the k-d tree path
    with pytest.raises(GeometryError, match=r"\(V, 2\)"):
        vertex_chamfer(np.zeros((3, 3)), sq)
