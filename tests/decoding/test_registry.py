"""Decoders are registered by name, built from specs, and cost no torch import until used."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from getok.decoding import MaskDecoder, get_decoder, list_decoders, register_decoder
from getok.decoding.combine import decode_instances, decode_union
from getok.errors import ConfigError
from getok.geometry import Geometry


def test_all_decoders_are_registered():
    assert {"raster", "proposals", "sam", "sam2", "polygon"} <= set(list_decoders())


def test_specs_and_protocol():
    dec = get_decoder("raster")
    assert isinstance(dec, MaskDecoder) and dec.name == "raster"
    assert get_decoder(dec) is dec
    with pytest.raises(ConfigError, match="unknown decoder 'sam3'"):
        get_decoder("sam3")
    with pytest.raises(ConfigError, match="key=value"):
        get_decoder("sam:vit_b")
    with pytest.raises(ConfigError, match="already registered"):
        register_decoder("raster")(object)


def test_instances_and_union():
    dec = get_decoder("raster")
    gs = [Geometry(size=(8, 8), box=[0, 0, 4, 4]), Geometry(size=(8, 8), box=[2, 2, 6, 6])]
    inst = decode_instances(dec, gs, (8, 8))
    assert inst.shape == (2, 8, 8) and inst.dtype == bool
    np.testing.assert_array_equal(decode_union(dec, gs, (8, 8)), inst.any(0))
    assert decode_instances(dec, [], (8, 8)).shape == (0, 8, 8)
    assert not decode_union(dec, [], (8, 8)).any()


def test_importing_decoders_and_metrics_does_not_import_torch():
    code = (
        "import sys, getok, getok.decoding, getok.eval, getok.eval.metrics\n"
        "from getok.decoding import get_decoder\n"
        "get_decoder('raster'); get_decoder('polygon')\n"
        "bad = [m for m in ('torch', 'transformers', 'segment_anything') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
