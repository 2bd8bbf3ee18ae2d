"""Initialisation strategies for new vocabulary rows, registered by name.

A strategy receives an :class:`InitContext` (the current embedding and output matrices, the tokenizer,
the tokens to initialise and the codec that owns each) and returns the new input rows and, for an untied
head, the new output rows. Registered:

* ``mean`` — mean of the existing rows plus small Gaussian noise (``noise`` x the rows' std);
* ``text`` — mean embedding of the tokens of the token's text meaning, ``codec.token_text(tok)``
  (``<g32_r07_c03>`` → ``"(0.109, 0.234)"``); tokens without one fall back to ``mean``;
* ``2d`` — a smooth 2-D code: random Fourier features of the cell centre (grid tokens) or of the offset
  ``(dx, dy)`` (offset tokens), projected into embedding space and scaled to the rows' spread, so that
  neighbouring cells start close and far cells apart; other tokens fall back to ``mean``;
* ``1d`` — the same for 1-D bin tokens ``<loc_i>``: a smooth code of ``i / (bins - 1)`` (random Fourier
  features, :func:`fourier_code_1d`), so neighbouring bins start close and far bins apart; other tokens
  (grid cells, offsets, text) fall back to ``mean``;
* ``random`` — ``N(0, initializer_range)`` (the model's own init).

Both input and output rows get the same treatment (each from its own matrix's statistics); ``2d`` and ``1d``
write one code into both, so a token's input and output rows start aligned. Every strategy
is deterministic given ``seed``. Add one with :func:`register_init`::

    @register_init("zeros")
    def zeros(ctx):
        return ctx.embed.new_zeros(len(ctx.tokens), ctx.dim), None if ctx.tied else ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..codecs.token_names import parse_bin_token, parse_grid_token, parse_offset_token
from ..errors import ConfigError
from ..registry import Registry

__all__ = [
    "InitContext",
    "InitStrategy",
    "register_init",
    "get_init",
    "list_inits",
    "fourier_code_2d",
    "fourier_code_1d",
    "row_stats",
]

INITS = Registry("init strategy")


@dataclass
class InitContext:
    """What an init strategy sees.

    Attributes
    ----------
    embed
        Input embedding matrix ``(rows, dim)`` before the change (torch tensor, any dtype; read only).
    head
        Output matrix ``(rows, dim)`` or ``None`` when the head is tied to ``embed``.
    stat_ids
        Ids of the rows that represent real existing tokens (statistics are taken over these; padding rows
        and the rows being replaced are excluded). ``(K,)`` int64 numpy array.
    tokens
        Token strings to initialise, in output order.
    codecs
        ``token -> codec`` owning it (``None`` for a token no codec claims).
    tokenizer
        The tokenizer (used by ``text``; plain text never contains the new tokens).
    seed
        Seed of the strategy's random draws.
    options
        Strategy options (``noise`` for ``mean``, ``features`` / ``max_freq`` for ``2d`` and ``1d``, ...).
    """

    embed: Any
    head: Any
    stat_ids: np.ndarray
    tokens: list[str]
    codecs: dict[str, Any]
    tokenizer: Any = None
    seed: int = 0
    initializer_range: float = 0.02
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def tied(self) -> bool:
        return self.head is None

    @property
    def dim(self) -> int:
        return int(self.embed.shape[1])

    def generator(self, offset: int = 0):
        import torch

        return torch.Generator().manual_seed(int(self.seed) * 1_000_003 + offset)


class InitStrategy(Protocol):
    """``strategy(ctx) -> (input_rows (k, dim), output_rows (k, dim) or None when tied)``, float32 CPU."""

    def __call__(self, ctx: InitContext): ...


def register_init(name: str) -> Callable[[InitStrategy], InitStrategy]:
    """Decorator registering an init strategy under ``name``."""

    return INITS.register(name)


def get_init(name: str) -> InitStrategy:
    """The strategy registered as ``name`` (:class:`~getok.errors.ConfigError` naming the known ones)."""
    return INITS.get(name)


def list_inits() -> list[str]:
    return INITS.names()


# ------------------------------------------------------------------------------------------------ helpers
def row_stats(weight, ids: np.ndarray, chunk: int = 4096):
    """Mean row ``(dim,)`` and scalar std (over all entries, around the mean row) of ``weight[ids]``, float32.

    Chunked, so a 152k x 3584 bf16 matrix never gets a full float32 copy.
    """
    import torch

    ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if ids_t.numel() == 0:
        raise ConfigError("no existing rows to take statistics from")
    total = torch.zeros(weight.shape[1], dtype=torch.float64)
    for i in range(0, ids_t.numel(), chunk):
        total += weight[ids_t[i : i + chunk].to(weight.device)].detach().double().sum(0).cpu()
    mean = total / ids_t.numel()
    sq = torch.zeros((), dtype=torch.float64)
    for i in range(0, ids_t.numel(), chunk):
        rows = weight[ids_t[i : i + chunk].to(weight.device)].detach().double().cpu()
        sq += ((rows - mean) ** 2).sum()
    std = math.sqrt(float(sq) / max(ids_t.numel() * weight.shape[1] - 1, 1))
    return mean.float(), std


def _mean_rows(weight, ctx: InitContext, k: int, offset: int):
    import torch

    mean, std = row_stats(weight, ctx.stat_ids)
    noise = float(ctx.options.get("noise", 0.02))
    return mean.expand(k, -1) + noise * std * torch.randn(k, weight.shape[1], generator=ctx.generator(offset))


def fourier_code_2d(uv: np.ndarray, features: int = 64, max_freq: float = 4.0, seed: int = 0) -> np.ndarray:
    """Smooth 2-D code of positions: random Fourier features of ``uv`` (a stationary, RBF-like kernel).

    Parameters
    ----------
    uv
        ``(K, 2)`` positions ``(u, v)`` = (x, y) in [0, 1] (normalised image coordinates).
    features
        Code length ``F`` (even).
    max_freq
        Highest spatial frequency in cycles per unit; frequencies are log-spaced in ``[0.5, max_freq]``
        with golden-angle directions, so nearby positions get nearby codes (distance grows smoothly with
        separation up to about ``1 / max_freq``).

    Returns
    -------
    ``(K, F)`` float64 codes of unit-ish norm (each entry ``sqrt(2 / F) cos(2 pi w . uv + phase)``).

    >>> c = fourier_code_2d(np.array([[0.1, 0.1], [0.12, 0.1], [0.9, 0.9]]), seed=0)
    >>> bool(np.linalg.norm(c[0] - c[1]) < np.linalg.norm(c[0] - c[2]))
    True
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    freqs = np.geomspace(0.5, max(max_freq, 0.5), features)
    theta = np.arange(features) * 2.399963229728653  # golden angle
    w = np.stack([np.cos(theta), np.sin(theta)], axis=1) * freqs[:, None]  # (F, 2)
    phase = rng.uniform(0.0, 2 * np.pi, size=features)
    return np.sqrt(2.0 / features) * np.cos(2 * np.pi * uv @ w.T + phase)  # (K, F)


