import numpy as np
import pytest

from getok.ops import (
    cell_centers,
    cells_to_mask,
    grid_points,
    is_clockwise,
    mask_iou,
    mask_to_cells,
    mask_to_polygons,
    points_to_cells,
    points_to_cells_offsets,
    polygons_to_mask,
)
from getok.ops.polygons import signed_area
from tests.conftest import disk


def ring_mask():
    m = disk((60, 60), (30, 30), 20)
    return m & ~disk((60, 60), (30, 30), 8)


def test_polygons_are_clockwise_and_exact_without_simplification():
    for m in (disk(), ring_mask()):
        outers, holes = mask_to_polygons(m, eps_rel=0, holes=True)
        assert all(is_clockwise(r) for r in outers)
        assert all(not is_clockwise(r) for r in holes)
        assert (polygons_to_mask(outers, m.shape, holes) == m).all()


def test_holes_survive_when_enabled_and_vanish_when_not():
    m = ring_mask()
    outers, holes = mask_to_polygons(m, eps_rel=0.01, holes=True)
    assert len(outers) == 1 and len(holes) == 1
    rec = polygons_to_mask(outers, m.shape, holes)
    assert not rec[30, 30] and mask_iou(rec, m) > 0.9
    outers, holes = mask_to_polygons(m, eps_rel=0.01, holes=False)
    assert holes == [] and polygons_to_mask(outers, m.shape)[30, 30]


def test_multi_polygon_largest_first_and_one_pixel_objects():
    m = np.zeros((20, 20), bool)
    m[2:10, 2:10] = True
    m[15, 15] = True  # one pixel
    m[12, 2:12] = True  # one-pixel-wide line
    outers, _ = mask_to_polygons(m)
    assert len(outers) == 3
    assert abs(signed_area(outers[0])) >= abs(signed_area(outers[1])) >= abs(signed_area(outers[2]))
    rec = polygons_to_mask(outers, m.shape)
    assert rec[15, 15] and rec[12, 5] and rec[5, 5]
    assert mask_to_polygons(np.zeros((4, 4), bool)) == ([], [])


def test_full_mask_polygon():
    m = np.ones((10, 12), bool)
    outers, _ = mask_to_polygons(m)
    assert (polygons_to_mask(outers, m.shape) == m).all()


def test_simplification_reduces_vertices_and_keeps_iou():
    m = disk((200, 200), (100, 100), 70)
    dense, _ = mask_to_polygons(m, eps_rel=0)
    sparse, _ = mask_to_polygons(m, eps_rel=0.01)
    assert len(sparse[0]) < len(dense[0]) / 5
    assert mask_iou(polygons_to_mask(sparse, m.shape), m) > 0.97


def test_grid_points_row_major_and_cells():
    pts = grid_points(4, (40, 80))
    assert pts[:2].tolist() == [[10.0, 5.0], [30.0, 5.0]]
    assert pts[4].tolist() == [10.0, 15.0]
    cells = points_to_cells(pts, 4, (40, 80))
    assert (cell_centers(cells, 4, (40, 80)) == pts).all()


def test_cells_to_mask_partition():
    n, size = 5, (37, 53)
    all_cells = np.array([[x, y] for y in range(n) for x in range(n)])
    assert cells_to_mask(all_cells, n, size).all()
    total = sum(cells_to_mask([c], n, size).sum() for c in all_cells)
    assert total == size[0] * size[1]


def test_mask_to_cells_never_empty_for_tiny_targets():
    m = np.zeros((64, 64), bool)
    m[0, 63] = True  # far from every grid point of a 4-grid
    cells = mask_to_cells(m, 4)
    assert cells.tolist() == [[3, 0]]
    assert mask_to_cells(np.zeros((8, 8), bool), 4).shape == (0, 2)


@pytest.mark.parametrize("step,r", [(0.5, 1), (0.25, 2), (0.125, 4)])
def test_cell_offset_quantisation_resolution(step, r):
    n, size = 16, (160, 160)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 160, size=(500, 2))
    cells, offs = points_to_cells_offsets(pts, n, r, step, size)
    rec = (cells + 0.5 + offs * step) * 10
    assert np.abs(rec - pts).max() <= 0.5 * step * 10 + 1e-9
