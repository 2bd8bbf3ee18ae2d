"""A short synthetic warm-up of the vision tower: the tiny recipe's stand-in for a pretrained image encoder.

A real VLM starts from a vision encoder pretrained on billions of images; the tiny model's is random. Before
SFT, :func:`warm_up_vision` trains the vision tower (and its merger) for a few hundred steps on dense,
per-image-token targets read off annotated scenes, with small linear heads that are thrown away afterwards:

* **colour** and **shape** of the object under the token's centre (``background`` where there is none):
  appearance features, and with them a linear "object here" direction;
* **cell alignment** (``align``): an image token over an object must name the grid cell under its centre
  through the grid tokens' *input* embedding rows (cosine similarity / ``temperature``, cross-entropy over
  the ``n x n`` cells); a background token is pushed towards naming no cell (uniform over the cells,
  weight ``background``). The rows are read, not trained. With a grid init that writes the same code into
  a token's input and output rows (``vocab.init: 2d``), copying an object's image token to the answer
  position then already writes its cell: what the language model has to learn is *which* token to copy.
* **word alignment** (``words``): the same kind of loss towards the *input rows of the words* that name the
  object's colour and shape (`` red``, `` triangle``: the mean row of each word's tokens, read, not
  trained), so that an object's image tokens resemble the words a question uses for it — the language
  model can then find the named object by similarity instead of learning the binding from scratch.
* **refine moves** (``moves``): each image token names, through a linear head, the refinement of its cell's
  centre point as the offset builder labels it against the union of the scene's objects (keep on an
  object, the ``grid_offset`` move that lands on the nearest object beside it, delete far from every
  object): what a refine turn must read at a proposed cell. Needs one image token per answer cell.

The alignment needs the image tokens to know their position (Qwen3-VL's learned position table does;
Qwen2.5-VL's rotary-only tower cannot) and works best with one token per answer cell. Measured effect:
docs/tiny_grounding.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np

from ..codecs.base import get_codec
from ..codecs.token_names import grid_token
from ..data_builders.offset_bands import BandConfig, label_points
from ..errors import ConfigError
from ..ops.grid import pixel_cell_lookup
from ..provenance import Clock

__all__ = ["token_targets", "warm_up_vision", "word_row"]

log = logging.getLogger("getok.train.vision_warmup")


def _label_at(image, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Index of the visible object at each ``(y, x)`` pixel (-1: background). The scene label map when there
    is one; otherwise the last object (front-most) whose mask holds the pixel."""
    lm = (image.meta or {}).get("label_map")
    if lm is not None:
        return np.asarray(lm)[ys, xs].astype(np.int64) - 1
    out = np.full(len(ys), -1, np.int64)
    for k, obj in enumerate(image.objects):
        out[obj.get_mask()[ys, xs]] = k
    return out