def fourier_code_1d(t: np.ndarray, features: int = 64, max_freq: float = 4.0, seed: int = 0) -> np.ndarray:
    """Smooth 1-D code of positions ``t`` in [0, 1]: random Fourier features, as :func:`fourier_code_2d`.

    Frequencies are log-spaced in ``[0.5, max_freq]`` cycles per unit with seeded random phases, so nearby
    positions get nearby codes. Returns ``(K, F)`` float64 codes, entries ``sqrt(2 / F) cos(2 pi f t + phase)``.

    >>> c = fourier_code_1d(np.array([0.1, 0.12, 0.9]), seed=0)
    >>> bool(np.linalg.norm(c[0] - c[1]) < np.linalg.norm(c[0] - c[2]))
    True
    """
    t = np.asarray(t, dtype=np.float64).reshape(-1, 1)
    rng = np.random.default_rng(seed)
    freqs = np.geomspace(0.5, max(max_freq, 0.5), features)
    phase = rng.uniform(0.0, 2 * np.pi, size=features)
    return np.sqrt(2.0 / features) * np.cos(2 * np.pi * t * freqs[None, :] + phase)  # (K, F)


# ------------------------------------------------------------------------------------------------ strategies
@register_init("mean")
def init_mean(ctx: InitContext):
    """Mean of the existing rows + ``noise`` (default 0.02) x their std of Gaussian noise."""
    k = len(ctx.tokens)
    rows_in = _mean_rows(ctx.embed, ctx, k, 0)
    rows_out = None if ctx.tied else _mean_rows(ctx.head, ctx, k, 1)
    return rows_in, rows_out


