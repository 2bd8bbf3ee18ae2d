import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from getok.errors import ConfigError, GeometryError
from getok.ops import (
    as_mask,
    box_iou,
    box_to_mask,
    dequantize,
    mask_iou,
    mask_to_box,
    quantize,
    rle_decode,
    rle_encode,
)

unit = st.floats(0.0, 1.0, allow_nan=False)


@given(v=unit, bins=st.integers(1, 2000), mode=st.sampled_from(["floor", "round"]))
def test_quantize_round_trip_error_is_half_a_level(v, bins, mode):
    q = quantize(v, bins, mode)
    assert 0 <= q <= (bins - 1 if mode == "floor" else bins)
    assert abs(dequantize(q, bins, mode) - v) <= 0.5 / bins + 1e-12


def test_quantize_rejects_bad_settings():
    with pytest.raises(ConfigError, match="mode"):
        quantize(0.5, 10, "ceil")
    with pytest.raises(ConfigError, match="bins"):
        quantize(0.5, 0)


def test_mask_box_round_trip_and_one_pixel():
    m = np.zeros((5, 7), bool)
    m[2, 3] = True
    assert mask_to_box(m).tolist() == [3, 2, 4, 3]
    assert (box_to_mask(mask_to_box(m), m.shape) == m).all()
    assert mask_to_box(np.zeros((3, 3), bool)) is None
    full = np.ones((4, 6), bool)
    assert mask_to_box(full).tolist() == [0, 0, 6, 4]


def test_as_mask_validates():
    with pytest.raises(GeometryError, match="binary"):
        as_mask(np.array([[0, 2]]))
    with pytest.raises(GeometryError, match="2-D"):
        as_mask(np.zeros((2, 2, 3)))
    with pytest.raises(GeometryError, match="differs"):
        as_mask(np.zeros((2, 2)), size=(3, 3))
    assert as_mask(np.array([[0.0, 1.0]])).dtype == bool


def test_ious():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2)), empty=0.0) == 0.0
    assert box_iou([0, 0, 2, 2], [0, 0, 2, 2]) == 1.0
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0


@given(st.integers(0, 2**20 - 1))
def test_rle_round_trip(bits):
    m = np.array([(bits >> i) & 1 for i in range(20)], dtype=bool).reshape(4, 5)
    assert (rle_decode(rle_encode(m)) == m).all()


def test_rle_uncompressed_and_corrupt():
    m = np.zeros((3, 2), bool)
    m[1:, 1] = True
    assert (rle_decode({"size": [3, 2], "counts": [4, 2]}) == m).all()
    with pytest.raises(GeometryError):
        rle_decode({"size": [3, 2], "counts": [4, 5]})
    with pytest.raises(GeometryError):
        rle_decode({"counts": "x"})
