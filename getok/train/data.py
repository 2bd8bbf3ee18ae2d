"""Training data for SFT: the mixture (query tasks, offset samples, polygons, dataset dirs) and the examples.

Two steps, both before any gradient is computed:

1. :func:`build_mixture` turns :class:`~getok.train.config.DataConfig` into one getok dataset directory
   (``OUTPUT/data/train``, written atomically, manifest included): every entry builds a *pool* of
   :class:`~getok.samples.Sample` records (procedural scenes through the data builders, or a
   dataset directory whose vocabulary is checked against the model's), then :func:`mix_pools` draws
   ``num_samples`` of them by weight. :func:`build_eval_set` writes the held-out scenes the same way.
2. :func:`prepare_examples` reads a dataset directory into TRL conversational vision examples
   (a ``datasets.Dataset`` with ``messages`` and ``images`` columns, via :func:`~getok.data_builders.export.trl_messages`, so
   training and evaluation prompts are the same text), loading every image once (an image that fails to
   load is skipped and counted) and measuring every sample in tokens, image tokens included (a sample
   longer than ``max_length`` is dropped and counted, never truncated).
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codecs.base import get_codec
from ..config import config_to_dict
from ..data_builders.dataset import Dataset, read_dataset, reuse_built, write_dataset
from ..data_builders.export import trl_messages
from ..data_builders.greedy import GreedyGeometryFn
from ..data_builders.offsets import OffsetConfig, offset_sample
from ..data_builders.polygons import polygon_sample
from ..data_builders.refine import refine_from_tasks
from ..data_builders.scenes import generate_scenes
from ..data_builders.tasks import SampleList, TaskConfig, build_tasks, image_ref
from ..errors import DataError, GetokError, LayoutMismatchError, require
from ..provenance import fingerprint
from ..records import load_image_rgb
from ..samples import IMAGE_PLACEHOLDER, Sample
from ..vocab.adapters import adapter_for
from ..vocab.layout import VocabLayout
from .config import DataConfig, EvalConfig, MixtureEntry

__all__ = [
    "build_pool",
    "mix_pools",
    "build_mixture",
    "build_eval_set",
    "check_dataset_layout",
    "image_token_count",
    "sample_lengths",
    "prepare_examples",
    "examples_dataset",
    "PrepareStats",
]

log = logging.getLogger("getok.train.data")


# ---------------------------------------------------------------------------------------------- pools
def _grid_n(spec: str) -> int | None:
    return getattr(get_codec(spec).config, "n", None)


def _geometry_fn(entry: MixtureEntry, spec: str):
    n = _grid_n(spec)
    if n is None or not entry.greedy or entry.greedy == "none":
        return None

    return GreedyGeometryFn(entry.greedy, n=n)


def _query_of(obj) -> str:
    """The referring expression of an object (its first), or ``the <category>``."""
    return obj.expressions[0] if obj.expressions else f"the {obj.category}"


def _object_samples(entry: MixtureEntry, spec: str, scenes, seed: int):
    """Offset / polygon samples: one per object of each scene (a SampleList with the scene images)."""

    out = SampleList(settings={"codec": spec, "type": entry.type})
    greedy = GreedyGeometryFn(entry.greedy or "exact", n=_grid_n(spec)) if entry.type == "offsets" else None
    for k, im in enumerate(scenes):
        ref, needs_write = image_ref(im)
        masks = [o.get_mask() for o in im.objects]
        n0 = len(out)
        for j, obj in enumerate(im.objects):
            sid = f"{im.image_id}-{entry.type}-o{obj.id}"
            try:
                if entry.type == "offsets":
                    others = np.zeros(im.size, dtype=bool)
                    for i, m in enumerate(masks):
                        if i != j:
                            others |= m
                    cells = greedy(im, obj).cells
                    rng = np.random.default_rng([seed, k, j])
                    s = offset_sample(
                        masks[j], spec, sample_id=sid, image_id=im.image_id, image=ref, query=_query_of(obj),
                        cfg=OffsetConfig(k=entry.k, inside_steps=entry.inside_steps), true_cells=cells,
                        distractor_mask=others, rng=rng,
                    )  # fmt: skip
                else:
                    s = polygon_sample(
                        masks[j], spec, sample_id=sid, image_id=im.image_id, image=ref, query=_query_of(obj)
                    )
            except GetokError as exc:
                out.skip(f"{im.image_id} object {obj.id} {entry.type}", str(exc))
                continue
            out.append(s)
        if needs_write and len(out) > n0:
            out.images[im.image_id] = im
    return out


def build_pool(entry: MixtureEntry, vocab_codecs: list[str], scenes, task_seed: int = 0):
    """All samples one mixture entry can contribute (a :class:`~getok.data_builders.tasks.SampleList`).

    Parameters
    ----------
    entry : MixtureEntry
    vocab_codecs : list of str
        The model's codecs (an entry without a codec uses the first; a dataset must fit in them).
    scenes : list of AnnotatedImage
        The procedural scenes (unused by ``dataset`` entries).
    task_seed : int
    """

    if entry.type == "dataset":
        ds = read_dataset(entry.path, check_images=False)  # unreadable images are counted when loading
        check_dataset_layout(ds.manifest, vocab_codecs, where=str(entry.path))
        out = SampleList(settings={"type": "dataset", "path": str(Path(entry.path).resolve())})
        for s in ds:
            d = s.to_dict()
            d["image"] = str(ds.image_path(s).resolve())

            out.append(Sample.from_dict(d))
        return out
    spec = entry.codec or vocab_codecs[0]
    if entry.type == "tasks" or (entry.type == "offsets" and entry.tasks):
        kw = {"seed": task_seed}
        if entry.tasks:
            kw["tasks"] = tuple(entry.tasks)
        tasks = build_tasks(scenes, spec, TaskConfig(**kw), geometry_fn=_geometry_fn(entry, spec))
        if entry.type == "tasks":
            return tasks

        return refine_from_tasks(tasks, scenes, spec, entry.ks or [entry.k], anchor=entry.anchor, seed=task_seed,
                                 inside_steps=entry.inside_steps)  # fmt: skip
    return _object_samples(entry, spec, scenes, task_seed)


def check_dataset_layout(manifest: dict, vocab_codecs: list[str], where: str = "dataset") -> None:
    """Raise :class:`LayoutMismatchError` unless every codec of a dataset is part of the model's vocabulary.

    A dataset records its codecs and the hash of their layout; the model's layout is the one of
    ``vocab_codecs``. Equal hashes pass; a dataset whose codecs are a subset of the model's also passes (its
    tokens are all in the tokenizer); anything else is an error naming both hashes and the missing codecs.
    """
    codecs = list(manifest.get("codecs") or [])
    model_layout = VocabLayout.from_codecs(vocab_codecs)
    if not codecs:
        return
    h = manifest.get("layout_hash")
    if h == model_layout.hash:
        return

    specs = [get_codec(c).spec for c in codecs]
    missing = [c for c in specs if c not in model_layout.codecs]
    # a codec that adds no tokens (text_coords, polygon with text vertices) needs nothing from the vocabulary
    missing = [c for c in missing if get_codec(c).new_tokens()]
    if missing:
        raise LayoutMismatchError(
            f"{where}: dataset layout {h} (codecs {specs}) does not match the model's layout {model_layout.hash} "
            f"(codecs {model_layout.codecs}); codecs not in the model's vocabulary: {missing}. Add them to "
            "vocab.codecs or rebuild the dataset with the model's codecs"
        )


def mix_pools(pools: dict[str, list], weights: dict[str, float], num_samples: int, seed: int = 0) -> list:
    """Draw ``num_samples`` samples from the pools in proportion to ``weights`` (deterministic for a seed).

    Each pool gets ``round(num_samples * w / sum(w))`` samples (rounding fixed so the total is exact): a
    random subset when the pool is larger, whole reshuffled passes plus a subset when smaller. Repeats get
    ``#r<k>`` appended to their ``sample_id`` (a dataset needs unique ids). The result is shuffled.

    >>> from types import SimpleNamespace as S
    >>> a = [S(sample_id=f"a{i}") for i in range(3)]; b = [S(sample_id=f"b{i}") for i in range(100)]
    >>> out = mix_pools({"a": a, "b": b}, {"a": 1, "b": 1}, 10)
    >>> len(out), sum(s.sample_id.startswith("a") for s in out)
    (10, 5)
    """

    names = [k for k in pools if weights.get(k, 0) > 0]
    empty = [k for k in names if not pools[k]]
    if empty:
        raise DataError(f"mixture entries produced no samples: {empty}")
    w = np.array([float(weights[k]) for k in names])
    raw = num_samples * w / w.sum()
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: num_samples - int(counts.sum())]:
        counts[i] += 1
    rng = np.random.default_rng(seed)
    out = []
    for name, c in zip(names, counts):
        pool = pools[name]
        picked, rep = [], 0
        while len(picked) < c:
            order = rng.permutation(len(pool))[: c - len(picked)]
            for i in order:
                s = pool[int(i)]
                if rep:
                    s = copy.copy(s)
                    s.sample_id = f"{s.sample_id}#r{rep}"
                picked.append(s)
            rep += 1
        out.extend(picked)
    return [out[i] for i in rng.permutation(len(out))]


def build_mixture(
    data: DataConfig, vocab_codecs: list[str], out_dir: str | Path, *, seed: int = 0, progress: bool = True
) -> Path:
    """Build the training mixture into the dataset directory ``out_dir`` (reused when already built alike).

    The manifest's ``builder`` records the data config and a fingerprint of it; an existing directory with
    the same fingerprint is reused as it is (resume), one with another fingerprint is an error.

    Returns
    -------
    Path
        ``out_dir``.
    """

    out = Path(out_dir)
    spec = {"data": config_to_dict(data), "vocab_codecs": list(vocab_codecs), "seed": seed}
    fp = fingerprint(spec)
    if reuse_built(out, fp, "a training mixture"):
        log.info("reusing the training mixture in %s (fingerprint %s)", out, fp)
        return out
    scenes = []
    if any(e.type != "dataset" for e in data.mixture):
        scenes = generate_scenes(data.scenes.n, data.scenes.seed, data.scenes.scene_config())
    pools, weights, images, skipped = {}, {}, {}, []
    entries = data.mixture
    it = entries
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(entries, desc="mixture", unit="entry")
    for i, e in enumerate(it):
        key = f"{i}:{e.label}"
        pool = build_pool(e, vocab_codecs, scenes, data.task_seed)
        for smp in pool:  # ids unique across entries (two entries may build the same task of a scene)
            smp.sample_id = f"{key}/{smp.sample_id}"
        pools[key], weights[key] = pool, e.weight
        images.update(getattr(pool, "images", {}))
        skipped.extend({**s, "entry": key} for s in getattr(pool, "skipped", []))
        log.info("mixture entry %s: %d samples (%d skipped)", key, len(pool), len(getattr(pool, "skipped", [])))
    mixed = mix_pools(pools, weights, data.num_samples, seed=seed)
    per_entry = Counter(s.sample_id.split("/", 1)[0] for s in mixed)
    manifest = {
        "builder": {"fingerprint": fp, **spec, "pool_sizes": {k: len(v) for k, v in pools.items()},
                    "per_entry": dict(per_entry)},  # fmt: skip
        "sources": [_scenes_source(data.scenes.n, data.scenes.seed, data)] if scenes else [],
        "skipped": skipped,
    }
    return write_dataset(mixed, out, manifest, images=images)


def build_eval_set(ev: EvalConfig, data: DataConfig, codec: str, out_dir: str | Path) -> Path:
    """Held-out procedural scenes (series ``ev.seed``) as query tasks in ``codec`` (reused when present)."""

    out = Path(out_dir)
    spec = {"n": ev.n_scenes, "seed": ev.seed, "tasks": list(ev.tasks), "codec": codec,
            "scenes": data.scenes.scene_config().to_dict()}  # fmt: skip
    fp = fingerprint(spec)
    if reuse_built(out, fp, "an evaluation set", "remove it"):
        return out
    scenes = generate_scenes(ev.n_scenes, ev.seed, data.scenes.scene_config())
    entry = MixtureEntry(type="tasks", tasks=list(ev.tasks), codec=codec)
    res = build_tasks(scenes, codec, TaskConfig(tasks=tuple(ev.tasks), seed=ev.seed), geometry_fn=_geometry_fn(entry, codec))
    man = {"builder": {"fingerprint": fp, **spec}, "sources": [_scenes_source(ev.n_scenes, ev.seed, data)]}
    return write_dataset(res, out, man)


def _scenes_source(n: int, seed: int, data: DataConfig) -> dict:
    """The manifest's record of a scene series (what regenerates a scene, e.g. the eval's exact decoder)."""
    return {"loader": "scenes", "n": int(n), "seed": int(seed), "config": data.scenes.scene_config().to_dict()}


# ---------------------------------------------------------------------------------------------- examples
def image_token_count(processor, size: tuple[int, int], adapter=None) -> int:
    """Image tokens the processor makes for an image of ``size`` (H, W), as the model family's adapter counts
    them (:func:`~getok.vocab.adapters.adapter_for`: Qwen-VL asks its image processor, other families render
    once per size)."""

    return (adapter or adapter_for(processor)).image_token_count(processor, size)


def sample_lengths(
    processor, messages_list: list[list[dict]], image_sizes: list[list[tuple[int, int]]], adapter=None
) -> np.ndarray:
    """Token count of each conversation as the trainer will see it (chat template + image tokens).

    The text is rendered with the processor's chat template (one image placeholder per image), tokenized
    in one batch, and each placeholder (the adapter's :meth:`~getok.vocab.adapters.ModelAdapter.image_placeholder`)
    adds the tokens the processor expands it into for its image's size
    (:meth:`~getok.vocab.adapters.ModelAdapter.image_tokens_added`: image tokens and the family's markers).
    """

    adapter = adapter or adapter_for(processor)
    tok = processor.tokenizer
    texts = [processor.apply_chat_template(m, tokenize=False) for m in messages_list]
    enc = tok(texts)["input_ids"]
    placeholder = adapter.image_placeholder(processor)
    cache: dict[tuple[int, int], int] = {}
    out = np.zeros(len(texts), dtype=np.int64)
    for i, (text, ids, sizes) in enumerate(zip(texts, enc, image_sizes)):
        n_ph = text.count(placeholder)
        if n_ph != len(sizes):
            raise DataError(f"conversation {i}: {n_ph} image placeholders for {len(sizes)} images")
        extra = 0
        for s in sizes:
            if s not in cache:
                cache[s] = adapter.image_tokens_added(processor, s)
            extra += cache[s]
        out[i] = len(ids) + extra
    return out


@dataclass
class PrepareStats:
    """What :func:`prepare_examples` kept and dropped."""

    total: int = 0
    kept: int = 0
    too_long: int = 0
    image_errors: int = 0
    max_length: int = 0
    longest_kept: int = 0
    examples_dropped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "total": self.total, "kept": self.kept, "too_long": self.too_long, "image_errors": self.image_errors,
            "max_length": self.max_length, "longest_kept": self.longest_kept,
            "examples_dropped": self.examples_dropped[:20],
        }  # fmt: skip


def examples_dataset(messages: list[list[dict]], image_paths: list[list[str]]):
    """A ``datasets.Dataset`` with TRL's conversational vision columns ``messages`` and ``images``.

    ``images`` is a list of ``datasets.Image`` per row, stored as file paths and decoded to PIL when a row
    is read (what TRL's vision collator takes).
    """

    datasets = require("datasets", "train", "SFT data")
    if len(messages) != len(image_paths):
        raise DataError("messages and image_paths must have the same length")
    f = datasets
    content = f.List({"type": f.Value("string"), "text": f.Value("string")})
    features = f.Features(
        {"messages": f.List({"role": f.Value("string"), "content": content}), "images": f.List(f.Image())}
    )
    rows = {"messages": messages, "images": [[{"path": str(p), "bytes": None} for p in ps] for ps in image_paths]}
    return f.Dataset.from_dict(rows, features=features)


def _open_rgb(path):
    """A decoded RGB PIL image (raises DataError naming the file)."""
    from PIL import Image

    return Image.fromarray(load_image_rgb(path))


def prepare_examples(data, processor, max_length: int, *, progress: bool = False):
    """A dataset directory (or :class:`~getok.data_builders.dataset.Dataset`) → TRL examples.

    Every image is decoded once: a sample whose image cannot be read is skipped and counted
    (``image_errors``). Every sample is measured with :func:`sample_lengths`: longer than ``max_length``
    → dropped and counted (``too_long``). Nothing is truncated.

    Returns
    -------
    (datasets.Dataset, PrepareStats)
        The examples (:func:`examples_dataset`: ``messages`` + ``images``) and what was kept / dropped.
    """

    ds = data if isinstance(data, Dataset) else read_dataset(data, check_images=False)
    stats = PrepareStats(total=len(ds), max_length=int(max_length))
    decoded: dict[str, tuple[int, int]] = {}
    bad: dict[str, str] = {}
    msgs, imgs, sizes, ids = [], [], [], []
    it = ds.samples
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="load images", unit="sample")
    for s in it:
        path = str(ds.image_path(s))
        if path not in decoded and path not in bad:
            try:
                im = _open_rgb(path)
                decoded[path] = (im.height, im.width)  # checked once; rows decode again when read
            except DataError as exc:
                bad[path] = str(exc)
                log.warning("skipping samples of an unreadable image: %s", exc)
        if path in bad:
            stats.image_errors += 1
            stats.examples_dropped.append({"sample_id": s.sample_id, "reason": f"image: {bad[path]}"})
            continue
        n_img = sum(t.user.count(IMAGE_PLACEHOLDER) for t in s.turns)
        if n_img != 1:
            raise DataError(f"sample {s.sample_id}: expected one {IMAGE_PLACEHOLDER}, found {n_img}")
        msgs.append(trl_messages(s))
        imgs.append([path])
        sizes.append([decoded[path]])
        ids.append(s.sample_id)
    lengths = sample_lengths(processor, msgs, sizes) if msgs else np.zeros(0, dtype=np.int64)
    keep = lengths <= max_length
    for i in np.flatnonzero(~keep):
        stats.too_long += 1
        stats.examples_dropped.append({"sample_id": ids[i], "reason": f"too long: {int(lengths[i])} > {max_length}"})
    k = np.flatnonzero(keep)
    stats.kept = int(len(k))
    stats.longest_kept = int(lengths[k].max()) if len(k) else 0
    if stats.too_long:
        log.warning("dropped %d of %d samples longer than max_length=%d tokens", stats.too_long, stats.total, max_length)
    if not stats.kept:
        raise DataError(
            f"no usable training sample: {stats.too_long} too long (max_length={max_length}), "
            f"{stats.image_errors} with unreadable images"
        )
    ex = examples_dataset([msgs[i] for i in k], [imgs[i] for i in k])
    return ex, stats
