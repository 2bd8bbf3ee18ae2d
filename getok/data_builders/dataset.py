"""The dataset directory: samples as JSONL, images, and a manifest that says how they were made.

Layout::

    DIR/
      manifest.json        format, codec spec(s), vocabulary layout hash, builder settings, sources,
                           counts (samples, images, per task, per codec), skipped items with reasons
      getok_layout.json    the VocabLayout of the codecs (tokens in order)
      samples.jsonl        one Sample.to_dict() per line
      images/              PNGs of in-memory images (procedural scenes), copies of files if asked

Writes are atomic (:func:`getok.io.atomic_dir`): a failed build leaves no directory behind, and an
existing one is only replaced with ``overwrite=True``. :func:`read_dataset` checks the manifest against
the samples (counts, codecs, layout hash, image files) and fails with a clear message on a mismatch.

:func:`build_dataset` is the streaming, parallel form used by the CLI: images (or scene indices) are
split into chunks, each chunk is built in a worker process that writes its PNGs straight into the
temporary directory, and the results are gathered in chunk order (same output for any worker count).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..codecs.base import get_codec
from ..errors import ConfigError, DataError, LayoutMismatchError
from ..io import atomic_dir
from ..records import (
    AnnotatedImage,
    save_png,  # noqa: F401  (re-exported: dataset.save_png)
)
from ..samples import Sample
from ..vocab.layout import VocabLayout
from .scenes import SceneConfig, iter_scenes
from .sources.base import safe_join
from .tasks import SampleList, TaskConfig, build_tasks, safe_name

__all__ = [
    "DATASET_FORMAT",
    "MANIFEST_FILE",
    "SAMPLES_FILE",
    "Dataset",
    "write_dataset",
    "read_dataset",
    "reuse_built",
    "build_dataset",
    "make_manifest",
    "save_png",
]

log = logging.getLogger("getok.data_builders.dataset")

DATASET_FORMAT = "getok-dataset"
DATASET_VERSION = 1
MANIFEST_FILE = "manifest.json"
SAMPLES_FILE = "samples.jsonl"
IMAGES_DIR = "images"


def make_manifest(
    samples: Sequence[Sample],
    *,
    builder: dict | None = None,
    sources: list | dict | None = None,
    skipped: list[dict] | None = None,
    extra: dict | None = None,
) -> dict:
    """The manifest of a set of samples: codecs, layout hash, settings, counts, skipped items."""
    codecs = sorted({s.codec for s in samples}) or sorted({(builder or {}).get("codec", "")} - {""})
    layout = VocabLayout.from_codecs(codecs) if codecs else None
    skipped = list(skipped or [])
    return {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "getok_version": __version__,
        "codecs": codecs,
        "layout_hash": layout.hash if layout else None,
        "builder": builder or {},
        "sources": sources if sources is not None else [],
        "counts": {
            "samples": len(samples),
            "images": len({s.image_id for s in samples}),
            "per_task": dict(sorted(Counter(s.task for s in samples).items())),
            "per_codec": dict(sorted(Counter(s.codec for s in samples).items())),
            "skipped": len(skipped),
            "skipped_by_reason": _reason_counts(skipped),
        },
        "skipped": skipped,
        **(extra or {}),
    }


def _reason_counts(skipped: list[dict]) -> dict[str, int]:
    """Skip reasons grouped by their first clause (numbers and names vary per item)."""
    c = Counter(str(s.get("reason", "")).split(":")[0][:80] for s in skipped)
    return dict(sorted(c.items()))


def _check_samples(samples: Sequence[Sample]) -> None:
    """Unique sample ids, and one image per image file (two ids that map to one file name would clash)."""
    ids = Counter(s.sample_id for s in samples)
    dups = [k for k, v in ids.items() if v > 1]
    if dups:
        raise DataError(f"duplicate sample ids ({len(dups)}), e.g. {dups[:3]}")
    owner: dict[str, str] = {}
    for s in samples:
        if owner.setdefault(s.image, s.image_id) != s.image_id:
            raise DataError(
                f"images {owner[s.image]!r} and {s.image_id!r} both map to {s.image}: make the image ids distinct"
            )


def _write_samples(tmp: Path, samples: Sequence[Sample], manifest: dict) -> None:
    _check_samples(samples)
    with open(tmp / SAMPLES_FILE, "w") as f:
        for s in samples:
            f.write(json.dumps(s.to_dict(), separators=(",", ":")) + "\n")
    if manifest.get("codecs"):
        VocabLayout.from_codecs(manifest["codecs"]).save(tmp)
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))


def _copy_sample_images(tmp: Path, samples: Sequence[Sample]) -> list[Sample]:
    """Copy absolute-path images into ``images/`` and point the samples at the copies."""
    done: dict[str, str] = {}
    out = []
    for s in samples:
        p = Path(s.image)
        if p.is_absolute():
            if s.image not in done:
                rel = f"{IMAGES_DIR}/{safe_name(s.image_id)}{p.suffix.lower() or '.png'}"
                if not p.is_file():
                    raise DataError(f"sample {s.sample_id}: image {p} not found")
                (tmp / IMAGES_DIR).mkdir(exist_ok=True)
                shutil.copyfile(p, tmp / rel)
                done[s.image] = rel
            s = Sample.from_dict({**s.to_dict(), "image": done[s.image]})
        out.append(s)
    return out


def write_dataset(
    samples: Iterable[Sample],
    out_dir: str | Path,
    manifest: dict | None = None,
    *,
    images: dict[str, AnnotatedImage] | None = None,
    copy_images: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write samples, their in-memory images and the manifest into ``out_dir`` atomically.

    Parameters
    ----------
    samples : iterable of Sample
        A :class:`SampleList` also contributes its ``skipped``, ``images`` and ``settings``.
    out_dir : path
    manifest : dict, optional
        Extra manifest fields: ``builder`` (settings), ``sources``, ``skipped`` (added to the list's own),
        anything else is kept as is.
    images : dict, optional
        ``image_id → AnnotatedImage`` whose pixels are saved as the ``images/<id>.png`` the samples name
        (default: the SampleList's ``images``).
    copy_images : bool
        Also copy image files that samples name by absolute path, making the directory self-contained.
    overwrite : bool
        Replace an existing directory.

    Returns
    -------
    Path
        ``out_dir``.
    """
    samples = samples if isinstance(samples, list) else list(samples)
    extra = dict(manifest or {})
    skipped = list(getattr(samples, "skipped", [])) + list(extra.pop("skipped", []))
    builder = {**getattr(samples, "settings", {}), **extra.pop("builder", {})}
    sources = extra.pop("sources", None)
    images = images if images is not None else getattr(samples, "images", {})
    _check_samples(samples)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        needed = {s.image: s.image_id for s in samples if not Path(s.image).is_absolute()}
        for rel, image_id in needed.items():
            im = images.get(image_id)
            if im is None:
                raise DataError(f"samples name {rel} but no pixels were given for image {image_id!r}")
            save_png(im.get_image(), safe_join(tmp, rel))
        out = _copy_sample_images(tmp, samples) if copy_images else list(samples)
        man = make_manifest(out, builder=builder, sources=sources, skipped=skipped, extra=extra)
        _write_samples(tmp, out, man)
    return Path(out_dir)


