"""Init strategies: registry, what each produces, determinism, input and output rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from getok import get_codec
from getok.errors import ConfigError
from getok.vocab import add_spatial_tokens, get_init, list_inits, register_init
from getok.vocab.init import fourier_code_1d, fourier_code_2d, row_stats

from ._helpers import weights

SPEC = "grid_offset:n=8,r=1,step=0.5"


def test_registry():
    assert {"mean", "text", "2d", "1d", "random"} <= set(list_inits())
    with pytest.raises(ConfigError, match="unknown init strategy 'nope'; registered: .*mean"):
        get_init("nope")


def test_custom_strategy_is_used(load_tiny):
    @register_init("_test_const")
    def const(ctx):
        rows = torch.full((len(ctx.tokens), ctx.dim), 0.5)
        return rows, None if ctx.tied else -rows

    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, ["grid:n=2"], init="_test_const")
    e, h = weights(model)
    assert torch.all(e[layout.ids] == 0.5) and torch.all(h[layout.ids] == -0.5)


def test_mean_rows_close_to_mean_and_seeded(load_tiny):
    model, proc = load_tiny()
    e0, h0 = weights(model)
    layout = add_spatial_tokens(proc, model, [SPEC], init="mean", seed=1)
    e, h = weights(model)
    new = e[layout.ids]
    assert torch.allclose(new.mean(0), e0.mean(0), atol=3e-3)
    assert new.std(0).mean() < 0.1 * e0.std()  # small noise only
    assert torch.allclose(h[layout.ids].mean(0), h0.mean(0), atol=3e-3)
    m2, p2 = load_tiny()
    add_spatial_tokens(p2, m2, [SPEC], init="mean", seed=1)
    assert torch.equal(weights(m2)[0], e)
    m3, p3 = load_tiny()
    add_spatial_tokens(p3, m3, [SPEC], init="mean", seed=2)
    assert not torch.equal(weights(m3)[0], e)


def test_text_rows_are_means_of_the_text_tokens(load_tiny):
    model, proc = load_tiny()
    e0, h0 = weights(model)
    layout = add_spatial_tokens(proc, model, [SPEC], init="text")
    e, h = weights(model)
    codec = get_codec(SPEC)
    for tok in ["<g8_r3_c5>", "<off_-1_1>", "<DELETE>"]:
        text = codec.token_text(tok)
        ids = proc.tokenizer.encode(text, add_special_tokens=False)
        i = layout.ids[layout.tokens.index(tok)]
        assert torch.allclose(e[i], e0[ids].mean(0), atol=1e-7), tok
        assert torch.allclose(h[i], h0[ids].mean(0), atol=1e-7), tok


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_2d_neighbouring_cells_start_close(load_tiny, kind):
    model, proc = load_tiny(kind)
    e0, _ = weights(model)
    layout = add_spatial_tokens(proc, model, ["grid_offset:n=16,r=1,step=0.5"], init="2d")
    e, h = weights(model)
    n = 16
    for mat in (e, h):
        g = mat[layout.ids[: n * n]].reshape(n, n, -1)
        right = (g[:, 1:] - g[:, :-1]).norm(dim=-1).mean()
        down = (g[1:] - g[:-1]).norm(dim=-1).mean()
        far = (g[: n // 2, : n // 2] - g[n // 2:, n // 2:]).norm(dim=-1).mean()
        assert right < 0.5 * far and down < 0.5 * far
        assert 0.5 < float(g.std() / e0.std()) < 2.0  # the scale of real rows
    offs = e[[layout.ids[layout.tokens.index(t)] for t in ("<off_0_0>", "<off_1_0>", "<off_-1_-1>")]]
    assert (offs[0] - offs[1]).norm() < (offs[1] - offs[2]).norm()
    if kind == "tied":
        assert h is not None and torch.equal(e, h)


def test_random_rows_have_initializer_std(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, ["grid:n=16"], init="random")
    e, h = weights(model)
    std = model.config.get_text_config().initializer_range
    assert abs(float(e[layout.ids].std()) - std) < 0.1 * std
    assert abs(float(h[layout.ids].std()) - std) < 0.1 * std


def test_fourier_code_is_smooth():
    uv = np.stack(np.meshgrid(np.linspace(0, 1, 9), np.linspace(0, 1, 9)), -1).reshape(-1, 2)
    c = fourier_code_2d(uv, features=64, max_freq=2.0, seed=0)
    assert c.shape == (81, 64)
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    dist = np.linalg.norm(uv[:, None] - uv[None], axis=-1)
    near, far = d[(dist > 0) & (dist < 0.2)].mean(), d[dist > 0.8].mean()
    assert near < 0.6 * far


def _centred_cos(rows, mean):
    x = rows - mean
    x = x / x.norm(dim=-1, keepdim=True)
    return x @ x.T


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_1d_neighbouring_bins_start_close(load_tiny, kind):
    model, proc = load_tiny(kind)
    e0, h0 = weights(model)
    bins = 64
    layout = add_spatial_tokens(proc, model, [f"bins:bins={bins}"], init="1d", seed=0)
    e, h = weights(model)
    assert layout.tokens[:3] == ["<loc_0000>", "<loc_0001>", "<loc_0002>"]
    stat = np.arange(e0.shape[0])
    for mat, old in ((e, e0), (h, h0)):
        rows = mat[layout.ids[:bins]]
        cos = _centred_cos(rows, row_stats(old, stat)[0])
        near = torch.diagonal(cos, 1).mean()  # (cosine of <loc_i> and <loc_i+1>)
        far = torch.stack([torch.diagonal(cos, d).mean() for d in range(bins // 2, bins)]).mean()
        assert near > 0.8 and far < 0.3 and near > far + 0.5
        assert torch.all(torch.diagonal(cos, 1) > torch.diagonal(cos, bins // 2).max())
        assert 0.5 < float(rows.std() / old.std()) < 2.0  # the scale of real rows
    if kind == "tied":
        assert torch.equal(e, h)


@pytest.mark.parametrize(("init", "spec", "n"), [("2d", "grid:n=8", 64), ("1d", "bins:bins=32", 32)])
def test_smooth_codes_align_input_and_output_rows(load_tiny, init, spec, n):
    """``2d`` and ``1d`` write one code into a token's input and output rows (each at its own scale): centred
    on their matrices' mean rows, the two rows point the same way; ``random`` draws them independently."""
    model, proc = load_tiny()
    e0, h0 = weights(model)
    stat = np.arange(e0.shape[0])
    layout = add_spatial_tokens(proc, model, [spec], init=init)
    e, h = weights(model)
    x = e[layout.ids[:n]] - row_stats(e0, stat)[0]
    y = h[layout.ids[:n]] - row_stats(h0, stat)[0]
    assert torch.nn.functional.cosine_similarity(x, y).min() > 0.999
    m2, p2 = load_tiny()
    add_spatial_tokens(p2, m2, [spec], init="random")
    e2, h2 = weights(m2)
    assert torch.nn.functional.cosine_similarity(e2[layout.ids[:n]], h2[layout.ids[:n]]).abs().max() < 0.5


