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
    assert {"raster", "point_masks", "sam", "sam2", "sam3", "polygon"} <= set(list_decoders())


def test_proposals_is_the_former_name_of_point_masks():
    """Committed results and user configs say ``proposals:...``: the same decoder, compared by its current name."""
    from getok.decoding import PointMaskDecoder, SceneExactDecoder, canonical_decoder_spec
    from getok.decoding.base import former_decoder_specs

    lm = np.zeros((8, 8), np.int32)
    lm[2:5, 2:5] = 1
    old, new = get_decoder("proposals:proposer=exact,n=4", label_map=lm), get_decoder("point_masks:proposer=exact,n=4", label_map=lm)
    assert type(old) is type(new) is PointMaskDecoder and old.settings() == new.settings()
    assert old.name == "point_masks"
    assert isinstance(get_decoder("proposals:proposer=exact"), SceneExactDecoder)
    assert canonical_decoder_spec("proposals:proposer=exact,n=8") == "point_masks:proposer=exact,n=8"
    assert canonical_decoder_spec("point_masks:proposer=exact") == "point_masks:proposer=exact"
    assert canonical_decoder_spec("raster") == "raster" and canonical_decoder_spec(None) is None
    cfg = {"eval": {"decoder": "point_masks:proposer=exact,n=8"}, "codecs": ["grid:n=8"], "n": 8}
    assert former_decoder_specs(cfg) == {"eval": {"decoder": "proposals:proposer=exact,n=8"}, "codecs": ["grid:n=8"], "n": 8}


def test_specs_and_protocol():
    dec = get_decoder("raster")
    assert isinstance(dec, MaskDecoder) and dec.name == "raster"
    assert get_decoder(dec) is dec
    with pytest.raises(ConfigError, match="unknown decoder 'sam4'"):
        get_decoder("sam4")
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


def test_a_dataset_manifest_reaches_only_the_decoders_that_rebuild_scenes():
    """``point_masks:proposer=exact`` on procedural scenes is the decoding registry's own business: the
    manifest's scene settings reach it through get_decoder, every other decoder ignores the manifest."""
    from getok.decoding import PointMaskDecoder, RasterDecoder, SceneExactDecoder, get_decoder

    manifest = {"sources": [{"loader": "scenes", "seed": 7, "config": {"size": [64, 64], "max_objects": 2}}]}
    d = get_decoder("point_masks:proposer=exact,n=16", manifest=manifest)
    assert isinstance(d, SceneExactDecoder) and d.n == 16 and d.configs == {7: {"size": [64, 64], "max_objects": 2}}
    assert isinstance(get_decoder("point_masks:proposer=exact"), SceneExactDecoder)  # default scene settings
    assert isinstance(get_decoder("scene_exact", manifest=manifest), SceneExactDecoder)
    assert isinstance(get_decoder("raster", manifest=manifest), RasterDecoder)
    # a label map given: the plain point_masks decoder on the exact proposer of that map
    lm = np.zeros((8, 8), np.int32)
    lm[2:5, 2:5] = 1
    assert isinstance(get_decoder("point_masks:proposer=exact", label_map=lm), PointMaskDecoder)
    with pytest.raises(ConfigError, match="bad settings"):
        get_decoder("point_masks:proposer=exact,colour=red", manifest=manifest)


def test_registry_context_goes_only_to_factories_that_take_it():
    from getok.registry import Registry

    reg = Registry("widget")
    reg.register("a")(lambda size=1, manifest=None: ("a", size, manifest))
    reg.register("b")(lambda size=1: ("b", size))
    assert reg.build("a:size=2", context={"manifest": {"m": 1}}) == ("a", 2, {"m": 1})
    assert reg.build("b:size=2", context={"manifest": {"m": 1}}) == ("b", 2)
    assert reg.build("a", context={"manifest": 1}, manifest=2) == ("a", 1, 2)  # an explicit override wins