@dataclass
class Dataset:
    """A dataset directory read back: its manifest and samples."""

    root: Path
    manifest: dict
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def image_path(self, sample: Sample) -> Path:
        """Absolute path of a sample's image."""
        p = Path(sample.image)
        return p if p.is_absolute() else self.root / p

    @property
    def layout(self) -> VocabLayout:
        return VocabLayout.from_codecs(self.manifest["codecs"])


def reuse_built(out: str | Path, fingerprint: str, what: str, hint: str = "remove it or use another output_dir") -> bool:
    """Whether ``out`` already holds the dataset a builder would write: ``True`` when its manifest's
    ``builder.fingerprint`` is ``fingerprint`` (reuse it), ``False`` when ``out`` does not exist (build it); a
    dataset built with other settings is a :class:`DataError` naming ``what`` it holds and the ``hint``."""
    out = Path(out)
    if not out.exists():
        return False
    if read_dataset(out, check_images=False).manifest.get("builder", {}).get("fingerprint") == fingerprint:
        return True
    raise DataError(f"{out} holds {what} built with other settings; {hint}")


def read_dataset(path: str | Path, *, expect_layout_hash: str | None = None, check_images: bool = True) -> Dataset:
    """Read and validate a dataset directory written by :func:`write_dataset` / :func:`build_dataset`.

    Checks: the manifest's format, the JSONL records, unique sample ids, the counts, that every sample's
    codec is listed, that the layout hash matches the codecs (and ``expect_layout_hash`` when given:
    the model's layout), and (``check_images``) that every image file exists inside the directory or at
    its absolute path. Raises :class:`DataError` / :class:`LayoutMismatchError` naming the problem.
    """
    root = Path(path)
    mp = root / MANIFEST_FILE
    if not mp.is_file():
        raise DataError(f"{root} is not a getok dataset (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(mp.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{mp} is not valid JSON: {exc}") from exc
    if isinstance(manifest, list):  # an image source (procedural scenes, real-dev), not a task dataset
        raise DataError(
            f"{root} is an image source (its {MANIFEST_FILE} lists images, as 'getok build scenes' writes), not a "
            f"task dataset: build one first with 'getok build tasks --data {root} --codec SPEC --out DATASET' "
            "and pass DATASET"
        )
    if not isinstance(manifest, dict):
        raise DataError(f"{mp}: expected a getok dataset manifest (a JSON object), got a {type(manifest).__name__}")
    if manifest.get("format") != DATASET_FORMAT:
        raise DataError(f"{mp}: format is {manifest.get('format')!r}, expected {DATASET_FORMAT!r}")
    sp = root / SAMPLES_FILE
    if not sp.is_file():
        raise DataError(f"{root}: {SAMPLES_FILE} is missing")
    samples = []
    with open(sp) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                samples.append(Sample.from_dict(json.loads(line)))
            except (json.JSONDecodeError, DataError) as exc:
                raise DataError(f"{sp}:{i}: {exc}") from exc
    counts = manifest.get("counts", {})
    if counts.get("samples") != len(samples):
        raise DataError(f"{root}: manifest counts {counts.get('samples')} samples, {SAMPLES_FILE} has {len(samples)}")
    per_task = dict(sorted(Counter(s.task for s in samples).items()))
    if counts.get("per_task", per_task) != per_task:
        raise DataError(f"{root}: per-task counts differ from the manifest: {per_task} vs {counts.get('per_task')}")
    ids = Counter(s.sample_id for s in samples)
    dups = [k for k, v in ids.items() if v > 1]
    if dups:
        raise DataError(f"{root}: duplicate sample ids, e.g. {dups[:3]}")
    codecs = list(manifest.get("codecs", []))
    stray = sorted({s.codec for s in samples} - set(codecs))
    if stray:
        raise DataError(f"{root}: samples use codecs {stray} that the manifest does not list")
    if codecs:
        h = VocabLayout.from_codecs(codecs).hash
        if manifest.get("layout_hash") != h:
            raise LayoutMismatchError(
                f"{root}: manifest layout hash {manifest.get('layout_hash')} does not match its codecs {codecs} ({h}); "
                "the codec definitions changed since the dataset was built: rebuild it"
            )
        if expect_layout_hash is not None and expect_layout_hash != h:
            raise LayoutMismatchError(
                f"{root}: dataset layout {h} ({codecs}) differs from the expected layout {expect_layout_hash}"
            )
    ds = Dataset(root=root, manifest=manifest, samples=samples)
    if check_images:
        missing = []
        for p in sorted({s.image for s in samples}):
            full = Path(p) if Path(p).is_absolute() else safe_join(root, p)
            if not full.is_file():
                missing.append(p)
        if missing:
            raise DataError(f"{root}: {len(missing)} image file(s) missing, e.g. {missing[:3]}")
    return ds


