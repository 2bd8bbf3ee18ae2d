"""The weight-free raster decoder: cells (deleted, offsets), boxes, polygons, masks, points."""

from __future__ import annotations

import numpy as np
import pytest

from getok.decoding import get_decoder, raster_mask
from getok.errors import GeometryError
from getok.geometry import Geometry
from getok.ops.boxes import box_to_mask
from getok.ops.polygons import polygons_to_mask
from getok.ops.raster import cells_to_mask, shifted_cells_mask


def _reference_shifted(cells, n, size, offsets, step):
    """Brute force: a pixel is set when its centre lies in a shifted square [x0, x0 + cw) x [y0, y0 + ch)."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    xc, yc = xx + 0.5, yy + 0.5
    out = np.zeros(size, bool)
    cw, ch = w / n, h / n
    for (cx, cy), (dx, dy) in zip(cells, offsets):
        x0, y0 = (cx + dx * step) * cw, (cy + dy * step) * ch
        out |= (xc >= x0) & (xc < x0 + cw) & (yc >= y0) & (yc < y0 + ch)
    return out


@pytest.mark.parametrize("size,n", [((64, 80), 8), ((37, 53), 7), ((480, 640), 32), ((5, 3), 4)])
def test_cells_to_mask_matches_the_pixel_centre_rule(size, n):
    rng = np.random.default_rng(n)
    cells = rng.integers(0, n, (max(1, n), 2))
    expect = _reference_shifted(cells, n, size, np.zeros_like(cells), 1.0)
    np.testing.assert_array_equal(cells_to_mask(cells, n, size), expect)
    g = Geometry(size=size, cells=cells, grid_n=n)
    np.testing.assert_array_equal(raster_mask(g), expect)


@pytest.mark.parametrize("size,n,step", [((64, 80), 8, 0.5), ((37, 53), 7, 0.5), ((48, 48), 6, 0.25), ((40, 60), 5, 0.3)])
def test_shifted_cells_match_brute_force(size, n, step):
    rng = np.random.default_rng(0)
    cells = rng.integers(0, n, (12, 2))
    offsets = rng.integers(-1, 2, (12, 2))
    got = shifted_cells_mask(cells, n, size, offsets, step)
    np.testing.assert_array_equal(got, _reference_shifted(cells, n, size, offsets, step))


def test_zero_offsets_equal_plain_cells():
    cells = np.array([[1, 2], [3, 3], [0, 7]])
    got = shifted_cells_mask(cells, 8, (37, 53), np.zeros_like(cells), 0.5)
    np.testing.assert_array_equal(got, cells_to_mask(cells, 8, (37, 53)))


def test_offset_shifts_the_cell_square_by_half_a_cell():
    # 8-grid on 64 x 80: cells are 10 px wide, 8 px high; offset (+1, -1) at step 0.5 = (+5, -4) px
    g = Geometry(size=(64, 80), cells=[[2, 3]], grid_n=8, offsets=[[1, -1]], offset_step=0.5)
    m = raster_mask(g)
    expect = np.zeros((64, 80), bool)
    expect[24 - 4 : 32 - 4, 20 + 5 : 30 + 5] = True
    np.testing.assert_array_equal(m, expect)


def test_offsets_clip_at_the_image_border():
    g = Geometry(size=(16, 16), cells=[[0, 0]], grid_n=2, offsets=[[-1, -1]], offset_step=0.5)
    m = raster_mask(g)
    assert m.sum() == 16 and m[:4, :4].all()  # the 8x8 square moved by (-4, -4): a 4x4 corner is left


def test_deleted_cells_are_dropped():
    g = Geometry(size=(64, 80), cells=[[0, 0], [5, 5]], grid_n=8, deleted=[True, False],
                 offsets=[[1, 1], [0, 0]], offset_step=0.5)
    np.testing.assert_array_equal(raster_mask(g), cells_to_mask([[5, 5]], 8, (64, 80)))
    everything_deleted = g.replace(deleted=[True, True])
    assert not raster_mask(everything_deleted).any()


def test_box_polygon_mask_and_points():
    size = (30, 40)
    assert np.array_equal(raster_mask(Geometry(size=size, box=[3, 4, 20, 25])), box_to_mask([3, 4, 20, 25], size))
    ring = np.array([[5, 5], [30, 5], [30, 25], [5, 25]], float)
    hole = np.array([[10, 10], [10, 20], [20, 20], [20, 10]], float)
    g = Geometry(size=size, polygons=[ring], holes=[hole])
    np.testing.assert_array_equal(raster_mask(g), polygons_to_mask([ring], size, [hole]))
    assert not raster_mask(g)[15, 15]  # inside the hole
    mask = np.zeros(size, bool)
    mask[1:3, 2:9] = True
    np.testing.assert_array_equal(raster_mask(Geometry(size=size, mask=mask, box=[0, 0, 40, 30])), mask)
    pts_only = raster_mask(Geometry(size=size, points=[[10, 10], [20, 5]]))
    assert pts_only.shape == size and pts_only.dtype == bool and not pts_only.any()
    assert not raster_mask(Geometry(size=size)).any()


def test_decoder_protocol_and_size_checks():
    dec = get_decoder("raster")
    g = Geometry(size=(20, 30), box=[0, 0, 10, 10])
    out = dec.decode(g)  # no set_image needed for a weight-free raster
    assert out.shape == (20, 30) and out.dtype == bool and out.sum() == 100
    dec.set_image(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(GeometryError, match="differs from the image set"):
        dec.decode(Geometry(size=(21, 30), box=[0, 0, 10, 10]))
    with pytest.raises(GeometryError, match="expects a Geometry"):
        dec.decode({"box": [0, 0, 1, 1]})
    with pytest.raises(GeometryError, match=r"\(H, W, 3\)"):
        dec.set_image(np.zeros((20, 30), np.uint8))
    with pytest.raises(GeometryError, match="differs from the image"):
        dec.set_image(np.zeros((20, 30, 3), np.uint8), size=(10, 10))


def test_shifted_cells_bad_input():
    with pytest.raises(GeometryError, match="align"):
        shifted_cells_mask([[0, 0]], 4, (8, 8), [[0, 0], [1, 1]], 0.5)
    with pytest.raises(GeometryError, match="0 <= cx, cy < n"):
        cells_to_mask([[4, 0]], 4, (8, 8))
    with pytest.raises(GeometryError, match="step"):
        shifted_cells_mask([[0, 0]], 4, (8, 8), [[1, 1]], 0.0)