def token_targets(image, tokens: tuple[int, int], n: int, colours: Sequence[str], shapes: Sequence[str],
                  moves: tuple[int, float] | None = None) -> dict:  # fmt: skip
    """Per-image-token targets at the token centres (row-major over a ``(rows, cols)`` token grid).

    Returns ``{"colour": (T,), "shape": (T,), "cell": (T,), "object": (T,) bool}``: class 0 is background,
    ``k + 1`` is ``colours[k]`` / ``shapes[k]`` (an object without a known colour gets 0 in that head);
    ``cell`` is the row-major index ``cy * n + cx`` of the answer-grid cell under the token centre.
    With ``moves = (r, step)`` (a ``grid_offset`` codec's radius and step; the token grid must be the
    ``n x n`` answer grid) also ``"move"`` (T,): the refinement of the cell's centre point against the union
    of the objects (:func:`~getok.data_builders.offset_bands.label_points`, Inside = on an object): the
    offset ``(dx, dy)`` as class ``(dy + r) * (2r + 1) + (dx + r)``, or ``(2r + 1)^2`` for ``<DELETE>``.

    >>> from getok.data_builders.scenes import generate_scene, SceneConfig, PALETTE, SHAPES
    >>> s = generate_scene(0, SceneConfig(min_objects=1, max_objects=1))
    >>> t = token_targets(s, (8, 8), 8, list(PALETTE), list(SHAPES))
    >>> int(t["object"].sum()) > 0 and t["cell"].tolist() == list(range(64))
    True
    """
    rows, cols = tokens
    h, w = image.size
    ys = ((np.arange(rows) + 0.5) * h / rows).astype(np.int64).clip(0, h - 1)
    xs = ((np.arange(cols) + 0.5) * w / cols).astype(np.int64).clip(0, w - 1)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    yy, xx = yy.ravel(), xx.ravel()
    lab = _label_at(image, yy, xx)
    colour = np.zeros(len(lab), np.int64)
    shape = np.zeros(len(lab), np.int64)
    cidx = {c: i + 1 for i, c in enumerate(colours)}
    sidx = {c: i + 1 for i, c in enumerate(shapes)}
    for t, k in enumerate(lab):
        if k >= 0:
            obj = image.objects[k]
            colour[t] = cidx.get((obj.attributes or {}).get("color"), 0)
            shape[t] = sidx.get(obj.category, 0)
    rows_of, cols_of = pixel_cell_lookup(n, (h, w))  # getok's one pixel → cell rule
    cell = (rows_of[yy] * n + cols_of[xx]).astype(np.int64)
    out = {"colour": colour, "shape": shape, "cell": cell, "object": lab >= 0}
    if moves is not None:
        if (rows, cols) != (n, n):
            raise ConfigError(f"the refine-move targets need one image token per answer cell: {rows} x {cols} "
                              f"tokens for an {n} x {n} grid")  # fmt: skip
        r, step = int(moves[0]), float(moves[1])
        union = np.zeros((h, w), bool)
        for obj in image.objects:
            union |= obj.get_mask()
        centres = np.stack([(np.arange(n * n) % n + 0.5) * w / n, (np.arange(n * n) // n + 0.5) * h / n], 1)
        lab2 = label_points(union, centres, n, r, step, BandConfig(inside_steps=0))
        off = np.asarray(lab2.offsets, np.int64)
        out["move"] = np.where(lab2.deleted, (2 * r + 1) ** 2, (off[:, 1] + r) * (2 * r + 1) + (off[:, 0] + r))
    return out


def word_row(tokenizer, embeddings, word: str):
    """The input row of ``word`` as a question writes it (after a space): the mean row of its tokens."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"the tokenizer encodes {word!r} as no tokens")
    return embeddings[ids].mean(0)


def _offset_grid(layout) -> tuple[int, int, float] | None:
    """``(n, r, step)`` of the vocabulary's first ``grid_offset`` codec (None: there is none)."""
    for spec in layout.codecs:
        c = get_codec(spec)
        if c.name == "grid_offset":
            return int(c.config.n), int(c.config.r), float(c.config.step)
    return None


def _grid_n(layout) -> int | None:
    """The grid size of the vocabulary's first grid codec (None: no grid tokens to align to)."""

    for spec in layout.codecs:
        c = get_codec(spec)
        if c.name in ("grid", "grid_offset"):
            return int(c.config.n)
    return None


def warm_up_vision(model, processor, layout, images: Sequence, cfg, *, progress: bool = True) -> dict:
    """Train the vision tower (+ merger) of ``model`` in place on ``images`` (annotated scenes).

    Parameters
    ----------
    model
        A Qwen-VL ``...ForConditionalGeneration`` with the spatial vocabulary already added.
    processor
        Its processor (the image processor makes the pixel inputs).
    layout : VocabLayout
        With ids; its grid codec names the cells (alignment).
    images : sequence of AnnotatedImage
        Training images with object masks (colour from ``attributes["color"]``, shape from ``category``).
    cfg : VisionWarmupConfig
        ``steps``, ``batch_size``, ``lr``, ``align``, ``background``, ``words``, ``moves``, ``temperature``,
        ``seed``.

    Returns
    -------
    dict
        ``steps``, ``loss_first`` / ``loss_last`` (means of the first / last 20 steps), the last 50 steps'
        token accuracies (``colour_acc``, ``shape_acc``; ``cell_acc`` and ``word_acc`` — the colour and shape
        words named by similarity — over object tokens; with ``moves``, ``move_acc`` over all tokens), wall /
        CPU seconds.
    """
    import torch
    import torch.nn.functional as F

    if not images:
        raise ConfigError("vision warm-up needs training images")
    n = _grid_n(layout)
    skipped = None
    if n is None:  # e.g. text coordinates or bins: no grid rows to name cells with; appearance targets only
        if cfg.align:
            skipped = f"no grid codec in the vocabulary {list(layout.codecs)}: cell alignment skipped"
            log.warning("vision warm-up: %s", skipped)
        cfg = dataclasses.replace(cfg, align=0.0)
        n = 8  # the cell targets are computed but unused
    mv = None  # (r, step) of the answer grid's grid_offset codec, with the refine-move head
    if cfg.moves:
        og = _offset_grid(layout)
        if og is None or og[0] != n:
            raise ConfigError("vision_warmup.moves needs a grid_offset codec on the answer grid (the first grid "
                              f"codec) in the vocabulary, got {list(layout.codecs)}")  # fmt: skip
        mv = og[1:]
    colours = sorted({c for im in images for o in im.objects if (c := (o.attributes or {}).get("color"))})
    shapes = sorted({o.category for im in images for o in im.objects if o.category})
    tok = processor.tokenizer
    d = int(model.get_input_embeddings().weight.shape[1])
    codes = None  # (n*n, D): the grid tokens' input rows, read only with the alignment loss
    emb = model.get_input_embeddings().weight.detach().float()
    if cfg.align:
        grid_ids = torch.tensor([tok.convert_tokens_to_ids(grid_token(cx, cy, n)) for cy in range(n) for cx in range(n)])
        codes = F.normalize(emb[grid_ids], dim=-1)
    words = None  # {"colour": (C, D), "shape": (S, D)}: the words' input rows, with the word-alignment loss
    if cfg.words:
        words = {k: F.normalize(torch.stack([word_row(tok, emb, w) for w in names]), dim=-1)
                 for k, names in (("colour", colours), ("shape", shapes))}  # fmt: skip

    gen = torch.Generator().manual_seed(int(cfg.seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        heads = torch.nn.ModuleDict({"colour": torch.nn.Linear(d, len(colours) + 1),
                                     "shape": torch.nn.Linear(d, len(shapes) + 1)})  # fmt: skip
        if mv is not None:
            heads["move"] = torch.nn.Linear(d, (2 * mv[0] + 1) ** 2 + 1)
    vision = [(name, p) for name, p in model.named_parameters() if "visual" in name]
    if not vision:
        raise ConfigError(f"{type(model).__name__} has no parameters named '*visual*': no vision tower to warm up")
    was = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_("visual" in name)
    opt = torch.optim.AdamW([p for _, p in vision] + list(heads.parameters()), lr=cfg.lr, weight_decay=0.0)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
    )
    cache: dict = {}
    losses, accs = [], []
    clock = Clock()
    was_training = model.training
    model.train()
    it = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="vision warm-up", unit="step")
    try:
        for _ in it:
            idx = torch.randperm(len(images), generator=gen)[: cfg.batch_size].tolist()
            batch = [images[i] for i in idx]
            enc = processor.image_processor(images=[im.get_image() for im in batch], return_tensors="pt")
            out = model.get_image_features(pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"])
            feats = list(getattr(out, "pooler_output", out))  # per image: (tokens, D)
            merge = int(processor.image_processor.merge_size)
            tg = []
            for i, im in enumerate(batch):
                key = (id(im), tuple(int(v) for v in enc["image_grid_thw"][i]))
                if key not in cache:
                    grid = (int(enc["image_grid_thw"][i][1]) // merge, int(enc["image_grid_thw"][i][2]) // merge)
                    cache[key] = token_targets(im, grid, n, colours, shapes, moves=mv)
                tg.append(cache[key])
            x = torch.cat(feats).float()  # (sum T, D)
            cat = {k: torch.from_numpy(np.concatenate([t[k] for t in tg])) for k in tg[0]}
            lc, ls = heads["colour"](x), heads["shape"](x)
            loss = F.cross_entropy(lc, cat["colour"]) + F.cross_entropy(ls, cat["shape"])
            move_acc = float("nan")
            if mv is not None:
                lm = heads["move"](x)
                loss = loss + cfg.moves * F.cross_entropy(lm, cat["move"])
                move_acc = float((lm.detach().argmax(-1) == cat["move"]).float().mean())
            obj = cat["object"]
            logp = None
            if codes is not None:
                logp = (F.normalize(x, dim=-1) @ codes.T / cfg.temperature).log_softmax(-1)
                if obj.any():
                    loss = loss + cfg.align * F.nll_loss(logp[obj], cat["cell"][obj])
                if cfg.background and (~obj).any():  # KL(uniform || p) on background tokens
                    loss = loss + cfg.align * cfg.background * (-logp[~obj].mean(-1) - math.log(logp.shape[1])).mean()
            word_hits = []
            if words is not None and obj.any():
                xo = F.normalize(x[obj], dim=-1)
                for k in ("colour", "shape"):
                    known = cat[k][obj] > 0  # class 0: background / an unnamed attribute
                    if known.any():
                        lw = (xo[known] @ words[k].T / cfg.temperature).log_softmax(-1)
                        loss = loss + cfg.words * F.nll_loss(lw, cat[k][obj][known] - 1)
                        word_hits.append((lw.detach().argmax(-1) == cat[k][obj][known] - 1).float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            with torch.no_grad():
                cell_acc = (float((logp[obj].argmax(-1) == cat["cell"][obj]).float().mean())
                            if logp is not None and obj.any() else float("nan"))  # fmt: skip
                word_acc = float(torch.cat(word_hits).mean()) if word_hits else float("nan")
                accs.append((float((lc.argmax(-1) == cat["colour"]).float().mean()),
                             float((ls.argmax(-1) == cat["shape"]).float().mean()), cell_acc, word_acc,
                             move_acc))  # fmt: skip
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(was[name])
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    last = np.array(accs[-50:], dtype=float)
    k = min(20, len(losses))
    stats = {
        "steps": cfg.steps,
        "loss_first": round(float(np.mean(losses[:k])), 4),
        "loss_last": round(float(np.mean(losses[-k:])), 4),
        "colour_acc": round(float(np.nanmean(last[:, 0])), 4),
        "shape_acc": round(float(np.nanmean(last[:, 1])), 4),
        "cell_acc": round(float(np.nanmean(last[:, 2])), 4) if cfg.align else None,
        "word_acc": round(float(np.nanmean(last[:, 3])), 4) if cfg.words else None,
        **({"move_acc": round(float(np.nanmean(last[:, 4])), 4)} if mv is not None else {}),
        "align_skipped": skipped,
        "colours": colours,
        "shapes": shapes,
        **clock.stop(digits=1),  # wall_s, cpu_s
    }
    log.info("vision warm-up: %s", stats)
    return stats