# ---------------------------------------------------------------------------------------------- parallel build
@dataclass(frozen=True)
class _Chunk:
    index: int
    scenes: tuple[int, int, int, Any] | None = None  # (seed, start, count, SceneConfig)
    images: list | None = None


def _run_chunk(chunk: _Chunk, codec: str, cfg: TaskConfig, geometry_fn, tmp: str):
    if chunk.scenes is not None:
        seed, start, count, scfg = chunk.scenes
        images = iter_scenes(count, seed, scfg, start=start)
    else:
        images = chunk.images
    res = build_tasks(images, codec, cfg, geometry_fn=geometry_fn)
    root = Path(tmp)
    for s in res:
        if s.image_id in res.images and not Path(s.image).is_absolute():
            dest = safe_join(root, s.image)
            if not dest.exists():
                save_png(res.images[s.image_id].get_image(), dest)
    return chunk.index, [s.to_dict() for s in res], res.skipped


def build_dataset(
    out_dir: str | Path,
    codec: str,
    cfg: TaskConfig | None = None,
    *,
    images: Sequence[AnnotatedImage] | None = None,
    scenes: tuple[int, int] | None = None,
    scene_config=None,
    geometry_fn=None,
    workers: int = 1,
    chunk_size: int = 64,
    copy_images: bool = False,
    manifest: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Build tasks and write a dataset directory in one streaming, optionally parallel pass.

    Parameters
    ----------
    out_dir : path
    codec : str
        Codec spec of the answers.
    cfg : TaskConfig, optional
    images : sequence of AnnotatedImage, optional
        Loaded images (from a source loader); their ``skipped`` list (if any) goes into the manifest.
    scenes : (n, seed), optional
        Instead of ``images``: generate procedural scenes ``0 .. n-1`` of series ``seed`` in the workers.
    scene_config : SceneConfig, optional
    geometry_fn : callable, optional
        See :func:`build_tasks` (must be picklable when ``workers > 1``).
    workers : int
        Worker processes (1 = in this process).
    chunk_size : int
        Images per chunk.
    copy_images : bool
        Copy source image files into the directory.
    manifest : dict, optional
        Extra manifest fields (``sources``, ``builder`` additions).
    overwrite, progress
    """
    if (images is None) == (scenes is None):
        raise DataError("build_dataset needs exactly one of images= or scenes=")
    cfg = cfg or TaskConfig()

    codec = get_codec(codec).spec
    extra = dict(manifest or {})
    chunks: list[_Chunk] = []
    sources = extra.pop("sources", None)
    skipped: list[dict] = list(extra.pop("skipped", []))
    if scenes is not None:
        n, seed = (int(v) for v in scenes)
        if n < 1:  # would write an empty dataset
            raise ConfigError(f"scenes: the number of scenes must be >= 1, got {n}")
        scene_config = scene_config or SceneConfig()
        for k, start in enumerate(range(0, n, chunk_size)):
            chunks.append(_Chunk(k, scenes=(seed, start, min(chunk_size, n - start), scene_config)))
        if sources is None:
            sources = [{"loader": "scenes", "n": n, "seed": seed, "config": scene_config.to_dict()}]
    else:
        imgs = list(images)
        for k, start in enumerate(range(0, len(imgs), chunk_size)):
            chunks.append(_Chunk(k, images=imgs[start : start + chunk_size]))
        skipped = list(getattr(images, "skipped", [])) + skipped
        if sources is None:
            sources = [getattr(images, "source", {})]
    results: dict[int, tuple[list[dict], list[dict]]] = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(chunks), desc=f"build ({codec.split(':')[0]})", unit="chunk")
        if workers <= 1 or len(chunks) <= 1:
            for ch in chunks:
                i, rows, sk = _run_chunk(ch, codec, cfg, geometry_fn, str(tmp))
                results[i] = (rows, sk)
                if bar:
                    bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [pool.submit(_run_chunk, ch, codec, cfg, geometry_fn, str(tmp)) for ch in chunks]
                for fut in futs:
                    i, rows, sk = fut.result()
                    results[i] = (rows, sk)
                    if bar:
                        bar.update(1)
        if bar:
            bar.close()
        out = SampleList(settings={"codec": codec, "tasks": cfg.to_dict()})
        for i in sorted(results):
            rows, sk = results[i]
            out.extend(Sample.from_dict(r) for r in rows)
            out.skipped.extend(sk)
        if copy_images:
            out_samples = _copy_sample_images(tmp, out)
        else:
            out_samples = list(out)
        builder = {**out.settings, **extra.pop("builder", {})}
        man = make_manifest(out_samples, builder=builder, sources=sources, skipped=skipped + out.skipped, extra=extra)
        _write_samples(tmp, out_samples, man)
    log.info("wrote %d samples to %s (%d skipped)", len(out_samples), out_dir, len(skipped) + len(out.skipped))
    return Path(out_dir)