@register_init("random")
def init_random(ctx: InitContext):
    """``N(0, initializer_range)`` for every entry (how the model initialises its own embeddings)."""
    import torch

    k, d = len(ctx.tokens), ctx.dim
    std = float(ctx.options.get("std", ctx.initializer_range))
    rows_in = std * torch.randn(k, d, generator=ctx.generator(0))
    rows_out = None if ctx.tied else std * torch.randn(k, d, generator=ctx.generator(1))
    return rows_in, rows_out


@register_init("text")
def init_text(ctx: InitContext):
    """Mean row of the tokens of ``codec.token_text(tok)``; ``mean`` for tokens without a text meaning."""
    import torch

    if ctx.tokenizer is None:
        raise ConfigError("the 'text' init needs the tokenizer")
    fallback_in, fallback_out = init_mean(ctx)
    rows_in, rows_out = fallback_in.clone(), None if fallback_out is None else fallback_out.clone()
    allowed = np.zeros(int(ctx.embed.shape[0]), dtype=bool)
    allowed[np.asarray(ctx.stat_ids, dtype=np.int64)] = True
    texts = {}
    for k, tok in enumerate(ctx.tokens):
        codec = ctx.codecs.get(tok)
        text = codec.token_text(tok) if codec is not None and hasattr(codec, "token_text") else None
        if text:
            texts[k] = text
    if not texts:
        return rows_in, rows_out
    encoded = ctx.tokenizer(list(texts.values()), add_special_tokens=False)["input_ids"]  # one batched call
    rows, flat = [], []
    for k, ids in zip(texts, encoded):
        ids = [i for i in ids if i < len(allowed) and allowed[i]]
        rows.extend([k] * len(ids))
        flat.extend(ids)
    if not flat:
        return rows_in, rows_out
    seg = torch.as_tensor(rows)
    counts = torch.bincount(seg, minlength=len(ctx.tokens)).float()[:, None]
    have = counts[:, 0] > 0
    flat_t = torch.as_tensor(flat)
    for weight, out in ((ctx.embed, rows_in), (ctx.head, rows_out)):
        if weight is None:
            continue
        gathered = weight.detach()[flat_t.to(weight.device)].float().cpu()  # (sum of text lengths, dim)
        sums = torch.zeros(len(ctx.tokens), gathered.shape[1]).index_add_(0, seg, gathered)
        out[have] = sums[have] / counts[have]
    return rows_in, rows_out


def _positions_2d(ctx: InitContext):
    """Per token: (family, (u, v)) with family 0 = grid cell centre, 1 = offset, or None."""
    out = []
    for tok in ctx.tokens:
        g = parse_grid_token(tok)
        if g is not None:
            n, cx, cy = g
            out.append((0, ((cx + 0.5) / n, (cy + 0.5) / n), n))
            continue
        o = parse_offset_token(tok)
        if o is not None:
            codec = ctx.codecs.get(tok)
            r = max(int(getattr(getattr(codec, "config", None), "r", max(abs(o[0]), abs(o[1]), 1))), 1)
            out.append((1, (0.5 + o[0] / (2 * r + 1), 0.5 + o[1] / (2 * r + 1)), 2 * r + 1))
            continue
        out.append(None)
    return out


