"""Core types, the exception root, the response envelope and the import-cost promise."""

import numpy as np
import pytest

from getok import DecodeError, Geometry, GeometryError, GetokError
from getok.answers import extract_answer, parse_response, wrap_response
from getok.errors import MissingDependencyError, require
from tests.conftest import fresh_python


def test_import_getok_pulls_neither_torch_nor_transformers():
    code = (
        "import sys, getok, getok.codecs, getok.ops, getok.answers, getok.records;"
        "bad=[m for m in ('torch','transformers','segment_anything','cv2','peft','trl') if m in sys.modules];"
        "print(','.join(bad))"
    )
    assert fresh_python(code) == []


def test_decoders_sit_beside_codecs_at_the_top_level_without_a_heavier_import():
    code = (
        "import sys, getok; light = 'getok.decoding' not in sys.modules;"
        "d = getok.get_decoder('raster'); from getok.decoding import RasterDecoder;"
        "print(light, isinstance(d, RasterDecoder), isinstance(d, getok.MaskDecoder), 'raster' in getok.list_decoders())"
    )
    assert fresh_python(code) == ["True"] * 4
    import getok

    with pytest.raises(AttributeError, match="no attribute 'get_decoders'"):
        getok.get_decoders  # noqa: B018


def test_exception_hierarchy():
    assert issubclass(DecodeError, GetokError) and issubclass(DecodeError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)
    with pytest.raises(MissingDependencyError, match=r"pip install 'getok\[sam\]'"):
        require("not_a_module_xyz", "sam")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(box=[5, 0, 1, 1]), "x1 <= x2"),
        (dict(box=[0, 0, 1]), "4 finite"),
        (dict(box=[0, 0, 200, 10]), "outside"),
        (dict(points=[[1, 2, 3]]), r"\(K, 2\)"),
        (dict(points=[[np.nan, 1]]), "NaN"),
        (dict(points=[[1, 500]]), "outside"),
        (dict(polygons=[[[0, 0], [1, 1]]]), "at least 3"),
        (dict(cells=[[0, 0]]), "grid_n"),
        (dict(cells=[[4, 0]], grid_n=4), "0 <= cx"),
        (dict(cells=[[0, 0]], grid_n=4, offsets=[[1, 0]]), "offset_step"),
        (dict(cells=[[0, 0]], grid_n=4, deleted=[True, False]), "align"),
        (dict(offsets=[[1, 0]]), "need cells"),
        (dict(mask=np.zeros((3, 3))), "differs"),
        (dict(mask=np.full((100, 100), 2)), "binary"),
        (dict(), None),
    ],
)
def test_geometry_validation(kwargs, match):
    if match is None:
        assert Geometry(size=(100, 100), **kwargs).is_empty
        return
    with pytest.raises(GeometryError, match=match):
        Geometry(size=(100, 100), **kwargs)


def test_geometry_refined_points_clip_and_drop_deleted():
    g = Geometry(size=(40, 40), cells=[[0, 0], [3, 3], [1, 1]], grid_n=4, offsets=[[-1, -1], [1, 1], [0, 0]],
                 deleted=[False, False, True], offset_step=0.5)
    assert g.refined_points().tolist() == [[0.0, 0.0], [40.0, 40.0]]
    assert g.cell_centers().tolist()[2] == [15.0, 15.0]
    with pytest.raises(GeometryError):
        Geometry(size=(1, 0))


def test_response_envelope():
    assert parse_response(wrap_response("a", "b")) == ("b", "a")
    for bad in ["<answer>a</answer>", "<think>x</think>", "<think>x</think><answer>a</answer> trailing",
                "<think><think></think><answer>a</answer>", None]:
        with pytest.raises(DecodeError):
            parse_response(bad)
    assert extract_answer("x <answer>y</answer> <answer>z</answer>") == "y"
