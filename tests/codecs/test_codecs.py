"""Codec zoo: goldens, round trips (property-based), multi-instance and no-target answers, fuzzing."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from getok import NO_TARGET, DecodeError, Geometry, get_codec, list_codecs
from getok.codecs.token_names import DELETE, grid_token
from getok.errors import ConfigError
from getok.ops import cells_to_mask, mask_iou, mask_to_cells, polygons_to_mask
from getok.ops.raster import raster_mask
from tests.conftest import disk

SIZE = (64, 80)

SPECS = [
    "text_coords",
    "text_coords:style=int1000",
    "text_coords:style=qwen3",
    "text_coords:style=qwen2_5",
    "bins:bins=100",
    "grid:n=8",
    "grid_offset:n=8,r=1,step=0.5",
    "polygon",
    "polygon:vertex=bins,bins=200",
    "polygon:vertex=grid_offset,n=16,r=2,step=0.25",
    "polygon:vertex=grid,n=32,holes=true",
    "rle_descriptors:rows=8",
]

#: Worst-case error of a decoded coordinate, in normalised units, per codec.
POINT_TOL = {
    "text_coords": 0.0005,
    "text_coords:style=int1000": 0.0005,
    "text_coords:style=qwen3": 0.0005,
    "text_coords:style=qwen2_5": 0.5 / 56,  # pixels of the resized input: (64, 80) is seen as 56 x 84
    "bins:bins=100": 0.005,
    "grid:n=8": 1 / 16,
    "grid_offset:n=8,r=1,step=0.5": 1 / 32,
}


def kinds_of(spec):
    return get_codec(spec).kinds


def test_registry_lists_every_codec_and_rejects_unknown():
    assert list_codecs() == ["bins", "grid", "grid_offset", "polygon", "rle_descriptors", "text_coords"]
    with pytest.raises(ConfigError, match="unknown codec 'hex'"):
        get_codec("hex")
    with pytest.raises(ConfigError, match="no parameter"):
        get_codec("grid:m=3")
    with pytest.raises(ConfigError, match="not a valid int"):
        get_codec("grid:n=x")
    with pytest.raises(ConfigError, match=r"grid.n must be in"):
        get_codec("grid:n=0")
    with pytest.raises(ConfigError, match="kinds"):
        get_codec("rle_descriptors").encode([], kind="box")


@pytest.mark.parametrize("spec", SPECS)
def test_spec_is_canonical_and_parses_back(spec):
    c = get_codec(spec)
    assert get_codec(c.spec).spec == c.spec
    assert get_codec(c.spec) == c


def test_new_tokens_are_unique_and_sized():
    assert get_codec("text_coords").new_tokens() == []
    assert len(get_codec("grid:n=32").new_tokens()) == 1024
    go = get_codec("grid_offset").new_tokens()
    assert len(go) == 1024 + 9 + 1 and len(set(go)) == len(go) and go[-1] == DELETE
    assert len(get_codec("bins").new_tokens()) == 1000
    assert sorted(get_codec("grid:n=12").new_tokens()) == get_codec("grid:n=12").new_tokens()


# ---------------------------------------------------------------------------------------------- goldens
def golden_geometry():
    m = np.zeros((40, 40), bool)
    m[4:20, 8:24] = True  # a 16 x 16 square
    return Geometry(size=(40, 40), mask=m, box=[8, 4, 24, 20], points=[[16, 12]])


GOLDENS = {
    ("text_coords", "point"): "[0.400, 0.300]",
    ("text_coords", "box"): "[0.200, 0.100, 0.600, 0.500]",
    ("text_coords", "mask"): "[[0.200, 0.100], [0.600, 0.100], [0.600, 0.500], [0.200, 0.500]]",
    ("text_coords:style=int1000", "box"): "[200, 100, 600, 500]",
    ("bins:bins=10", "point"): "<loc_0004><loc_0003>",
    ("bins:bins=10", "box"): "<loc_0002><loc_0001><loc_0006><loc_0005>",
    ("grid:n=4", "point"): "<g4_r1_c1>",
    ("grid:n=4", "box"): "<g4_r0_c1><g4_r1_c1>",
    ("grid:n=4", "mask"): "<g4_r0_c1><g4_r1_c1>",
    ("grid_offset:n=4", "point"): "<g4_r0_c1><off_0_1>",
    ("polygon:vertex=grid,n=8", "mask"): "<g8_r0_c1><g8_r0_c4><g8_r4_c4><g8_r4_c1>",
    ("rle_descriptors:rows=4", "mask"): "others*1|target*1|others*2\nothers*1|target*1|others*2\nothers*4\nothers*4",
}


@pytest.mark.parametrize("spec,kind", list(GOLDENS))
def test_golden_strings(spec, kind):
    assert get_codec(spec).encode([golden_geometry()], kind=kind) == GOLDENS[(spec, kind)]


def test_refinement_golden_and_application():
    c = get_codec("grid_offset:n=4")
    prop = c.decode("<g4_r0_c1><g4_r1_c1>", (40, 40))
    g = prop[0].replace(offsets=[[1, 0], [0, 0]], deleted=[False, True], offset_step=0.5)
    text = c.encode_refinement([g])
    assert text == "<off_1_0><DELETE>"
    ref = c.decode_refinement(text, prop)[0]
    assert ref.points.tolist() == [[20.0, 5.0]]
    assert ref.deleted.tolist() == [False, True]
    ref.replace()  # built without re-validation on the hot path: it must pass validation all the same
    with pytest.raises(DecodeError, match="1 refinement tokens for 2"):
        c.decode_refinement("<off_1_0>", prop)
    with pytest.raises(DecodeError, match="lines"):
        c.decode_refinement("<off_1_0><DELETE>\n<off_0_0>", prop)
    assert c.decode_refinement("none", []) == []


# ---------------------------------------------------------------------------------------------- answers
@pytest.mark.parametrize("spec", SPECS)
def test_no_target_and_multi_instance(spec):
    c = get_codec(spec)
    assert c.encode([], kind="mask") == NO_TARGET
    assert c.decode(" None \n", SIZE, kind="mask") == []
    a = Geometry(size=SIZE, mask=disk(SIZE, (20, 20), 10))
    b = Geometry(size=SIZE, mask=disk(SIZE, (60, 44), 12))
    out = c.decode(c.encode([a, b], kind="mask"), SIZE, kind="mask")
    assert len(out) == 2
    ious = [mask_iou(raster_mask(o), g.mask) for o, g in zip(out, [a, b])]
    assert min(ious) > 0.3  # the instances come back in order (coarsest codec here: rle with 8 rows)
    with pytest.raises(DecodeError) as exc:
        c.decode("", SIZE, kind="mask")
    assert exc.value.reason == "empty"
    r = c.try_decode("certainly not an answer [", SIZE, kind="mask")
    assert not r.valid and r.geometries == []


# ---------------------------------------------------------------------------------------------- round trips
coords = st.floats(0, 1, allow_nan=False)


@pytest.mark.parametrize("spec", list(POINT_TOL))
@settings(max_examples=60, deadline=None)
@given(x=coords, y=coords)
def test_point_round_trip_within_quantisation(spec, x, y):
    c = get_codec(spec)
    h, w = SIZE
    g = Geometry(size=SIZE, points=[[x * w, y * h]])
    s = c.encode([g], kind="point")
    back = c.decode(s, SIZE, kind="point")[0].points[0]
    err = np.abs(back / [w, h] - [x, y]).max()
    assert err <= POINT_TOL[spec] + 1e-9
    assert c.encode(c.decode(s, SIZE, kind="point"), kind="point") == s  # idempotent


@pytest.mark.parametrize("spec", list(POINT_TOL))
@settings(max_examples=60, deadline=None)
@given(a=coords, b=coords, c_=coords, d=coords)
def test_box_round_trip_within_quantisation(spec, a, b, c_, d):
    codec = get_codec(spec)
    h, w = SIZE
    x1, x2 = sorted([a, c_])
    y1, y2 = sorted([b, d])
    g = Geometry(size=SIZE, box=[x1 * w, y1 * h, x2 * w, y2 * h])
    s = codec.encode([g], kind="box")
    back = codec.decode(s, SIZE, kind="box")[0].box
    tol = POINT_TOL[spec]
    if spec.startswith("grid:"):  # grid boxes snap to cell edges; a box thinner than a cell grows to one cell
        tol = 1 / 16 if min(x2 - x1, y2 - y1) >= 1 / 8 else 1 / 8
    assert np.abs(back / [w, h, w, h] - [x1, y1, x2, y2]).max() <= tol + 1e-9
    assert codec.encode(codec.decode(s, SIZE, kind="box"), kind="box") == s


@st.composite
def blob_masks(draw):
    h, w = SIZE
    m = np.zeros(SIZE, bool)
    for _ in range(draw(st.integers(1, 3))):
        cx, cy = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        r = draw(st.integers(1, 20))
        m |= disk(SIZE, (cx, cy), r)
    return m


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=25, deadline=None)
@given(m=blob_masks())
def test_mask_round_trip(spec, m):
    c = get_codec(spec)
    s = c.encode([Geometry(size=SIZE, mask=m)], kind="mask")
    out = c.decode(s, SIZE, kind="mask")
    assert len(out) == 1
    rec = raster_mask(out[0])
    assert rec.shape == SIZE and rec.any()
    if spec.startswith(("grid:", "grid_offset:")):
        n = c.config.n
        assert out[0].cells.tolist() == mask_to_cells(m, n).tolist()
        assert (rec == cells_to_mask(mask_to_cells(m, n), n, SIZE)).all()
    if not spec.startswith("rle"):
        assert c.encode(out, kind="mask") == s  # re-encoding a decoded answer gives the same text


@pytest.mark.parametrize("spec", ["polygon", "polygon:vertex=bins,bins=1000", "text_coords"])
def test_fine_polygons_reach_high_iou(spec):
    m = disk((200, 240), (120, 100), 60) | disk((200, 240), (40, 40), 15)
    out = get_codec(spec).decode(get_codec(spec).encode([Geometry(size=m.shape, mask=m)]), m.shape)
    assert len(out[0].polygons) == 2
    assert mask_iou(polygons_to_mask(out[0].polygons, m.shape), m) > 0.95


def test_polyline_round_trip():
    c = get_codec("polygon:vertex=bins,bins=1000")
    pts = np.array([[1.0, 2.0], [40.0, 30.0], [70.0, 60.0]])
    back = c.decode(c.encode([Geometry(size=SIZE, points=pts)], kind="polyline"), SIZE, kind="polyline")
    assert np.abs(back[0].points - pts).max() <= 0.5 / 1000 * 80 + 1e-9
    g = get_codec("grid:n=8")
    s = g.encode([Geometry(size=SIZE, points=[[1, 1], [2, 2], [70, 60]])], kind="polyline")
    assert s == grid_token(0, 0, 8) + grid_token(7, 7, 8)  # repeats collapse


def test_holes_round_trip_through_orientation():
    m = disk((80, 80), (40, 40), 30) & ~disk((80, 80), (40, 40), 12)
    c = get_codec("polygon:vertex=bins,bins=1000,holes=true")
    out = c.decode(c.encode([Geometry(size=m.shape, mask=m)]), m.shape)[0]
    assert len(out.holes) == 1
    assert not raster_mask(out)[40, 40]
    assert mask_iou(raster_mask(out), m) > 0.9


def test_empty_geometry_cannot_be_encoded():
    from getok.errors import GetokError

    with pytest.raises(GetokError):
        get_codec("polygon").encode([Geometry(size=SIZE, mask=np.zeros(SIZE, bool))])


# ---------------------------------------------------------------------------------------------- fuzzing
JUNK = ["[", "]", ",", " ", ".", "-", "0", "1", "5", "9", "0.5", "1e9", "NaN", "none", "\n", ";", "|", "*", "others",
        "target", "<", ">", "<off_-0_0>", "<off_5_5>", "<g8_r9_c0>", "<g32_r01_c01>", "<loc_99999>", "<DELETE>",
        "[[0.1, 0.2]]", "[0.1, 0.2, 0.3, 0.4]", "[[[[", "]]]]", "others*3", "target*99", '"', "{}", "true"]


@pytest.mark.parametrize("spec", SPECS)
def test_fuzzed_answers_raise_only_decode_error(spec):
    c = get_codec(spec)
    rng = random.Random(spec)
    vocab = c.new_tokens()
    pieces = JUNK + (rng.sample(vocab, min(30, len(vocab))) if vocab else [])
    valid = 0
    for i in range(10_000):
        kind = rng.choice(c.kinds)
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        if i % 7 == 0 and vocab:  # well-formed-looking token soups too
            text = "".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
        try:
            out = c.decode(text, SIZE, kind=kind)
        except DecodeError as exc:
            assert exc.reason
            continue
        valid += 1
        for g in out:
            assert isinstance(g, Geometry) and g.size == SIZE
            m = raster_mask(g)
            assert m is None or m.shape == SIZE
    assert valid > 0  # the generator does produce some decodable answers


@pytest.mark.parametrize("spec", ["grid:n=8", "grid_offset:n=8,r=1,step=0.5"])
def test_decoded_grid_masks_equal_validated_geometries(spec):
    """Mask answers of grid codecs skip re-validation (the parser's cells are valid by construction): the
    result must equal the validated geometry field for field, and two decodes must not share state."""
    c = get_codec(spec)
    a, b = c.decode("<g8_r1_c2><g8_r7_c0>\n<g8_r3_c3>", (56, 40), "mask")
    ref = Geometry(size=(56, 40), cells=[[2, 1], [0, 7]], grid_n=8)
    assert a.size == ref.size == (56, 40) and a.grid_n == 8
    assert a.cells.dtype == np.int64 and np.array_equal(a.cells, ref.cells)
    assert {k: v for k, v in vars(a).items() if k != "cells"} == {k: v for k, v in vars(ref).items() if k != "cells"}
    assert b.cells.tolist() == [[3, 3]] and a.cells is not b.cells
    assert vars(a) is not vars(b)
    with pytest.raises(DecodeError):
        c.decode("<g8_r8_c0>", (56, 40), "mask")
