"""The ``point_masks`` decoder on a synthetic label-map scene with exact point masks."""

from __future__ import annotations

import numpy as np
import pytest

from getok.decoding import PointProposer, get_decoder
from getok.decoding.point_masks import cover_lookup
from getok.errors import ConfigError, DataError, GeometryError
from getok.geometry import Geometry
from getok.ops.grid import mask_to_cells
from getok.ops.masks import mask_iou

from .conftest import SIZE, LabelProposer, StackProposer


@pytest.mark.parametrize("n", [8, 16, 32])
@pytest.mark.parametrize("region", [1, 2, 3])
def test_exact_point_masks_give_iou_one_for_the_right_cells(labels, image, n, region):
    target = labels == region
    cells = mask_to_cells(target, n)  # the cells whose grid point lies on the target
    dec = get_decoder("point_masks", proposer=StackProposer(labels))
    dec.set_image(image)
    out = dec.decode(Geometry(size=SIZE, cells=cells, grid_n=n))
    assert out.dtype == bool and out.shape == SIZE
    assert mask_iou(out, target) == 1.0


def test_wrong_cells_do_not_give_the_target(labels, image):
    dec = get_decoder("point_masks", proposer=StackProposer(labels))
    dec.set_image(image)
    cells = np.concatenate([mask_to_cells(labels == 1, 16), mask_to_cells(labels == 2, 16)[:1]])
    out = dec.decode(Geometry(size=SIZE, cells=cells, grid_n=16))
    np.testing.assert_array_equal(out, (labels == 1) | (labels == 2))


def test_deleted_cells_contribute_nothing(labels, image):
    c1, c2 = mask_to_cells(labels == 1, 16), mask_to_cells(labels == 2, 16)
    cells = np.concatenate([c1, c2])
    deleted = np.r_[np.zeros(len(c1), bool), np.ones(len(c2), bool)]
    dec = get_decoder("point_masks", proposer=StackProposer(labels))
    dec.set_image(image)
    out = dec.decode(Geometry(size=SIZE, cells=cells, grid_n=16, deleted=deleted))
    np.testing.assert_array_equal(out, labels == 1)


