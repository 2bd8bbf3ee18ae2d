"""Offset-aware samples: bands, the one-step hit test, deepest moves, noisy proposals, two-turn samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from getok.codecs import DELETE, get_codec
from getok.data_builders.offsets import (
    BAND_NAMES,
    FAR,
    HARD_DELETE,
    INSIDE,
    RING,
    BandConfig,
    OffsetConfig,
    label_grid,
    label_points,
    noisy_proposal,
    offset_sample,
    step_pixels,
)
from getok.errors import ConfigError, GeometryError
from getok.geometry import Geometry
from getok.ops.grid import grid_points
from getok.ops.refine import landing_pixels, offset_moves


def blob_mask(seed: int, size=(60, 84)) -> np.ndarray:
    """A union of random disks / rectangles, sometimes with a hole or a thin part."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros(size, bool)
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        if rng.random() < 0.5:
            m |= (xx - cx) ** 2 + (yy - cy) ** 2 <= rng.uniform(2, 20) ** 2
        else:
            m |= (np.abs(xx - cx) <= rng.uniform(1, 25)) & (np.abs(yy - cy) <= rng.uniform(1, 15))
    if rng.random() < 0.3:
        m[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 <= 16] = False
    if not m.any():
        m[h // 2, w // 2] = True
    return m


def brute_force_band(m: np.ndarray, p, n, r, step, bands: BandConfig):
    """The band of one point by the definitions, pixel by pixel (slow, obviously right)."""
    h, w = m.shape
    sx, sy = step_pixels(n, (h, w), step)
    pr, pc = min(int(np.floor(p[1])), h - 1), min(int(np.floor(p[0])), w - 1)

    def rect(steps):
        s = r if steps is None else steps
        ax, ay = int(np.ceil(s * sx - 1e-9)), int(np.ceil(s * sy - 1e-9))
        rr = np.clip(np.arange(pr - ay, pr + ay + 1), 0, h - 1)  # replicate the image border
        cc = np.clip(np.arange(pc - ax, pc + ax + 1), 0, w - 1)
        return m[np.ix_(rr, cc)]

    if rect(bands.inside_steps).all():
        return INSIDE
    rr, cc = landing_pixels([p], offset_moves(r), n, step, (h, w))
    if m[rr[0], cc[0]].any():
        return RING
    s = r if bands.far_steps is None else bands.far_steps
    ax, ay = int(np.ceil(s * sx - 1e-9)), int(np.ceil(s * sy - 1e-9))
    win = m[max(pr - ay, 0) : pr + ay + 1, max(pc - ax, 0) : pc + ax + 1]
    return HARD_DELETE if win.any() else FAR


# ---------------------------------------------------------------------------------------------------- bands
@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.sampled_from([8, 12, 16]),
    r=st.sampled_from([1, 2]),
    step=st.sampled_from([0.25, 0.5, 1.0]),
    widths=st.sampled_from([(None, None), (0.5, 2.0), (1.5, 0.5)]),
)
def test_every_grid_point_gets_exactly_the_band_the_definitions_give(seed, n, r, step, widths):
    m = blob_mask(seed)
    bands = BandConfig(*widths)
    lab = label_grid(m, n, r, step, bands)
    assert lab.band.shape == (n * n,) and set(np.unique(lab.band)) <= {INSIDE, RING, FAR, HARD_DELETE}
    pts = grid_points(n, m.shape)
    expected = [brute_force_band(m, p, n, r, step, bands) for p in pts]
    assert lab.band.tolist() == expected
    assert np.array_equal(lab.deleted, (lab.band == FAR) | (lab.band == HARD_DELETE))
    assert not lab.offsets[lab.deleted].any() and not lab.offsets[lab.band == INSIDE].any()


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.sampled_from([8, 16]),
    r=st.sampled_from([1, 2]),
    step=st.sampled_from([0.5, 1.0]),
)
def test_ring_moves_land_inside_and_deepest(seed, n, r, step):
    from scipy.ndimage import distance_transform_edt

    m = blob_mask(seed)
    lab = label_grid(m, n, r, step)
    cells = np.stack([np.arange(n * n) % n, np.arange(n * n) // n], axis=1)
    g = Geometry(size=m.shape, cells=cells, grid_n=n, offsets=lab.offsets, offset_step=step)
    refined = g.refined_points()  # the codec's own geometry: centre + offset, clipped to the image
    h, w = m.shape
    rows = np.minimum(np.floor(refined[:, 1]).astype(int), h - 1)
    cols = np.minimum(np.floor(refined[:, 0]).astype(int), w - 1)
    ring = lab.band == RING
    assert m[rows[ring], cols[ring]].all()  # every Ring move lands in the mask
    inside = lab.band == INSIDE
    if inside.any():  # every move from an Inside point stays in the mask
        rr, cc = landing_pixels(grid_points(n, m.shape)[inside], offset_moves(r), n, step, m.shape)
        assert m[rr, cc].all()
    far = lab.band == FAR
    if far.any():  # no move from a Far point reaches the mask
        rr, cc = landing_pixels(grid_points(n, m.shape)[far], offset_moves(r), n, step, m.shape)
        assert not m[rr, cc].any()
    # the chosen move is (about) the deepest landing: the 3x3 distance transform is within 10% of exact
    depth = distance_transform_edt(m)
    pts = grid_points(n, m.shape)
    for i in np.flatnonzero(ring)[:20]:
        rr, cc = landing_pixels(pts[i : i + 1], offset_moves(r), n, step, m.shape)
        assert depth[rows[i], cols[i]] >= 0.9 * depth[rr[0], cc[0]].max() - 1e-9


def test_documented_example_and_inner_boundary_points():
    m = np.zeros((40, 40), bool)
    m[10:30, 10:30] = True
    # n=8: cells of 5 px, step 2.5 px; (11, 20) is inside M, 1 px from its edge: not Inside, Ring
    lab = label_points(m, [[20, 20], [8, 20], [11, 20], [2, 2]], n=8, r=1, step=0.5)
    assert [BAND_NAMES[b] for b in lab.band] == ["inside", "ring", "ring", "far"]
    assert lab.offsets[1].tolist() == [1, 0]  # moves right, into the square
    assert lab.offsets[2].tolist() == [1, 0]  # an inner boundary point moves inward (deepest)


def test_hard_delete_thin_structure_between_landings():
    m = np.zeros((40, 40), bool)
    m[:, 19] = True  # a line between the landing columns 15, 17, 20 of the point at x=17.5 (step 2.5 px)
    lab = label_points(m, [[17.5, 17.5]], n=8, r=1, step=0.5)
    assert lab.band.tolist() == [HARD_DELETE] and lab.deleted.tolist() == [True]


def test_image_border_counts_as_inside():
    m = np.zeros((40, 40), bool)
    m[:, :20] = True  # touches the left border
    lab = label_points(m, [[2.5, 20.0]], n=8, r=1, step=0.5)  # a move left is clipped to the border
    assert lab.band.tolist() == [INSIDE]


def test_empty_mask_and_no_points():
    lab = label_points(np.zeros((10, 10), bool), [[5, 5]], 4, 1, 0.5)
    assert lab.band.tolist() == [FAR]
    assert len(label_points(np.ones((10, 10), bool), np.zeros((0, 2)), 4, 1, 0.5).band) == 0


def test_label_points_bad_input():
    with pytest.raises(GeometryError, match="binary"):
        label_points(np.full((10, 10), 3), [[1, 1]], 4, 1, 0.5)
    with pytest.raises(ConfigError):
        label_points(np.ones((10, 10), bool), [[1, 1]], 4, 1, 0.0)
    with pytest.raises(ConfigError, match="inside_steps"):
        BandConfig(inside_steps=-1)


# ---------------------------------------------------------------------------------------------------- proposals
def test_noisy_proposal_k_sources_and_band_bias():
    m = blob_mask(3, size=(128, 128))
    counts = np.zeros(4)
    for seed in range(30):
        prop = noisy_proposal(m, 32, 1, 0.5, OffsetConfig(k=16), rng=seed)
        assert len(prop.cells) == 16
        idx = prop.cells[:, 1] * 32 + prop.cells[:, 0]
        assert np.all(np.diff(idx) > 0)  # row-major, no duplicates
        assert set(prop.source) <= {"true", "jitter", "distractor", "grid"}
        full = label_grid(m, 32, 1, 0.5)
        assert np.array_equal(prop.labels.band, full.band[idx])
        counts += np.bincount(prop.labels.band, minlength=4)
    share = counts / counts.sum()
    base = np.bincount(label_grid(m, 32, 1, 0.5).band, minlength=4) / 32**2
    assert share[INSIDE] + share[RING] > base[INSIDE] + base[RING]  # biased to Inside and Ring
    assert share[FAR] + share[HARD_DELETE] > 0  # keeps some deletes


def test_noisy_proposal_uses_true_cells_and_distractors():
    m = np.zeros((64, 64), bool)
    m[8:24, 8:24] = True
    other = np.zeros((64, 64), bool)
    other[40:60, 40:60] = True
    true = np.array([[1, 1], [2, 2]])
    prop = noisy_proposal(
        m,
        8,
        1,
        0.5,
        OffsetConfig(k=6, p_true=1.0, n_jitter=0, n_distractors=2),
        true_cells=true,
        distractor_mask=other,
        rng=0,
    )
    src = dict(zip(map(tuple, prop.cells.tolist()), prop.source))
    assert src[(1, 1)] == "true" and src[(2, 2)] == "true"
    dis = [c for c, s in src.items() if s == "distractor"]
    assert len(dis) == 2 and all(5 <= cx <= 7 and 5 <= cy <= 7 for cx, cy in dis)  # on the other object


def test_noisy_proposal_is_deterministic_per_seed():
    m = blob_mask(5)
    a = noisy_proposal(m, 16, 1, 0.5, rng=11)
    b = noisy_proposal(m, 16, 1, 0.5, rng=11)
    assert a.cells.tolist() == b.cells.tolist() and a.source.tolist() == b.source.tolist()


def test_noisy_proposal_bad_input():
    with pytest.raises(GeometryError, match="empty"):
        noisy_proposal(np.zeros((10, 10), bool), 4, 1, 0.5)
    with pytest.raises(GeometryError, match="true_cells"):
        noisy_proposal(np.ones((10, 10), bool), 4, 1, 0.5, true_cells=[[4, 0]])
    with pytest.raises(GeometryError, match="differs"):
        noisy_proposal(np.ones((10, 10), bool), 4, 1, 0.5, distractor_mask=np.ones((5, 5), bool))
    with pytest.raises(ConfigError, match="band_weights"):
        OffsetConfig(band_weights=(0, 0, 0, 0))
    with pytest.raises(ConfigError, match="k"):
        OffsetConfig(k=0)


# ---------------------------------------------------------------------------------------------------- samples
def test_offset_sample_two_turns_decode_back():
    from getok.ops.masks import rle_decode

    codec = get_codec("grid_offset:n=16,r=1,step=0.5")
    m = blob_mask(9)
    s = offset_sample(m, codec, sample_id="s0", image_id="im", image="im.png", query="the blob", rng=1)
    assert s.task == "refine" and s.kind == "mask" and s.codec == codec.spec and len(s.turns) == 2
    assert "the blob" in s.turns[0].user and s.turns[0].user.startswith("<image>")
    prop = codec.decode(s.turns[0].assistant, m.shape)
    assert prop[0].cells.tolist() == s.truth["proposal_cells"] and s.truth["proposal"] == s.turns[0].assistant
    ref = codec.decode_refinement(s.answer, prop)[0]
    lab = label_grid(m, 16, 1, 0.5)
    idx = ref.cells[:, 1] * 16 + ref.cells[:, 0]
    assert np.array_equal(ref.deleted, lab.deleted[idx])
    assert np.array_equal(ref.offsets[~ref.deleted], lab.offsets[idx][~ref.deleted])
    assert s.answer.count(DELETE) == int(lab.deleted[idx].sum())
    assert np.array_equal(rle_decode(s.truth["masks"][0]), m)
    assert s.truth["size"] == list(m.shape) and len(s.meta["bands"]) == len(ref.cells)
    from getok.samples import Sample

    assert Sample.from_dict(__import__("json").loads(__import__("json").dumps(s.to_dict()))).answer == s.answer


def test_offset_sample_needs_grid_offset_codec():
    with pytest.raises(ConfigError, match="grid_offset"):
        offset_sample(np.ones((8, 8), bool), "grid:n=4", sample_id="a", image_id="b", image="c", query="d")
    with pytest.raises(GeometryError, match="empty"):
        offset_sample(np.zeros((8, 8), bool), "grid_offset:n=4", sample_id="a", image_id="b", image="c", query="d")


def test_anchor_is_always_proposed_and_refined_by_its_move():
    m = np.zeros((64, 64), bool)
    m[8:30, 8:30] = True
    # 8-grid on 64 px (cells of 8 px): cell (2, 2) is centred at (20, 20), its (1, 1) move lands at (24, 24),
    # inside; cell (3, 1) is centred at (28, 12), inside, and its (1, 0) move lands at (32, 12), outside
    for seed in range(10):
        prop = noisy_proposal(m, 8, 1, 0.5, OffsetConfig(k=3), rng=seed, anchor=((2, 2), (1, 1)))
        src = dict(zip(map(tuple, prop.cells.tolist()), range(len(prop.cells))))
        i = src[(2, 2)]
        assert prop.source[i] == "anchor" and len(prop.cells) == 3
        assert prop.labels.offsets[i].tolist() == [1, 1] and not prop.labels.deleted[i]
    # the named move misses the mask: the usual label (here: the deepest landing, not the named move)
    prop = noisy_proposal(m, 8, 1, 0.5, OffsetConfig(k=1), rng=0, anchor=((3, 1), (1, 0)))
    assert prop.cells.tolist() == [[3, 1]] and prop.source.tolist() == ["anchor"]
    assert prop.labels.offsets[0].tolist() != [1, 0]
    assert prop.labels.offsets[0].tolist() == label_points(m, [[28, 12]], 8, 1, 0.5).offsets[0].tolist()
    # without an anchor the rng stream (and so the proposal) is unchanged by the option's existence
    a = noisy_proposal(m, 8, 1, 0.5, OffsetConfig(k=4), rng=3)
    b = noisy_proposal(m, 8, 1, 0.5, OffsetConfig(k=4), rng=3, anchor=None)
    assert a.cells.tolist() == b.cells.tolist()
    with pytest.raises(GeometryError, match="outside"):
        noisy_proposal(m, 8, 1, 0.5, anchor=((8, 0), (0, 0)))
    with pytest.raises(GeometryError, match="radius"):
        noisy_proposal(m, 8, 1, 0.5, anchor=((1, 1), (2, 0)))
