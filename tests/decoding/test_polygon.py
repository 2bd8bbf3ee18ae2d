"""The polygon decoder: direct rasterisation and SAM refinement prompted by box + interior points."""

from __future__ import annotations

import numpy as np
import pytest

from getok.decoding import get_decoder, interior_points
from getok.decoding.sam_prompts import Prompt, geometry_prompts, polygon_prompts, to_sam_box, to_sam_points
from getok.errors import ConfigError, DataError
from getok.geometry import Geometry
from getok.ops.polygons import polygons_to_mask

from .conftest import SIZE

RING_A = np.array([[5, 5], [30, 5], [30, 25], [5, 25]], float)
RING_B = np.array([[45, 30], [75, 30], [60, 60]], float)
HOLE = np.array([[10, 10], [10, 20], [25, 20], [25, 10]], float)


def _geom():
    return Geometry(size=SIZE, polygons=[RING_A, RING_B], holes=[HOLE])


class RecordingRefiner:
    """A stand-in for SAM: records the prompts and answers with a fixed mask (or nothing)."""

    name = "recording"

    def __init__(self, answer: np.ndarray) -> None:
        self.answer = answer
        self.prompts: list[Prompt] = []
        self.images = 0

    def settings(self):
        return {"name": self.name}

    def set_image(self, image, size=None, key=None):
        self.images += 1

    def decode_prompt(self, prompt, mode=None):
        assert mode == "joint"
        self.prompts.append(prompt)
        return self.answer.copy()


def test_raster_without_refinement(image):
    dec = get_decoder("polygon")
    dec.set_image(image)
    np.testing.assert_array_equal(dec.decode(_geom()), polygons_to_mask([RING_A, RING_B], SIZE, [HOLE]))
    cells = Geometry(size=SIZE, cells=[[0, 0]], grid_n=4)
    assert dec.decode(cells).sum() == 16 * 20  # non-polygon answers: raster


def test_refinement_prompts_box_and_interior_points_per_ring(image):
    answer = np.zeros(SIZE, bool)
    answer[0:2, 0:2] = True
    ref = RecordingRefiner(answer)
    dec = get_decoder("polygon", refiner=ref, interior_points=3)
    dec.set_image(image)
    out = dec.decode(_geom())
    np.testing.assert_array_equal(out, answer)
    assert ref.images == 1 and len(ref.prompts) == 2
    region_a = polygons_to_mask([RING_A], SIZE, [HOLE])
    for prompt, ring in zip(ref.prompts, (RING_A, RING_B)):
        np.testing.assert_allclose(prompt.box, [*ring.min(0), *ring.max(0)])
        assert 1 <= len(prompt.points) <= 3
    pa = ref.prompts[0].points
    assert region_a[pa[:, 1].astype(int), pa[:, 0].astype(int)].all()  # inside ring A, never in its hole


def test_empty_refinement_falls_back_to_the_ring_raster(image):
    ref = RecordingRefiner(np.zeros(SIZE, bool))
    dec = get_decoder("polygon", refiner=ref)
    dec.set_image(image)
    np.testing.assert_array_equal(dec.decode(_geom()), polygons_to_mask([RING_A, RING_B], SIZE, [HOLE]))
    strict = get_decoder("polygon", refiner=ref, fallback=False)
    strict.set_image(image)
    assert not strict.decode(_geom()).any()


def test_refine_with_tiny_sam_end_to_end(image):
    pytest.importorskip("segment_anything")
    from getok.decoding.sam import build_tiny_sam

    dec = get_decoder("polygon:refine=sam,mode=joint", model=build_tiny_sam())
    assert dec.settings()["refiner"]["name"] == "sam"
    dec.set_image(image)
    out = dec.decode(_geom())
    assert out.shape == SIZE and out.dtype == bool and out.any()


def test_errors(image):
    with pytest.raises(ConfigError, match="refine must be"):
        get_decoder("polygon:refine=magic")
    with pytest.raises(ConfigError, match="need refine=sam"):
        get_decoder("polygon:checkpoint=/x.pth")
    with pytest.raises(ConfigError, match="cannot take prompts"):
        get_decoder("polygon", refiner=get_decoder("raster"))
    dec = get_decoder("polygon", refiner=RecordingRefiner(np.zeros(SIZE, bool)))
    with pytest.raises(DataError, match="needs the image"):
        dec.set_image(None, size=SIZE)


def test_interior_points_lie_deep_inside():
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[12:28, 12:28] = False  # a square annulus: its centroid is not inside
    pts = interior_points(ring, k=4)
    assert len(pts) == 4
    assert ring[pts[:, 1].astype(int), pts[:, 0].astype(int)].all()
    assert len({tuple(p) for p in pts.tolist()}) == 4  # spread, not repeated
    assert interior_points(np.zeros((5, 5), bool)).shape == (0, 2)


def test_geometry_prompts_sources():
    cells = Geometry(size=SIZE, cells=[[0, 0], [1, 1]], grid_n=4, offsets=[[1, 0], [0, 0]], offset_step=0.5)
    (p,) = geometry_prompts(cells)
    assert p.source == "cells" and p.box is None
    np.testing.assert_allclose(p.points, cells.refined_points())
    (p,) = geometry_prompts(Geometry(size=SIZE, box=[1, 2, 3, 4]))
    assert p.source == "box" and len(p.points) == 0
    assert geometry_prompts(Geometry(size=SIZE))[0].is_empty
    assert len(polygon_prompts(_geom(), per_polygon=False)) == 1
    np.testing.assert_allclose(to_sam_points([[0.5, 0.5]]), [[0.0, 0.0]])
    np.testing.assert_allclose(to_sam_box([0, 0, 1, 1]), [0, 0, 0, 0])
