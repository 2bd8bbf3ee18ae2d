"""Resizing experiments: change the grid (``n x n`` → ``m x m``) or the offset set (radius, step) of a model.

The learned rows of the old tokens form a field over the image (grid cells at their centres) or over the
move plane (offsets at ``(dx, dy) * step``). ``init="interp"`` samples that field bilinearly at the new
tokens' positions, for the input embedding and, when untied, the output head; any registered init
(``mean``, ``random``, ``text``, ``2d``) can be used instead, which is what the resize-vocab study compares.

What happens to the tokenizer: every token of the old layout is removed and the new layout's tokens are
added back, in layout order, at the end of the vocabulary (later added tokens shift down, so ids stay
contiguous and a resized model has exactly the token → id map of a fresh :func:`add_spatial_tokens` with
the new codecs). Rows of tokens that survive (``<DELETE>``, offsets, the old grid with ``keep_old=True``)
are carried over bit for bit; every other row of the model is untouched. The tokenizer object is rebuilt
(``tokenizers`` cannot delete entries in place), so the functions return the new one (or the processor,
with its ``tokenizer`` replaced).

Geometry of the grid interpolation: new cell ``(cx, cy)`` of an ``m``-grid has its centre at
``((cx + 0.5) / m, (cy + 0.5) / m)``; in old cell-index coordinates that is ``(cx + 0.5) * n / m - 0.5``
(clamped to ``[0, n - 1]`` at the border). From ``n`` to ``2n``, each new cell is a ``9/16, 3/16, 3/16,
1/16`` mix of its parent old cell and the three nearest old neighbours.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from ..codecs.base import Codec
from ..codecs.token_names import MAX_GRID_N, grid_token, offset_tokens, parse_offset_token
from ..errors import ConfigError
from .add_tokens import (
    _check_one_id,
    _codec_objs,
    _stat_ids,
    _token_owner,
    compute_init_rows,
    is_tied,
    remove_added_tokens,
    set_vocab_rows,
    tokenizer_of,
)
from .init import row_stats
from .layout import VocabLayout

__all__ = [
    "bilinear_sample",
    "grid_resample_coords",
    "offset_resample_coords",
    "interpolate_grid_rows",
    "resize_grid",
    "resize_offsets",
    "rebuild_spatial_vocab",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ pure maths
def grid_resample_coords(n: int, m: int) -> np.ndarray:
    """Old-grid index coordinates ``(x, y)`` of the centres of the ``m * m`` new cells, row-major.

    >>> grid_resample_coords(2, 4)[:4, 0].tolist()
    [-0.25, 0.25, 0.75, 1.25]
    """
    c = (np.arange(m) + 0.5) * n / m - 0.5
    xs, ys = np.meshgrid(c, c)  # (m, m): ys varies along rows
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def offset_resample_coords(r_old: int, step_old: float, r_new: int, step_new: float) -> np.ndarray:
    """Old offset-lattice coordinates ``(x, y)`` of the new offset tokens (in ``offset_tokens(r_new)`` order).

    The old lattice has ``x = dx + r_old``, ``y = dy + r_old``; a new token ``(dx, dy)`` means the move
    ``(dx, dy) * step_new`` cells, i.e. ``dx * step_new / step_old`` old steps.
    """
    out = []
    for t in offset_tokens(r_new):
        dx, dy = parse_offset_token(t)
        out.append((dx * step_new / step_old + r_old, dy * step_new / step_old + r_old))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def bilinear_sample(field, coords: np.ndarray):
    """Sample a ``(H, W, D)`` field at fractional index coordinates (clamped to the field).

    Parameters
    ----------
    field
        torch tensor ``(H, W, D)``; ``field[y, x]`` is the value at row ``y``, column ``x``.
    coords
        ``(K, 2)`` ``(x, y)`` in index units (``x`` along W, ``y`` along H).

    Returns
    -------
    torch tensor ``(K, D)`` float32; exact (weights 0 / 1) at integer coordinates.
    """
    import torch

    f = field.float()
    h, w = f.shape[:2]
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    x = np.clip(xy[:, 0], 0, w - 1)
    y = np.clip(xy[:, 1], 0, h - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax = torch.as_tensor(x - x0, dtype=torch.float32, device=f.device)[:, None]
    ay = torch.as_tensor(y - y0, dtype=torch.float32, device=f.device)[:, None]

    def at(yy, xx):
        return f[torch.as_tensor(yy, device=f.device), torch.as_tensor(xx, device=f.device)]

    top = at(y0, x0) * (1 - ax) + at(y0, x1) * ax
    bot = at(y1, x0) * (1 - ax) + at(y1, x1) * ax
    return top * (1 - ay) + bot * ay


def interpolate_grid_rows(rows, n: int, m: int):
    """``(n * n, D)`` row-major cell rows → ``(m * m, D)`` by bilinear interpolation of cell centres."""
    field = rows.reshape(n, n, -1)
    return bilinear_sample(field, grid_resample_coords(n, m))


# ------------------------------------------------------------------------------------------------ surgery
def _rows_of(model, ids: Sequence[int]):
    import torch

    idx = torch.as_tensor(list(ids), dtype=torch.long)
    emb = model.get_input_embeddings().weight.detach()
    rin = emb[idx.to(emb.device)].float().cpu()
    rout = None
    if not is_tied(model):
        head = model.get_output_embeddings().weight.detach()
        rout = head[idx.to(head.device)].float().cpu()
    return rin, rout


def _remap_config_ids(model, old_to_new: np.ndarray) -> None:
    """Follow special-token ids stored in configs (image / video / vision / bos / eos / pad) through a remap."""
    names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
             "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    cfgs = [model.config]
    if hasattr(model.config, "get_text_config"):
        cfgs.append(model.config.get_text_config())
    if getattr(model, "generation_config", None) is not None:
        cfgs.append(model.generation_config)

    def remap(v):
        if isinstance(v, (list, tuple)):
            return type(v)(remap(x) for x in v)
        if isinstance(v, int) and 0 <= v < len(old_to_new):
            if old_to_new[v] < 0:
                raise ConfigError(f"special token id {v} would be removed by the vocabulary change")
            return int(old_to_new[v])
        return v

    for c in cfgs:
        for name in names:
            if hasattr(c, name) and getattr(c, name) is not None:
                new = remap(getattr(c, name))
                if new != getattr(c, name):
                    setattr(c, name, new)


def rebuild_spatial_vocab(
    model,
    processor_or_tokenizer,
    old_layout: VocabLayout,
    new_codecs: Sequence[str | Codec],
    given: dict | None = None,
    init: str = "mean",
    seed: int = 0,
    init_options: dict | None = None,
    history: dict | None = None,
    fresh_tokens: set[str] | frozenset[str] = frozenset(),
):
    """Replace ``old_layout``'s tokens by those of ``new_codecs`` (model and tokenizer), rows carried over.

    Parameters
    ----------
    given
        ``token -> (input_row, output_row | None)`` for new tokens with precomputed rows (interpolation).
        Tokens of the new layout that are neither given nor in the old layout are initialised with
        ``init``; tokens in both layouts keep their rows bit for bit.
    history
        A record appended to ``layout.extra["history"]``.
    fresh_tokens
        Tokens of both layouts that must not keep their old rows (their meaning changed).

    Returns
    -------
    (processor_or_tokenizer, VocabLayout)
        The processor (its tokenizer replaced) or the new tokenizer, and the new layout with ids.
    """
    import torch

    tok = tokenizer_of(processor_or_tokenizer)
    old = old_layout.with_ids(tok) if old_layout.ids is None else old_layout
    old.validate(tok)
    objs = _codec_objs(list(new_codecs))
    new_layout = VocabLayout.from_codecs(objs)
    owner = _token_owner(objs)
    given = dict(given or {})
    tied = is_tied(model)
    old_rows = int(model.get_input_embeddings().weight.shape[0])
    old_len = len(tok)
    old_id = dict(zip(old.tokens, (int(i) for i in old.ids)))
    base_vocab = int(old.extra.get("base_vocab", min(old.ids) if old.ids else old_len))
    base_rows = int(old.extra.get("base_rows", base_vocab))

    # values of every new-layout token, computed from the current weights before any surgery
    values: dict[str, tuple] = {}
    carried = [t for t in new_layout.tokens if t not in given and t in old_id and t not in fresh_tokens]
    if carried:
        rin, rout = _rows_of(model, [old_id[t] for t in carried])
        for k, t in enumerate(carried):
            values[t] = (rin[k], None if rout is None else rout[k])
    for t, v in given.items():
        if t in owner:
            values[t] = v
    todo = [t for t in new_layout.tokens if t not in values]
    if todo:
        stat = _stat_ids(min(base_vocab, old_rows), list(old_id.values()))
        rin, rout = compute_init_rows(model, tok, todo, owner, init, seed, stat, init_options)
        for k, t in enumerate(todo):
            values[t] = (rin[k], None if rout is None else rout[k])

    stat = _stat_ids(min(base_vocab, old_rows), list(old_id.values()))
    mean_in = row_stats(model.get_input_embeddings().weight, stat)[0]
    mean_out = None if tied else row_stats(model.get_output_embeddings().weight, stat)[0]

    # tokenizer: drop the old block, append the new one
    new_tok, old_to_new = remove_added_tokens(tok, old.tokens)
    from tokenizers import AddedToken

    n_added = new_tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in new_layout.tokens])
    if n_added != len(new_layout.tokens):
        raise ConfigError(f"tokenizer added {n_added} of {len(new_layout.tokens)} tokens")
    vocab = new_tok.get_vocab()
    ids = [int(vocab[t]) for t in new_layout.tokens]
    _check_one_id(new_tok, new_layout.tokens, ids)

    # rows: kept tokens from their old rows, layout tokens from values, padding kept or mean
    rows = max(len(new_tok), base_rows)
    sources = np.full(rows, -1, dtype=np.int64)
    kept_old = np.flatnonzero(old_to_new >= 0)
    sources[old_to_new[kept_old]] = kept_old
    vin, vout = {}, {}
    for t, i in zip(new_layout.tokens, ids):
        sources[i] = -1
        vin[i] = values[t][0]
        if not tied:
            vout[i] = values[t][1]
    for r in range(len(new_tok), rows):
        if old_len <= r < old_rows:
            sources[r] = r
        else:
            vin[r] = mean_in
            if not tied:
                vout[r] = mean_out
    _remap_config_ids(model, old_to_new)
    with torch.no_grad():
        set_vocab_rows(model, rows, sources, vin, vout)

    if hasattr(processor_or_tokenizer, "tokenizer") and processor_or_tokenizer is not tok:
        processor_or_tokenizer.tokenizer = new_tok
        holder = processor_or_tokenizer
    else:
        holder = new_tok
    extra = dict(old.extra)
    extra["base_vocab"], extra["base_rows"] = base_vocab, base_rows
    if history:
        extra["history"] = list(old.extra.get("history", [])) + [history]
    log.info("vocabulary rebuilt: %d -> %d spatial tokens, rows %d -> %d", len(old.tokens), len(ids), old_rows, rows)
    return holder, VocabLayout(new_layout.codecs, new_layout.tokens, ids, extra)


def _replace_config(codec: Codec, **changes) -> Codec:
    cfg = dataclasses.replace(codec.config, **changes)
    return type(codec)(**dataclasses.asdict(cfg))


def _grid_codecs(objs: Sequence[Codec]) -> dict[int, list[Codec]]:
    out: dict[int, list[Codec]] = {}
    for c in objs:
        n = getattr(getattr(c, "config", None), "n", None)
        if isinstance(n, int) and grid_token(0, 0, n) in c.new_tokens():
            out.setdefault(n, []).append(c)
    return out


def _dedupe(objs: Sequence[Codec]) -> list[Codec]:
    seen, out = set(), []
    for c in objs:
        if c.spec not in seen:
            seen.add(c.spec)
            out.append(c)
    return out


def resize_grid(
    model,
    processor_or_tokenizer,
    layout: VocabLayout,
    new_n: int,
    keep_old: bool = False,
    init: str = "interp",
    seed: int = 0,
    from_n: int | None = None,
    init_options: dict | None = None,
):
    """Change the grid of ``layout`` from ``n x n`` to ``new_n x new_n`` in the model and tokenizer.

    Parameters
    ----------
    layout
        The model's current layout (from :func:`add_spatial_tokens` or ``getok_layout.json``).
    new_n
        New grid size.
    keep_old
        Keep the old grid tokens (and their codec) beside the new ones; otherwise their rows are dropped.
    init
        ``"interp"``: bilinear interpolation of the old cell rows (input and output); or any registered
        init name for the new cells (``mean``, ``random``, ``text``, ``2d``).
    from_n
        Which grid to resize when the layout holds several.

    Returns
    -------
    (processor_or_tokenizer, VocabLayout)
        See :func:`rebuild_spatial_vocab`.
    """

    if isinstance(new_n, bool) or not isinstance(new_n, int) or not 1 <= new_n <= MAX_GRID_N:
        raise ConfigError(f"new_n must be an int in [1, {MAX_GRID_N}] (the codecs' grid limit), got {new_n!r}")
    tok = tokenizer_of(processor_or_tokenizer)
    objs = _codec_objs(layout.codecs)
    grids = _grid_codecs(objs)
    if not grids:
        raise ConfigError(f"layout has no grid codec to resize (codecs {layout.codecs})")
    if from_n is None:
        if len(grids) > 1:
            raise ConfigError(f"layout has grids {sorted(grids)}; say which one with from_n")
        from_n = next(iter(grids))
    if from_n not in grids:
        raise ConfigError(f"layout has no {from_n}-grid (grids {sorted(grids)})")
    if new_n == from_n:
        return processor_or_tokenizer, layout.with_ids(tok) if layout.ids is None else layout
    replaced = [_replace_config(c, n=new_n) if c in grids[from_n] else c for c in objs]
    new_objs = _dedupe(list(objs) + [_replace_config(c, n=new_n) for c in grids[from_n]]) if keep_old else _dedupe(replaced)

    given = {}
    if init == "interp":
        old = layout.with_ids(tok) if layout.ids is None else layout
        old_id = dict(zip(old.tokens, old.ids))
        cells = [grid_token(cx, cy, from_n) for cy in range(from_n) for cx in range(from_n)]
        rin, rout = _rows_of(model, [old_id[t] for t in cells])
        new_in = interpolate_grid_rows(rin, from_n, new_n)
        new_out = None if rout is None else interpolate_grid_rows(rout, from_n, new_n)
        new_cells = [grid_token(cx, cy, new_n) for cy in range(new_n) for cx in range(new_n)]
        for k, t in enumerate(new_cells):
            given[t] = (new_in[k], None if new_out is None else new_out[k])
        init_fallback = "mean"
    else:
        init_fallback = init
    hist = {"op": "resize_grid", "from_n": from_n, "new_n": new_n, "keep_old": keep_old, "init": init}
    return rebuild_spatial_vocab(
        model, processor_or_tokenizer, layout, new_objs, given, init_fallback, seed, init_options, hist
    )


def _offset_codecs(objs: Sequence[Codec]) -> list[Codec]:
    out = []
    for c in objs:
        cfg = getattr(c, "config", None)
        if hasattr(cfg, "r") and hasattr(cfg, "step") and "<off_0_0>" in c.new_tokens():
            out.append(c)
    return out


def resize_offsets(
    model,
    processor_or_tokenizer,
    layout: VocabLayout,
    r: int | None = None,
    step: float | None = None,
    keep_old: bool = False,
    init: str = "interp",
    seed: int = 0,
    init_options: dict | None = None,
):
    """Change the offset radius ``r`` and / or step of the layout's offset codec.

    With ``init="interp"`` every new offset token gets the old offset field sampled bilinearly at its
    physical move ``(dx, dy) * step`` (clamped to the old lattice), so with an unchanged step the shared
    tokens keep their rows exactly and new outer tokens extend the edge; with a new step every token is
    re-sampled (a token's meaning changes with the step although its name does not). Other inits give
    new tokens (all offset tokens when the step changes) fresh rows. ``keep_old`` keeps old tokens that the
    new radius drops; it is refused with a step change (two meanings for one token name).
    """
    tok = tokenizer_of(processor_or_tokenizer)
    objs = _codec_objs(layout.codecs)
    offs = _offset_codecs(objs)
    if not offs:
        raise ConfigError(f"layout has no offset codec to resize (codecs {layout.codecs})")
    if len({(int(c.config.r), float(c.config.step)) for c in offs}) != 1:
        raise ConfigError(f"offset codecs disagree on r / step: {[c.spec for c in offs]}")
    oc = offs[0]
    r_old, s_old = int(oc.config.r), float(oc.config.step)
    r_new = r_old if r is None else int(r)
    s_new = s_old if step is None else float(step)
    if (r_new, s_new) == (r_old, s_old):
        return processor_or_tokenizer, layout.with_ids(tok) if layout.ids is None else layout
    step_changed = not np.isclose(s_new, s_old)
    if keep_old and step_changed:
        raise ConfigError("keep_old=True with a new step would give one offset token two meanings")
    new_codecs = [_replace_config(c, r=r_new, step=s_new) for c in offs]
    if keep_old:
        new_objs = _dedupe(list(objs) + new_codecs)
    else:
        swap = {id(c): nc for c, nc in zip(offs, new_codecs)}
        new_objs = _dedupe([swap.get(id(c), c) for c in objs])

    old = layout.with_ids(tok) if layout.ids is None else layout
    old_id = dict(zip(old.tokens, old.ids))
    new_off = offset_tokens(r_new)
    given = {}
    if init == "interp":
        lattice = [None] * (2 * r_old + 1) ** 2
        for t in offset_tokens(r_old):
            dx, dy = parse_offset_token(t)
            lattice[(dy + r_old) * (2 * r_old + 1) + (dx + r_old)] = old_id[t]  # field[y, x], row-major
        rin, rout = _rows_of(model, lattice)
        side = 2 * r_old + 1
        coords = offset_resample_coords(r_old, s_old, r_new, s_new)
        new_in = bilinear_sample(rin.reshape(side, side, -1), coords)
        new_out = None if rout is None else bilinear_sample(rout.reshape(side, side, -1), coords)
        for k, t in enumerate(new_off):
            given[t] = (new_in[k], None if new_out is None else new_out[k])
        fallback = "mean"
    else:
        fallback = init
    # a new step gives every offset token a new meaning: nothing is carried over under its old name
    fresh = set(new_off) if step_changed else set()
    hist = {"op": "resize_offsets", "r": [r_old, r_new], "step": [s_old, s_new], "keep_old": keep_old, "init": init}
    return rebuild_spatial_vocab(
        model, processor_or_tokenizer, layout, new_objs, given, fallback, seed, init_options, hist, fresh
    )
