"""Adding spatial tokens to a Hugging Face model and tokenizer, and the row surgery behind it.

:func:`add_spatial_tokens` is the one entry point that changes a vocabulary:

* the codecs' :meth:`new_tokens` are added as ``AddedToken(t, special=False, normalized=False)`` (they must
  survive ``decode(skip_special_tokens=True)``, which TRL and EasyR1 use); each must encode to exactly one
  id, and the concatenation of all of them to exactly their ids (checked);
* the input embedding and the output head get rows for the new ids (tied or untied); every existing row is
  copied bit for bit; the new rows come from an init strategy (:mod:`getok.vocab.init`);
* ``config.text_config.vocab_size`` (what the model reads; and ``config.vocab_size`` where it exists) and
  the modules' ``vocab_size`` attributes follow the new row count;
* calling it again with tokens already present changes nothing (idempotent).

Padded vocabularies: Qwen2.5-VL-7B has 152064 embedding rows for 151665 tokenizer entries. New tokens first
take the unused padding rows (151665, ...), which are initialised like any new row; the matrix grows only
when the tokenizer outgrows it. So "every existing row is bit-identical" holds for every row that belongs
to a token; unused padding rows that receive a new token are re-initialised, the others are kept.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..codecs.base import Codec, get_codec
from ..errors import ConfigError, LayoutMismatchError
from ..io import atomic_dir
from .init import InitContext, get_init, row_stats
from .layout import VocabLayout

__all__ = [
    "add_spatial_tokens",
    "validate_layout",
    "tokenizer_of",
    "is_tied",
    "embedding_rows",
    "set_vocab_rows",
    "compute_init_rows",
    "remove_added_tokens",
    "save_with_layout",
]

log = logging.getLogger(__name__)

#: Tokens per back-to-back encoding check (keeps each check below any model_max_length).
_CHUNK = 256


# ------------------------------------------------------------------------------------------------ small helpers
def tokenizer_of(processor_or_tokenizer):
    """The tokenizer inside a processor, or the argument itself when it is a tokenizer."""
    tok = getattr(processor_or_tokenizer, "tokenizer", None)
    return tok if tok is not None else processor_or_tokenizer


def is_tied(model) -> bool:
    """Whether the output head shares its weight tensor with the input embedding."""
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def embedding_rows(model) -> int:
    """Number of rows of the input embedding matrix."""
    return int(model.get_input_embeddings().weight.shape[0])


def _codec_objs(codecs) -> list[Codec]:
    if isinstance(codecs, (str, Codec)):
        codecs = [codecs]
    return [c if isinstance(c, Codec) else get_codec(c) for c in codecs]


def _token_owner(codecs: Sequence[Codec]) -> dict[str, Codec]:
    owner: dict[str, Codec] = {}
    for c in codecs:
        for t in c.new_tokens():
            owner.setdefault(t, c)
    return owner


def _check_one_id(tokenizer, tokens: Sequence[str], ids: Sequence[int]) -> None:
    """Each token → exactly its id; all tokens joined → exactly the ids; non-special decode keeps them."""
    for t, i in zip(tokens, ids):
        enc = tokenizer.encode(t, add_special_tokens=False)
        if list(enc) != [int(i)]:
            raise ConfigError(f"token {t!r} encodes to {list(enc)}, expected the single id [{i}]")
    for start in range(0, len(tokens), _CHUNK):  # back to back, in chunks below model_max_length
        part, part_ids = list(tokens[start : start + _CHUNK]), [int(i) for i in ids[start : start + _CHUNK]]
        joined = "".join(part)
        if list(tokenizer.encode(joined, add_special_tokens=False)) != part_ids:
            raise ConfigError("the added tokens do not encode to one id each when written back to back")
        back = tokenizer.decode(part_ids, skip_special_tokens=True)
        if back != joined:
            raise ConfigError(
                "the added tokens do not survive decode(skip_special_tokens=True) "
                f"(got {back[:80]!r}...); they must be non-special"
            )


def _model_vocab_targets(model):
    """Objects carrying a ``vocab_size`` the model reads (configs and modules)."""
    cfg = model.config
    targets = [cfg.get_text_config()] if hasattr(cfg, "get_text_config") else []
    if "vocab_size" in getattr(cfg, "__dict__", {}) or hasattr(type(cfg), "vocab_size"):
        targets.append(cfg)
    return targets


def _set_vocab_size(model, rows: int, old_rows: int) -> None:
    for c in _model_vocab_targets(model):
        c.vocab_size = rows
    for m in model.modules():
        v = getattr(m, "vocab_size", None)
        if isinstance(v, int) and not isinstance(v, bool) and v == old_rows:
            m.vocab_size = rows


def set_vocab_rows(model, rows: int, sources: np.ndarray, values_in: dict[int, Any], values_out: dict[int, Any]):
    """Replace the embedding and head matrices by ``rows``-row ones built from old rows and given values.

    Parameters
    ----------
    rows
        Row count of the new matrices.
    sources
        ``(rows,)`` int64: old row index to copy into each new row, or -1 for rows given in ``values_*``.
        Copied rows are bit-identical.
    values_in, values_out
        ``new row index -> (dim,)`` tensor for the input embedding and the (untied) head. ``values_out`` is
        ignored for a tied head (the head is the embedding).
    """
    import torch

    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = is_tied(model)
    old_rows = int(emb.weight.shape[0])
    sources = np.asarray(sources, dtype=np.int64)
    if sources.shape != (rows,):
        raise ConfigError(f"sources must have shape ({rows},), got {sources.shape}")
    missing = [int(r) for r in np.flatnonzero(sources < 0) if int(r) not in values_in]
    if missing:
        raise ConfigError(f"no source and no value for new rows {missing[:5]}")

    def rebuild(weight, values):
        w = weight.detach()
        new = torch.empty((rows, w.shape[1]), dtype=w.dtype, device=w.device)
        keep = torch.as_tensor(np.flatnonzero(sources >= 0), device=w.device)
        if keep.numel():
            new[keep] = w[torch.as_tensor(sources[sources >= 0], device=w.device)]
        if values:
            idx = torch.as_tensor(sorted(values), device=w.device)
            new[idx] = torch.stack([values[int(i)] for i in idx.tolist()]).to(device=w.device, dtype=w.dtype)
        return torch.nn.Parameter(new, requires_grad=weight.requires_grad)

    emb.weight = rebuild(emb.weight, values_in)
    emb.num_embeddings = rows
    if head is not None:
        if tied:
            head.weight = emb.weight
        else:
            head.weight = rebuild(head.weight, values_out)
        if hasattr(head, "out_features"):
            head.out_features = rows
        elif hasattr(head, "num_embeddings"):
            head.num_embeddings = rows
        if getattr(head, "bias", None) is not None:  # pragma: no cover - Qwen heads have no bias
            b = head.bias.detach()
            nb = torch.zeros(rows, dtype=b.dtype, device=b.device)
            keep = np.flatnonzero(sources >= 0)
            nb[torch.as_tensor(keep)] = b[torch.as_tensor(sources[keep])]
            head.bias = torch.nn.Parameter(nb, requires_grad=head.bias.requires_grad)
    _set_vocab_size(model, rows, old_rows)


def _stat_ids(n_real: int, exclude: Sequence[int]) -> np.ndarray:
    ids = np.ones(n_real, dtype=bool)
    ex = np.asarray([i for i in exclude if 0 <= i < n_real], dtype=np.int64)
    ids[ex] = False
    return np.flatnonzero(ids)


def compute_init_rows(model, tokenizer, tokens, owner, init: str, seed: int, stat_ids, options=None):
    """Run init strategy ``init`` for ``tokens``: ``(rows_in (k, dim), rows_out (k, dim) | None)`` float32."""

    strategy = get_init(init)
    emb = model.get_input_embeddings().weight
    head = None if is_tied(model) else model.get_output_embeddings().weight
    text_cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    ctx = InitContext(
        embed=emb,
        head=head,
        stat_ids=np.asarray(stat_ids, dtype=np.int64),
        tokens=list(tokens),
        codecs={t: owner.get(t) for t in tokens},
        tokenizer=tokenizer,
        seed=seed,
        initializer_range=float(getattr(text_cfg, "initializer_range", 0.02) or 0.02),
        options=dict(options or {}),
    )
    rows_in, rows_out = strategy(ctx)
    k, d = len(tokens), int(emb.shape[1])
    if tuple(rows_in.shape) != (k, d) or (rows_out is not None and tuple(rows_out.shape) != (k, d)):
        raise ConfigError(f"init {init!r} returned rows of the wrong shape (expected ({k}, {d}))")
    if head is not None and rows_out is None:
        raise ConfigError(f"init {init!r} returned no output rows for an untied head")
    return rows_in.float().cpu(), None if rows_out is None else rows_out.float().cpu()


# ------------------------------------------------------------------------------------------------ public API
def add_spatial_tokens(
    processor_or_tokenizer,
    model,
    codecs,
    init: str = "mean",
    seed: int = 0,
    init_options: dict | None = None,
    pad_to_multiple_of: int | None = None,
) -> VocabLayout:
    """Add the tokens of ``codecs`` to the tokenizer and rows for them to ``model`` (both in place).

    Parameters
    ----------
    processor_or_tokenizer
        A processor (its ``.tokenizer`` is changed in place) or a tokenizer.
    model
        A ``PreTrainedModel`` with input and output embeddings (tied or untied).
    codecs
        Codec specs or instances (``"grid_offset:n=32,r=1,step=0.5"``); tokens shared between codecs are
        added once, in the layout's order (:meth:`VocabLayout.from_codecs`).
    init
        Init strategy name for the new rows (``mean``, ``text``, ``2d``, ``random`` or a registered one).
    seed
        Seed of the init strategy.
    pad_to_multiple_of
        Round the row count up to a multiple (GPU-friendly shapes); ``None`` keeps ``max(rows, len(tok))``.

    Returns
    -------
    VocabLayout
        The layout with ``ids``; ``extra`` records ``init``, ``seed``, ``base_vocab`` (tokenizer length
        before the first spatial token) and ``base_rows`` (embedding rows before any were added).

    Raises
    ------
    ConfigError
        A token that does not encode to exactly one id or does not survive a non-special decode.
    LayoutMismatchError
        A token already in the tokenizer as a *special* token.
    """
    tok = tokenizer_of(processor_or_tokenizer)
    objs = _codec_objs(codecs)
    layout = VocabLayout.from_codecs(objs)
    owner = _token_owner(objs)
    vocab = tok.get_vocab()
    len_before, rows_before = len(tok), embedding_rows(model)

    present = [t for t in layout.tokens if t in vocab]
    decoder = getattr(tok, "added_tokens_decoder", {}) or {}
    for t in present:
        added = decoder.get(int(vocab[t]))
        if added is not None and getattr(added, "special", False):
            raise LayoutMismatchError(
                f"token {t!r} is already in the tokenizer as a special token (id {vocab[t]}); "
                "decode(skip_special_tokens=True) would drop it"
            )
    missing = [t for t in layout.tokens if t not in vocab]
    if missing:
        from tokenizers import AddedToken

        n_added = tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
        if n_added != len(missing):
            raise ConfigError(f"tokenizer added {n_added} of {len(missing)} new tokens")
        vocab = tok.get_vocab()
    ids = [int(vocab[t]) for t in layout.tokens]
    _check_one_id(tok, layout.tokens, ids)

    rows = max(rows_before, len(tok))
    if pad_to_multiple_of:
        rows = -(-rows // int(pad_to_multiple_of)) * int(pad_to_multiple_of)
    missing_set = set(missing)
    need = [t for t, i in zip(layout.tokens, ids) if t in missing_set or i >= rows_before]
    layout_ids = set(ids)
    if need:
        n_real = min(len_before, rows_before)
        stat = _stat_ids(n_real, [i for i in layout_ids if i < n_real])
        rows_in, rows_out = compute_init_rows(model, tok, need, owner, init, seed, stat, init_options)
        sources = np.arange(rows, dtype=np.int64)
        sources[sources >= rows_before] = -1
        values_in, values_out = {}, {}
        n_pad_new = 0
        for k, t in enumerate(need):
            i = int(vocab[t])
            sources[i] = -1
            values_in[i] = rows_in[k]
            if rows_out is not None:
                values_out[i] = rows_out[k]
        # rows past every token (fresh padding): mean row of the existing tokens, no noise
        pad_rows = [r for r in range(rows_before, rows) if r not in values_in]
        if pad_rows:
            mean_in = row_stats(model.get_input_embeddings().weight, stat)[0]
            mean_out = None if is_tied(model) else row_stats(model.get_output_embeddings().weight, stat)[0]
            for r in pad_rows:
                values_in[r] = mean_in
                if mean_out is not None:
                    values_out[r] = mean_out
            n_pad_new = len(pad_rows)
        set_vocab_rows(model, rows, sources, values_in, values_out)
        log.info(
            "added %d tokens (%d new rows initialised with %r, %d padding rows); embedding rows %d -> %d",
            len(missing), len(need), init, n_pad_new, rows_before, rows,
        )
    elif rows != rows_before:
        sources = np.where(np.arange(rows) < rows_before, np.arange(rows), -1)
        stat = _stat_ids(min(len_before, rows_before), list(layout_ids))

        mean_in = row_stats(model.get_input_embeddings().weight, stat)[0]
        mean_out = None if is_tied(model) else row_stats(model.get_output_embeddings().weight, stat)[0]
        vin = {r: mean_in for r in range(rows_before, rows)}
        vout = {} if mean_out is None else {r: mean_out for r in range(rows_before, rows)}
        set_vocab_rows(model, rows, sources, vin, vout)

    # where the spatial block starts, and how many rows the base model had (estimated when the tokens were
    # already there: the padded row count survives only while it exceeds the tokenizer)
    base_vocab = min(min(ids), len_before) if ids else len_before
    base_rows = rows_before if len(missing) == len(layout.tokens) or rows_before > len_before else base_vocab
    extra = {"init": init, "seed": int(seed), "base_vocab": int(base_vocab), "base_rows": int(base_rows)}
    return VocabLayout(layout.codecs, layout.tokens, ids, extra)


def validate_layout(layout: VocabLayout, processor_or_tokenizer, model=None) -> VocabLayout:
    """Check ``layout`` against a tokenizer (and a model's rows); raise :class:`LayoutMismatchError`.

    The message names the first token whose id differs, that is missing, special, or not one id; with a
    model, also an embedding that has fewer rows than the largest id needs.
    """
    tok = tokenizer_of(processor_or_tokenizer)
    layout.validate(tok)
    if model is not None:
        rows = embedding_rows(model)
        ids = layout.ids if layout.ids is not None else layout.with_ids(tok).ids
        if ids and max(ids) >= rows:
            t = layout.tokens[int(np.argmax(ids))]
            raise LayoutMismatchError(
                f"token {t!r} has id {max(ids)} but the model has only {rows} embedding rows "
                "(the model was not resized for this tokenizer; run add_spatial_tokens)"
            )
        head = model.get_output_embeddings()
        if head is not None and int(head.weight.shape[0]) != rows:
            raise LayoutMismatchError(
                f"output head has {int(head.weight.shape[0])} rows but the input embedding has {rows}"
            )
    return layout


def save_with_layout(model, processor_or_tokenizer, layout: VocabLayout, out_dir, overwrite: bool = False) -> Path:
    """Validate, then write model (safetensors), processor / tokenizer and ``getok_layout.json`` atomically."""

    validate_layout(layout, processor_or_tokenizer, model)
    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor_or_tokenizer.save_pretrained(tmp)
        layout.save(tmp)
    return out


# ------------------------------------------------------------------------------------------------ tokenizer rebuild
def remove_added_tokens(tokenizer, tokens: Sequence[str]):
    """A new tokenizer without the given *added* tokens, later added tokens shifted down to stay contiguous.

    The backend ``tokenizer.json`` is edited (added-token list renumbered) and reloaded through
    ``save_pretrained`` / ``from_pretrained`` of the same class, so everything else (special tokens,
    chat template, padding side) carries over.

    Returns
    -------
    (new_tokenizer, old_to_new)
        ``old_to_new`` is an ``(len(tokenizer),)`` int64 array: the new id of each old id, -1 if removed.
    """
    remove = set(tokens)
    if not remove:
        return tokenizer, np.arange(len(tokenizer), dtype=np.int64)
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    added = backend.get("added_tokens", [])
    removed_ids = sorted(int(a["id"]) for a in added if a["content"] in remove)
    if len(removed_ids) != len(remove):
        found = {a["content"] for a in added}
        bad = next(t for t in tokens if t not in found)
        raise ConfigError(f"token {bad!r} is not an added token of this tokenizer; cannot remove it")
    model_vocab = backend.get("model", {}).get("vocab", {})
    max_model_id = max(model_vocab.values()) if isinstance(model_vocab, dict) and model_vocab else -1
    if removed_ids[0] <= max_model_id:
        raise ConfigError("cannot remove added tokens whose ids lie inside the base vocabulary")
    n_old = len(tokenizer)
    old_to_new = np.arange(n_old, dtype=np.int64)
    rem = np.zeros(n_old, dtype=bool)
    rem[removed_ids] = True
    old_to_new = old_to_new - np.cumsum(rem) + rem  # ids above each removed id move down by one
    old_to_new[rem] = -1
    shifted = {int(i) for i in np.flatnonzero((old_to_new != np.arange(n_old)) & ~rem)}
    post = json.dumps(backend.get("post_processor"))
    for a in added:
        if int(a["id"]) in shifted and a["content"] in post:
            raise ConfigError(f"token {a['content']!r} is used by the post-processor and would change id")
    backend["added_tokens"] = [
        {**a, "id": int(old_to_new[int(a["id"])])} for a in added if a["content"] not in remove
    ]
    with tempfile.TemporaryDirectory(prefix="getok_tok_") as tmp:
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(backend, ensure_ascii=False))
        cfg_path = Path(tmp) / "tokenizer_config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            dec = cfg.get("added_tokens_decoder")
            if isinstance(dec, dict):
                cfg["added_tokens_decoder"] = {
                    str(int(old_to_new[int(k)])): v for k, v in dec.items() if v.get("content") not in remove
                }
                cfg_path.write_text(json.dumps(cfg))
        new = type(tokenizer).from_pretrained(tmp)
    if len(new) != n_old - len(removed_ids):
        raise ConfigError(f"rebuilt tokenizer has {len(new)} entries, expected {n_old - len(removed_ids)}")
    return new, old_to_new