def _background_cell_next_to_rect(labels, n=16):
    """A background grid cell and a one-step offset (step half a cell) that moves its point onto region 1."""
    from getok.ops.grid import apply_offsets, grid_points

    h, w = SIZE
    for i, (x, y) in enumerate(grid_points(n, SIZE)):
        if labels[int(y), int(x)] != 0:
            continue
        cell = np.array([[i % n, i // n]])
        for off in ([1, 0], [-1, 0], [0, 1], [0, -1]):
            mx, my = apply_offsets(cell, n, SIZE, [off], 0.5)[0]
            if labels[min(int(my), h - 1), min(int(mx), w - 1)] == 1:
                return cell, np.array([off])
    raise AssertionError("scene has no such cell")


@pytest.mark.parametrize("refined,proposer_cls", [("lookup", LabelProposer), ("cover", StackProposer),
                                                  ("auto", LabelProposer), ("auto", StackProposer)])
def test_offset_moves_a_point_into_the_object(labels, image, refined, proposer_cls):
    cell, off = _background_cell_next_to_rect(labels)
    dec = get_decoder("point_masks", proposer=proposer_cls(labels), refined=refined)
    dec.set_image(image)
    still = dec.decode(Geometry(size=SIZE, cells=cell, grid_n=16))
    np.testing.assert_array_equal(still, labels == 0)  # its own point mask: the background
    moved = dec.decode(Geometry(size=SIZE, cells=cell, grid_n=16, offsets=off, offset_step=0.5))
    np.testing.assert_array_equal(moved, labels == 1)


def test_cell_mode_uses_the_cell_under_the_refined_point(labels, image):
    cell, off = _background_cell_next_to_rect(labels)
    dec = get_decoder("point_masks", proposer=StackProposer(labels), refined="cell")
    dec.set_image(image)
    moved = dec.decode(Geometry(size=SIZE, cells=cell, grid_n=16, offsets=off, offset_step=0.5))
    # half a cell lands on the border with the neighbouring cell; a border belongs to the larger index
    neighbour = cell + np.maximum(off, 0)
    np.testing.assert_array_equal(moved, dec.decode(Geometry(size=SIZE, cells=neighbour, grid_n=16)))
    assert not np.array_equal(moved, dec.decode(Geometry(size=SIZE, cells=cell, grid_n=16)))


def test_cover_lookup_returns_minus_one_where_nothing_covers():
    from getok.data_builders.proposers.base import PointMaskStack

    m = np.zeros((1, 8, 8), bool)
    m[0, :4, :4] = True
    st = PointMaskStack(n=2, size=(8, 8), masks=m, point_to_mask=[0, -1, -1, -1])
    assert cover_lookup(st, np.array([[1.0, 1.0], [7.0, 7.0]])).tolist() == [0, -1]


def test_points_only_answers_select_regions(labels, image):
    dec = get_decoder("point_masks", proposer=LabelProposer(labels))
    dec.set_image(image)
    out = dec.decode(Geometry(size=SIZE, points=[[20, 20], [58, 40]]))
    np.testing.assert_array_equal(out, (labels == 1) | (labels == 2))


def test_stacks_are_cached_per_image_and_grid(labels, image):
    prop = StackProposer(labels)
    dec = get_decoder("point_masks", proposer=prop, cache_size=2)
    other = image[::-1].copy()
    g8 = Geometry(size=SIZE, cells=[[1, 1]], grid_n=8)
    g16 = Geometry(size=SIZE, cells=[[1, 1]], grid_n=16)
    dec.set_image(image)
    dec.decode(g8)
    dec.decode(g8)
    assert prop.calls == 1
    dec.decode(g16)
    assert prop.calls == 2
    dec.set_image(other)
    dec.decode(g8)
    assert prop.calls == 3
    dec.set_image(image, key=None)  # content hash: (image, 8) was evicted by (other, 8) with capacity 2
    dec.decode(g8)
    assert prop.calls == 4 and dec.stacks_computed == 4


def test_box_and_polygon_answers_fall_back_to_raster(labels, image):
    dec = get_decoder("point_masks", proposer=StackProposer(labels))
    dec.set_image(image)
    assert dec.decode(Geometry(size=SIZE, box=[0, 0, 10, 10])).sum() == 100


def test_errors(labels, image):
    with pytest.raises(ConfigError, match="needs a proposer"):
        get_decoder("point_masks")
    with pytest.raises(ConfigError, match="propose"):
        get_decoder("point_masks", proposer=object())
    with pytest.raises(ConfigError, match="refined"):
        get_decoder("point_masks", proposer=StackProposer(labels), refined="nearest")
    with pytest.raises(ConfigError, match="propose_at"):
        get_decoder("point_masks", proposer=StackProposer(labels), refined="lookup")
    dec = get_decoder("point_masks", proposer=StackProposer(labels))
    with pytest.raises(DataError, match="set_image"):
        dec.decode(Geometry(size=SIZE, cells=[[0, 0]], grid_n=4))
    with pytest.raises(DataError, match="needs the image"):
        dec.set_image(None, size=SIZE)
    dec.set_image(image)
    with pytest.raises(GeometryError, match="differs"):
        dec.decode(Geometry(size=(10, 10), cells=[[0, 0]], grid_n=4))
    assert isinstance(LabelProposer(labels), PointProposer)
    assert not isinstance(StackProposer(labels), PointProposer)


def test_a_proposer_that_returns_the_wrong_grid_is_reported(labels, image):
    class Wrong(StackProposer):
        def propose(self, image, n):
            return super().propose(image, n + 1)

    dec = get_decoder("point_masks", proposer=Wrong(labels))
    dec.set_image(image)
    with pytest.raises(DataError, match="expected n=8"):
        dec.decode(Geometry(size=SIZE, cells=[[0, 0]], grid_n=8))


def test_builder_proposers_plug_in(labels, image):
    """The data builders' proposers (registry, ExactProposer with propose_at) work through this decoder."""
    proposers = pytest.importorskip("getok.data_builders.proposers")
    if not hasattr(proposers, "get_proposer") or not hasattr(proposers, "ExactProposer"):
        pytest.skip("the data builders' proposer registry is not available")
    exact = proposers.ExactProposer(labels.astype(np.int32))
    dec = get_decoder("point_masks", proposer=exact)
    dec.set_image(image)
    for region in (1, 2, 3):
        out = dec.decode(Geometry(size=SIZE, cells=mask_to_cells(labels == region, 16), grid_n=16))
        assert mask_iou(out, labels == region) == 1.0
    sp = get_decoder("point_masks:proposer=superpixel,n_segments=30")
    sp.set_image(image)
    out = sp.decode(Geometry(size=SIZE, cells=[[3, 3]], grid_n=8, offsets=[[1, 0]], offset_step=0.5))
    assert out.shape == SIZE and out.dtype == bool and out.any()
    assert sp.settings()["proposer"] == "superpixel"
