"""resize_grid / resize_offsets: interpolation geometry, carried rows, tokenizer rebuild, layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from getok.codecs.token_names import grid_token
from getok.errors import ConfigError
from getok.vocab import add_spatial_tokens, resize_grid, resize_offsets, validate_layout
from getok.vocab.resize import bilinear_sample, grid_resample_coords, interpolate_grid_rows

from ._helpers import weights


def _cell_rows(mat, layout, n):
    return mat[[layout.ids[layout.tokens.index(grid_token(cx, cy, n))] for cy in range(n) for cx in range(n)]]


def test_bilinear_exact_on_lattice_and_linear_fields():
    field = torch.randn(3, 4, 5)
    xs, ys = np.meshgrid(np.arange(4), np.arange(3))
    exact = bilinear_sample(field, np.stack([xs.ravel(), ys.ravel()], 1))
    assert torch.equal(exact, field.reshape(-1, 5))
    a, b, c = torch.randn(5), torch.randn(5), torch.randn(5)
    n, m = 4, 8
    lin = torch.stack([a + cx * b + cy * c for cy in range(n) for cx in range(n)])
    up = interpolate_grid_rows(lin, n, m).reshape(m, m, 5)
    xy = grid_resample_coords(n, m).reshape(m, m, 2)
    for cy in range(1, m - 1):
        for cx in range(1, m - 1):
            x, y = xy[cy, cx]
            assert torch.allclose(up[cy, cx], a + x * b + y * c, atol=1e-5)


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_resize_grid_n_to_2n_interpolates_input_and_output(load_tiny, kind):
    n = 4
    model, proc = load_tiny(kind)
    layout = add_spatial_tokens(proc, model, [f"grid_offset:n={n},r=1,step=0.5"], init="random", seed=3)
    e0, h0 = weights(model)
    base = layout.extra["base_vocab"]
    old_in, old_out = _cell_rows(e0, layout, n), _cell_rows(h0, layout, n)
    delete_in = e0[layout.ids[layout.tokens.index("<DELETE>")]]
    proc2, new = resize_grid(model, proc, layout, 2 * n)
    e1, h1 = weights(model)
    validate_layout(new, proc2, model)
    assert new.codecs == [f"grid_offset:n={2 * n},r=1,step=0.5"]
    assert new.ids == list(range(base, base + 4 * n * n + 10))  # contiguous, old grid gone
    assert e1.shape[0] == len(proc2.tokenizer) == base + 4 * n * n + 10
    assert torch.equal(e1[:base], e0[:base]) and torch.equal(h1[:base], h0[:base])
    assert torch.equal(e1[new.ids[new.tokens.index("<DELETE>")]], delete_in)
    for old, mat in ((old_in, e1), (old_out, h1)):
        got = _cell_rows(mat, new, 2 * n)
        assert torch.allclose(got, interpolate_grid_rows(old, n, 2 * n), atol=1e-6)
        g_old, g_new = old.reshape(n, n, -1), got.reshape(2 * n, 2 * n, -1)
        # each old cell comes back in its four children, up to the bilinear mix with its neighbours
        nb = torch.stack([(g_old[:, 1:] - g_old[:, :-1]).norm(dim=-1).max(), (g_old[1:] - g_old[:-1]).norm(dim=-1).max()])
        for cy in range(n):
            for cx in range(n):
                for dy in (0, 1):
                    for dx in (0, 1):
                        child = g_new[2 * cy + dy, 2 * cx + dx]
                        # 3/16 + 3/16 of a side neighbour, 1/16 of a diagonal one (at most two side steps away)
                        assert (child - g_old[cy, cx]).norm() <= 0.5 * nb.max() + 1e-6
        parent_dist = (g_new - g_old.repeat_interleave(2, 0).repeat_interleave(2, 1)).norm(dim=-1).mean()
        shuffled = g_old.reshape(n * n, -1)[torch.randperm(n * n, generator=torch.Generator().manual_seed(0))]
        other_dist = (g_new - shuffled.reshape(n, n, -1).repeat_interleave(2, 0).repeat_interleave(2, 1)).norm(dim=-1).mean()
        assert parent_dist < 0.6 * other_dist
    if kind == "tied":
        assert model.lm_head.weight is model.get_input_embeddings().weight


def test_resized_vocab_matches_a_fresh_add(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, ["grid_offset:n=4,r=1,step=0.5"])
    proc, new = resize_grid(model, proc, layout, 6)
    fresh_model, fresh_proc = load_tiny()
    fresh = add_spatial_tokens(fresh_proc, fresh_model, ["grid_offset:n=6,r=1,step=0.5"])
    assert new.tokens == fresh.tokens and new.ids == fresh.ids and new.hash == fresh.hash
    assert proc.tokenizer.get_vocab() == fresh_proc.tokenizer.get_vocab()


def test_keep_old_and_other_inits(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, ["grid:n=4"], init="random")
    e0, _ = weights(model)
    old4 = _cell_rows(e0, layout, 4)
    proc, kept = resize_grid(model, proc, layout, 2, keep_old=True, init="mean")
    e1, _ = weights(model)
    assert kept.codecs == ["grid:n=4", "grid:n=2"] and len(kept.tokens) == 20
    assert torch.equal(_cell_rows(e1, kept, 4), old4)
    new2 = _cell_rows(e1, kept, 2)
    assert not torch.allclose(new2, interpolate_grid_rows(old4, 4, 2), atol=1e-3)  # mean, not interp
    assert kept.extra["history"][-1]["op"] == "resize_grid"
    with pytest.raises(ConfigError, match="from_n"):
        resize_grid(model, proc, kept, 8)
    proc, only8 = resize_grid(model, proc, kept, 8, from_n=2, init="random")
    assert only8.codecs == ["grid:n=4", "grid:n=8"]


def test_resize_offsets(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, ["grid_offset:n=4,r=1,step=0.5"], init="random")
    e0, h0 = weights(model)
    row = {t: i for t, i in zip(layout.tokens, layout.ids)}
    proc, r2 = resize_offsets(model, proc, layout, r=2)
    e1, h1 = weights(model)
    new = {t: i for t, i in zip(r2.tokens, r2.ids)}
    assert r2.codecs == ["grid_offset:n=4,r=2,step=0.5"] and len(r2.tokens) == 16 + 25 + 1
    for t in ("<off_0_0>", "<off_1_-1>", "<g4_r2_c3>", "<DELETE>"):
        assert torch.equal(e1[new[t]], e0[row[t]]) and torch.equal(h1[new[t]], h0[row[t]])
    assert torch.equal(e1[new["<off_2_2>"]], e0[row["<off_1_1>"]])  # clamped to the old edge
    # halve the step: <off_2_0> now means what <off_1_0> meant
    proc, half = resize_offsets(model, proc, r2, step=0.25)
    e2, _ = weights(model)
    new2 = {t: i for t, i in zip(half.tokens, half.ids)}
    assert half.codecs == ["grid_offset:n=4,r=2,step=0.25"]
    assert torch.allclose(e2[new2["<off_2_0>"]], e1[new["<off_1_0>"]], atol=1e-7)
    assert torch.allclose(e2[new2["<off_1_0>"]], 0.5 * (e1[new["<off_0_0>"]] + e1[new["<off_1_0>"]]), atol=1e-6)
    with pytest.raises(ConfigError, match="two meanings"):
        resize_offsets(model, proc, half, step=0.5, keep_old=True)
    validate_layout(half, proc, model)


def test_resize_padded_model_keeps_row_count(load_tiny):
    model, proc = load_tiny("padded")
    rows0 = model.get_input_embeddings().weight.shape[0]
    layout = add_spatial_tokens(proc, model, ["grid:n=4"])
    proc, new = resize_grid(model, proc, layout, 3)
    assert model.get_input_embeddings().weight.shape[0] == rows0 == model.config.text_config.vocab_size
    proc, big = resize_grid(model, proc, new, 12)
    assert model.get_input_embeddings().weight.shape[0] == len(proc.tokenizer) > rows0
    validate_layout(big, proc, model)


def test_resize_errors(load_tiny):
    model, proc = load_tiny()
    layout = add_spatial_tokens(proc, model, ["bins:bins=8"])
    with pytest.raises(ConfigError, match="no grid codec"):
        resize_grid(model, proc, layout, 4)
    with pytest.raises(ConfigError, match="no offset codec"):
        resize_offsets(model, proc, layout, r=2)
    with pytest.raises(ConfigError, match="new_n"):
        resize_grid(model, proc, layout, 0)