def test_1d_is_seeded_and_falls_back_to_mean(load_tiny):
    specs = ["grid_offset:n=4,r=1,step=0.5", "bins:bins=16"]
    rows = {}
    for init, seed in (("1d", 1), ("1d", 1), ("1d", 2), ("mean", 1)):
        model, proc = load_tiny()
        layout = add_spatial_tokens(proc, model, specs, init=init, seed=seed)
        rows.setdefault((init, seed), []).append(weights(model))
    (a, b), c, m = rows[("1d", 1)], rows[("1d", 2)][0], rows[("mean", 1)][0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # deterministic given the seed
    locs = [layout.ids[layout.tokens.index(t)] for t in layout.tokens if t.startswith("<loc_")]
    others = [i for t, i in zip(layout.tokens, layout.ids) if not t.startswith("<loc_")]
    assert len(locs) == 16 and len(others) == 16 + 9 + 1  # cells, offsets, <DELETE>
    assert not torch.equal(a[0][locs], c[0][locs])  # another seed, another code
    for k in (0, 1):  # grid cells, offsets and <DELETE> have no 1-D position: the `mean` rows
        assert torch.equal(a[k][others], m[k][others])
        assert not torch.equal(a[k][locs], m[k][locs])


def test_fourier_code_1d_is_smooth():
    t = np.linspace(0, 1, 33)
    c = fourier_code_1d(t, features=64, max_freq=4.0, seed=0)
    assert c.shape == (33, 64) and np.array_equal(c, fourier_code_1d(t, features=64, max_freq=4.0, seed=0))
    d = np.abs(t[:, None] - t[None])
    dist = np.linalg.norm(c[:, None] - c[None], axis=-1)
    assert dist[(d > 0) & (d < 0.05)].mean() < 0.5 * dist[d > 0.5].mean()