def _write_code(ctx: InitContext, rows_in, rows_out, sel: list[int], code: np.ndarray, family: int) -> None:
    """``rows[sel] = mean_row + std * (code @ P)`` in the input and the output rows (each with its own matrix's
    mean row and spread), ``P`` a seeded ``(F, dim)`` Gaussian projection of ``family``: one code, written
    into both, so a token's input and output rows start aligned."""
    import torch

    code_t = torch.as_tensor(code, dtype=torch.float32)
    proj = torch.randn(code_t.shape[1], ctx.dim, generator=ctx.generator(100 + family))
    emb = code_t @ proj  # (K, dim), entries ~ N(0, 1)
    idx = torch.as_tensor(sel)
    for weight, rows in ((ctx.embed, rows_in), (ctx.head, rows_out)):
        if weight is None:
            continue
        mean, std = row_stats(weight, ctx.stat_ids)
        rows[idx] = mean + std * emb


@register_init("2d")
def init_2d(ctx: InitContext):
    """Smooth 2-D code for grid and offset tokens (see :func:`fourier_code_2d`); ``mean`` for the rest.

    ``row = mean_row + std * (code @ P)`` with ``P`` a seeded ``(F, dim)`` Gaussian projection (one per
    family: cells and offsets get unrelated codes) and ``std`` the existing rows' spread, so new rows
    have the scale of real ones. Options: ``features`` (64), ``max_freq`` (``n / 8`` for an ``n``-grid,
    at least 2).
    """
    rows_in, rows_out = init_mean(ctx)
    pos = _positions_2d(ctx)
    feats = int(ctx.options.get("features", 64))
    for family in (0, 1):
        sel = [k for k, p in enumerate(pos) if p is not None and p[0] == family]
        if not sel:
            continue
        size = max(pos[k][2] for k in sel)
        max_freq = float(ctx.options.get("max_freq", max(size / 8.0, 2.0)))
        uv = np.array([pos[k][1] for k in sel])
        code = fourier_code_2d(uv, feats, max_freq, seed=ctx.seed + 17 * family)
        _write_code(ctx, rows_in, rows_out, sel, code, family)
    return rows_in, rows_out


def _positions_1d(ctx: InitContext) -> list[tuple[float, int] | None]:
    """Per token: ``(i / (bins - 1), bins)`` for a bin token ``<loc_i>``, else None. ``bins`` comes from the
    owning codec's config, or (no codec) from the largest index among the tokens."""
    bins_of = {}
    for tok in ctx.tokens:
        b = getattr(getattr(ctx.codecs.get(tok), "config", None), "bins", None)
        bins_of[tok] = int(b) if isinstance(b, int) else None
    loose = [int(t[5:-1]) for t, b in bins_of.items() if b is None and t.startswith("<loc_") and t[5:-1].isdigit()]
    default = max(loose, default=0) + 1
    out = []
    for tok in ctx.tokens:
        bins = bins_of[tok] or default
        i = parse_bin_token(tok, bins) if bins >= 2 else None
        out.append(None if i is None else (i / (bins - 1), bins))
    return out


@register_init("1d")
def init_1d(ctx: InitContext):
    """Smooth 1-D code for bin tokens ``<loc_i>`` (see :func:`fourier_code_1d` of ``i / (bins - 1)``);
    ``mean`` for the rest (grid cells, offsets, text), as ``2d`` does for tokens without a 2-D position.

    Written like ``2d``: ``row = mean_row + std * (code @ P)``, one code for the input and the output rows
    (aligned), each at its own matrix's scale. Options: ``features`` (64), ``max_freq`` (``bins / 8``, at
    least 2).
    """
    rows_in, rows_out = init_mean(ctx)
    pos = _positions_1d(ctx)
    sel = [k for k, p in enumerate(pos) if p is not None]
    if sel:
        size = max(pos[k][1] for k in sel)
        max_freq = float(ctx.options.get("max_freq", max(size / 8.0, 2.0)))
        feats = int(ctx.options.get("features", 64))
        t = np.array([pos[k][0] for k in sel])
        _write_code(ctx, rows_in, rows_out, sel, fourier_code_1d(t, feats, max_freq, seed=ctx.seed + 17 * 2), 2)
    return rows_in, rows_out
