"""Polygon targets (SimpleSeg mode): tracing on the box, epsilon, holes, samples that decode back."""

from __future__ import annotations

import numpy as np
import pytest

from getok.codecs import get_codec
from getok.data_builders.polygons import PolygonTargetConfig, polygon_geometry, polygon_sample, trace_polygons
from getok.errors import ConfigError, GeometryError
from getok.ops.masks import mask_iou
from getok.ops.polygons import is_clockwise, mask_to_polygons, polygons_to_mask


def shapes(size=(80, 120)) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    m = (xx - 35) ** 2 + (yy - 40) ** 2 <= 25**2
    m[30:50, 30:40] = False  # a hole
    m |= (np.abs(xx - 95) <= 15) & (np.abs(yy - 20) <= 10)  # a second part
    return m


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.05])
@pytest.mark.parametrize("holes", [False, True])
def test_tracing_on_the_box_equals_tracing_the_image(eps, holes):
    m = shapes()
    for mask in (m, np.pad(m, ((0, 0), (5, 0)))[:, :-5], m[::-1]):  # also at the image border
        a_out, a_hol = trace_polygons(mask, PolygonTargetConfig(eps=eps, holes=holes))
        b_out, b_hol = mask_to_polygons(mask, eps, holes=holes)
        assert len(a_out) == len(b_out) and len(a_hol) == len(b_hol)
        for x, y in zip(a_out + a_hol, b_out + b_hol):
            assert np.allclose(x, y)


def test_polygon_geometry_covers_the_mask():
    m = shapes()
    g = polygon_geometry(m, PolygonTargetConfig(eps=0.0, holes=True), label="thing")
    assert len(g.polygons) == 2 and len(g.holes) == 1 and g.label == "thing"
    assert all(is_clockwise(r) for r in g.polygons) and not any(is_clockwise(r) for r in g.holes)
    assert g.mask is None and g.box.tolist() == [10.0, 10.0, 111.0, 66.0]
    assert mask_iou(polygons_to_mask(g.polygons, m.shape, g.holes), m) > 0.9


def test_epsilon_controls_the_vertex_count():
    m = shapes()
    counts = [
        sum(len(r) for r in polygon_geometry(m, PolygonTargetConfig(eps=e)).polygons) for e in (0.0, 0.005, 0.02, 0.1)
    ]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_max_polygons_and_min_area():
    m = shapes()
    assert len(polygon_geometry(m, PolygonTargetConfig(max_polygons=1)).polygons) == 1
    assert len(polygon_geometry(m, PolygonTargetConfig(min_area=1000)).polygons) == 1  # the small part dropped


def test_polygon_sample_decodes_back_to_the_mask():
    m = shapes()
    codec = get_codec("polygon:vertex=text,eps=0.005")
    s = polygon_sample(m, codec, sample_id="p0", image_id="im", image="im.png", query="the thing")
    assert s.task == "polygon" and s.kind == "mask" and s.codec == codec.spec and len(s.turns) == 1
    assert s.answer.startswith("[[") and "; " in s.answer  # two polygons, SimpleSeg text
    back = codec.decode(s.answer, m.shape)[0]
    assert mask_iou(polygons_to_mask(back.polygons, m.shape), m) > 0.85
    assert s.meta["polygons_config"]["eps"] == 0.005  # default: the codec's epsilon


def test_polygon_sample_other_vertex_formats():
    m = shapes()
    for spec in ("polygon:vertex=bins,bins=100", "polygon:vertex=grid,n=16", "polygon:vertex=grid_offset,n=16"):
        s = polygon_sample(m, spec, sample_id="a", image_id="b", image="c", query="d")
        assert get_codec(spec).try_decode(s.answer, m.shape).valid


def test_bad_input():
    with pytest.raises(GeometryError, match="empty"):
        polygon_geometry(np.zeros((10, 10), bool))
    with pytest.raises(GeometryError, match="binary"):
        polygon_geometry(np.full((10, 10), 5))
    with pytest.raises(ConfigError, match="eps"):
        PolygonTargetConfig(eps=1.5)
    with pytest.raises(ConfigError, match="polygon codec"):
        polygon_sample(shapes(), "grid:n=8", sample_id="a", image_id="b", image="c", query="d")
