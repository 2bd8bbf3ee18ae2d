"""Codec specs that would add an absurd number of tokens are refused when the spec is parsed (they used to
be accepted and then hang building 10^10 token names); the real configurations stay valid."""

from __future__ import annotations

import pytest

from getok.codecs import get_codec
from getok.codecs.token_names import MAX_BINS, MAX_GRID_N, MAX_NEW_TOKENS, MAX_OFFSET_R, check_vocab
from getok.errors import ConfigError


def test_documented_limits():
    assert MAX_NEW_TOKENS == 1 << 17 == 131072
    assert MAX_GRID_N == 362 and MAX_GRID_N**2 <= MAX_NEW_TOKENS < (MAX_GRID_N + 1) ** 2
    assert MAX_BINS == 10000 and MAX_OFFSET_R == 16


@pytest.mark.parametrize(
    "spec, tokens",
    [
        ("grid_offset:n=32,r=1,step=0.5", 32 * 32 + 9 + 1),  # GETok
        ("grid:n=32", 1024),
        ("grid:n=128", 128 * 128),
        ("bins", 1000),  # Pix2Seq / Florence-2
        ("bins:bins=10000", 10000),
        ("polygon:vertex=bins,bins=1000", 1000),
        ("polygon:vertex=grid_offset,n=64,r=2", 64 * 64 + 25),
        ("polygon", 0),
        ("grid:n=362", 362 * 362),  # the largest grid
        ("grid_offset:n=362,r=1", 362 * 362 + 9 + 1),
        ("grid_offset:n=360,r=16", 360 * 360 + 33 * 33 + 1),
    ],
)
def test_real_and_boundary_specs_stay_valid(spec, tokens):
    c = get_codec(spec)
    assert len(c.new_tokens()) == tokens <= MAX_NEW_TOKENS


@pytest.mark.parametrize(
    "spec, match",
    [
        ("polygon:vertex=grid,n=100000", r"^polygon\.n must be in \[1, 362\] .*MAX_NEW_TOKENS = 1 << 17.*got 100000$"),
        ("polygon:vertex=bins,bins=100000000", r"^polygon\.bins must be in \[2, 10000\], got 100000000$"),
        ("polygon:vertex=grid_offset,n=100000", r"^polygon\.n must be in \[1, 362\]"),
        ("polygon:vertex=bins,n=100000", r"^polygon\.n must be in \[1, 362\]"),  # unused, but part of the spec
        ("polygon:vertex=grid,r=100", r"^polygon\.r must be in \[0, 16\], got 100$"),
        ("grid:n=1000", r"^grid\.n must be in \[1, 362\]"),  # a million tokens: accepted before
        ("grid:n=363", r"^grid\.n must be in \[1, 362\]"),
        ("grid:n=0", r"^grid\.n must be in \[1, 362\].*, got 0$"),
        ("grid_offset:n=361,r=16", r"^grid_offset\.n=361 adds 131411 new tokens, more than the limit of 131072 "
                                   r"\(MAX_NEW_TOKENS = 1 << 17\): use n <= 360$"),
        ("grid_offset:r=17", r"^grid_offset\.r must be in \[0, 16\], got 17$"),
        ("bins:bins=10001", r"^bins\.bins must be in \[2, 10000\], got 10001$"),
        ("bins:bins=1", r"^bins\.bins must be in \[2, 10000\], got 1$"),
    ],
)  # fmt: skip
def test_absurd_vocabularies_are_refused_at_parse_time_with_the_limit(spec, match):
    with pytest.raises(ConfigError, match=match):
        get_codec(spec)


def test_direct_construction_is_checked_too():
    from getok.codecs.polygon import PolygonCodec

    with pytest.raises(ConfigError, match=r"polygon\.n must be in \[1, 362\]"):
        PolygonCodec(vertex="grid", n=100000)


def test_check_vocab_counts_only_what_is_given():
    assert check_vocab("grid_offset", n=32, r=1, extra=1) == 1034
    assert check_vocab("bins", bins=1000) == 1000
    assert check_vocab("polygon", n=362, r=16, bins=10000, count=False) > MAX_NEW_TOKENS  # ranges only
    with pytest.raises(ConfigError, match=r"^grid\.n must be an integer, got 3\.5$"):
        check_vocab("grid", n=3.5)
