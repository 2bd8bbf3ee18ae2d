"""Exports of a dataset directory for trainers: HF ``datasets`` parquet, TRL SFT, ShareGPT / LLaVA, EasyR1.

Every export is a directory written atomically with a ``manifest.json`` (the dataset's manifest plus
``export``: format, rows, columns, how images are stored) and ``getok_layout.json``.

* :func:`export_hf` — ``data/train-00000-of-00001.parquet``: every sample field, ``image`` as an HF
  ``Image`` (bytes embedded, or the absolute path), ``truth`` / ``meta`` as JSON strings.
  ``datasets.load_dataset("parquet", data_dir=OUT / "data")``.
* :func:`export_trl` — ``data/train-00000-of-00001.parquet`` with TRL's conversational vision columns:
  ``messages`` (user content ``[{"type": "image"}, {"type": "text", ...}]``, assistant text) and
  ``images`` (a list of HF ``Image``: one per ``{"type": "image"}`` entry).
* :func:`export_sharegpt` — ``data.json`` (LLaVA / ShareGPT: ``conversations`` with ``from`` /
  ``value`` and ``<image>`` in the first human turn, ``images`` list and LLaVA's ``image``), images copied
  to ``images/``, and ``dataset_info.json`` for LlamaFactory (ms-swift reads the same rows).
* :func:`export_easyr1` — ``train.parquet`` with EasyR1's keys: ``problem`` (the question with
  ``<image>``, written so that EasyR1 builds the same user content as SFT: :func:`engine_prompt`), ``answer`` (the packed truth of :mod:`getok.rl.truth` that ``getok/rl/easyr1_reward.py``
  scores: reward task, codec spec, kind, image size, RLE masks, boxes, points, for stage 2 the stage-1
  ``proposal``; plus the layout hash, the sample's task and the target answer) and ``images``
  (embedded bytes; or paths relative to ``OUT`` with ``embed_images=False``: set ``data.image_dir=OUT``).
  Train with ``data.train_files=OUT/train.parquet data.prompt_key=problem data.answer_key=answer``.

Image bytes are read with ``datasets.map(num_proc=...)`` so long exports use several processes; a
progress bar shows when ``progress=True``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from ..answers import extract_answer
from ..errors import DataError, require
from ..io import atomic_dir
from ..samples import IMAGE_PLACEHOLDER, Sample
from ..vocab.layout import VocabLayout
from .dataset import Dataset, read_dataset
from .tasks import safe_name

__all__ = [
    "EXPORT_FORMATS",
    "export_hf",
    "export_trl",
    "export_sft",
    "export_sharegpt",
    "export_easyr1",
    "export_dataset",
    "easyr1_truth",
    "reward_task",
    "POLYGON_CODECS",
    "trl_messages",
    "sharegpt_conversations",
    "easyr1_problem",
    "user_content",
    "engine_prompt",
]

PARQUET_NAME = "train-00000-of-00001.parquet"


def _as_dataset(data: Dataset | str | Path) -> Dataset:
    return data if isinstance(data, Dataset) else read_dataset(data)


def _n_placeholders(sample: Sample) -> int:
    return sum(t.user.count(IMAGE_PLACEHOLDER) for t in sample.turns)


def _check_one_image(sample: Sample) -> None:
    n = _n_placeholders(sample)
    if n != 1:
        raise DataError(f"sample {sample.sample_id}: expected one {IMAGE_PLACEHOLDER} placeholder, found {n}")


# ---------------------------------------------------------------------------------------------- row builders
def user_content(text: str) -> list[str | None]:
    r"""A user message as the model sees it: text parts and images (``None``) in order.

    The one rule every trainer's prompt follows (SFT, TRL GRPO, EasyR1): ``text`` is split at each
    ``<image>``, each text part loses the newlines around it (the chat template puts the image tokens right
    against the text) and empty parts are dropped.

    >>> user_content("<image>\nSegment the disc.")
    [None, 'Segment the disc.']
    >>> user_content("Segment the disc.\n<image>")
    ['Segment the disc.', None]
    """
    out: list[str | None] = []
    for i, part in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if i:
            out.append(None)
        part = part.strip("\n")
        if part:
            out.append(part)
    return out


def engine_prompt(text: str) -> str:
    r"""A user message rewritten so that an engine splitting at ``<image>`` (EasyR1's ``RLHFDataset``) builds
    the same content as :func:`trl_messages`: :func:`user_content`'s parts joined by ``<image>`` alone.

    >>> engine_prompt("<image>\nSegment the disc.")
    '<image>Segment the disc.'
    """
    return "".join(IMAGE_PLACEHOLDER if p is None else p for p in user_content(text))


def trl_messages(sample: Sample) -> list[dict]:
    """TRL conversational vision messages: one ``{"type": "image"}`` entry where ``<image>`` stood
    (:func:`user_content`)."""
    msgs = []
    for turn in sample.turns:
        content = [{"type": "image", "text": None} if p is None else {"type": "text", "text": p}
                   for p in user_content(turn.user)]  # fmt: skip
        msgs.append({"role": "user", "content": content})
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": turn.assistant}]})
    return msgs


def sharegpt_conversations(sample: Sample) -> list[dict]:
    """ShareGPT / LLaVA turns: ``{"from": "human" | "gpt", "value": ...}`` with ``<image>`` kept."""
    conv = []
    for turn in sample.turns:
        conv.append({"from": "human", "value": turn.user})
        conv.append({"from": "gpt", "value": turn.assistant})
    return conv


def easyr1_problem(sample: Sample) -> str:
    """EasyR1's prompt: the user text as SFT shows it (:func:`engine_prompt`: no newline after ``<image>``).

    EasyR1 is single-turn: earlier turns are folded into the prompt (the stage-1 proposal included).
    """
    if len(sample.turns) == 1:
        return engine_prompt(sample.turns[0].user)
    parts = [engine_prompt(sample.turns[0].user)]
    for prev, nxt in zip(sample.turns[:-1], sample.turns[1:]):
        parts.append(f"Previous answer: {extract_answer(prev.assistant)}")
        parts.append(engine_prompt(nxt.user))
    return "\n".join(parts)


#: Codecs whose mask answers are polygons (SimpleSeg mode): scored by the ``polygon`` reward.
POLYGON_CODECS = ("polygon", "text_coords", "bins")


def reward_task(sample: Sample) -> str:
    """The reward task of :mod:`getok.rl.truth` for a sample: ``stage1``, ``stage2`` or ``polygon``.

    ``stage2`` for refinement samples (a ``refine`` task, or a truth carrying a ``proposal``);
    ``polygon`` for mask answers of polygon-writing codecs (:data:`POLYGON_CODECS`); else ``stage1``.
    EasyR1's reward kwargs can force another (``task=...``).
    """
    if sample.task == "refine" or "proposal" in sample.truth or len(sample.turns) > 1:
        return "stage2"
    if sample.kind == "mask" and sample.codec.split(":")[0] in POLYGON_CODECS:
        return "polygon"
    return "stage1"


def easyr1_truth(sample: Sample, layout_hash: str | None = None, image: str | None = None) -> dict:
    """The JSON-packed ground truth an EasyR1 reward receives as ``ground_truth``.

    The packed form of :mod:`getok.rl.truth` (version 1: ``v``, ``task`` = the reward task,
    ``codec``, ``kind``, ``size`` [H, W], ``masks`` (COCO RLE), ``boxes`` (XYXY pixels), ``points``
    (per instance, point tasks), ``proposal`` (stage 2: the stage-1 answer), ``image`` / ``image_id``)
    plus ``query_task`` (the sample's task, e.g. ``text>mask``), ``layout_hash``, ``sample_id``,
    ``target`` (the reference answer, envelope removed) and the rest of ``Sample.truth``.
    """
    tr = dict(sample.truth)
    out = {
        "v": 1,
        "task": reward_task(sample),
        "codec": sample.codec,
        "kind": sample.kind,
        "size": list(sample.size),
        "masks": tr.pop("masks", []),
        "boxes": tr.pop("boxes", []),
        "query_task": sample.task,
        "layout_hash": layout_hash,
        "sample_id": sample.sample_id,
        "image_id": sample.image_id,
        "target": extract_answer(sample.answer),
    }
    if image is not None:
        out["image"] = image
    if len(sample.turns) > 1 and "proposal" not in tr:
        tr["proposal"] = extract_answer(sample.turns[-2].assistant)
    tr.pop("size", None)
    tr.pop("task", None)
    out.update(tr)
    return out


# ---------------------------------------------------------------------------------------------- writing
def _image_cell(path: str, embed: bool) -> dict:
    if embed:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"image {p} not found")
        return {"bytes": p.read_bytes(), "path": p.name}
    return {"bytes": None, "path": path}


def _to_parquet(
    rows: list[dict], features, path: Path, *, image_cols: tuple[str, ...], embed: bool, num_proc, progress
):
    """Rows → parquet via ``datasets``; image columns hold absolute paths and are read in ``map``."""
    datasets = require("datasets", "data", "parquet exports")
    if not progress:
        datasets.disable_progress_bars()
    try:
        ds = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({k: [] for k in features})

        def load(row):
            for col in image_cols:
                v = row[col]
                row[col] = [_image_cell(x, embed) for x in v] if isinstance(v, list) else _image_cell(v, embed)
            return row

        if rows:
            nproc = num_proc if num_proc and num_proc > 1 and len(rows) >= 2 * num_proc else None
            ds = ds.map(load, num_proc=nproc, desc="images", features=features)
        else:
            ds = ds.cast(features)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(path))
    finally:
        if not progress:
            datasets.enable_progress_bars()
    return len(rows)


def _export_manifest(ds: Dataset, tmp: Path, fmt: str, rows: int, columns: list[str], **info) -> None:
    man = dict(ds.manifest)
    man["export"] = {"format": fmt, "rows": rows, "columns": columns, "dataset": str(ds.root), **info}
    (tmp / "manifest.json").write_text(json.dumps(man, indent=1))
    if man.get("codecs"):
        VocabLayout.from_codecs(man["codecs"]).save(tmp)


def export_hf(
    data: Dataset | str | Path,
    out_dir: str | Path,
    *,
    embed_images: bool = True,
    num_proc: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Hugging Face ``datasets`` parquet with every sample field (see the module docstring)."""
    datasets = require("datasets", "data", "HF export")
    ds = _as_dataset(data)
    rows = [
        {
            "sample_id": s.sample_id,
            "image_id": s.image_id,
            "image": str(ds.image_path(s).resolve()),
            "size": list(s.size),
            "task": s.task,
            "kind": s.kind,
            "codec": s.codec,
            "turns": [{"user": t.user, "assistant": t.assistant} for t in s.turns],
            "answer": s.answer,
            "truth": json.dumps(s.truth, separators=(",", ":")),
            "meta": json.dumps(s.meta, separators=(",", ":")),
        }
        for s in ds
    ]
    f = datasets
    features = f.Features(
        {
            "sample_id": f.Value("string"),
            "image_id": f.Value("string"),
            "image": f.Image(),
            "size": f.List(f.Value("int64")),
            "task": f.Value("string"),
            "kind": f.Value("string"),
            "codec": f.Value("string"),
            "turns": f.List({"user": f.Value("string"), "assistant": f.Value("string")}),
            "answer": f.Value("string"),
            "truth": f.Value("string"),
            "meta": f.Value("string"),
        }
    )
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        n = _to_parquet(
            rows, features, tmp / "data" / PARQUET_NAME, image_cols=("image",), embed=embed_images,
            num_proc=num_proc, progress=progress,
        )  # fmt: skip
        _export_manifest(ds, tmp, "hf", n, list(features), embed_images=embed_images, files=[f"data/{PARQUET_NAME}"])
    return Path(out_dir)


def export_trl(
    data: Dataset | str | Path,
    out_dir: str | Path,
    *,
    embed_images: bool = True,
    num_proc: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """TRL SFT conversations: ``messages`` + ``images`` parquet (see the module docstring)."""
    datasets = require("datasets", "data", "TRL export")
    ds = _as_dataset(data)
    rows = []
    for s in ds:
        _check_one_image(s)
        rows.append({"messages": trl_messages(s), "images": [str(ds.image_path(s).resolve())]})
    f = datasets
    content = f.List({"type": f.Value("string"), "text": f.Value("string")})
    features = f.Features(
        {"messages": f.List({"role": f.Value("string"), "content": content}), "images": f.List(f.Image())}
    )
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        n = _to_parquet(
            rows, features, tmp / "data" / PARQUET_NAME, image_cols=("images",), embed=embed_images,
            num_proc=num_proc, progress=progress,
        )  # fmt: skip
        _export_manifest(
            ds, tmp, "trl", n, list(features), embed_images=embed_images, files=[f"data/{PARQUET_NAME}"],
            sample_ids=[s.sample_id for s in ds],
        )  # fmt: skip
    return Path(out_dir)


def _copy_images(ds: Dataset, tmp: Path) -> dict[str, str]:
    """Copy each distinct image into ``tmp/images``; ``{sample image field: relative path}``."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for s in ds:
        if s.image in out:
            continue
        src = ds.image_path(s)
        if not src.is_file():
            raise DataError(f"image {src} not found")
        name = f"{safe_name(s.image_id)}{src.suffix.lower() or '.png'}"
        k = 1
        while name in used:
            name = f"{safe_name(s.image_id)}-{k}{src.suffix.lower()}"
            k += 1
        used.add(name)
        (tmp / "images").mkdir(exist_ok=True)
        shutil.copyfile(src, tmp / "images" / name)
        out[s.image] = f"images/{name}"
    return out


def export_sharegpt(data: Dataset | str | Path, out_dir: str | Path, *, overwrite: bool = False, **_) -> Path:
    """ShareGPT / LLaVA JSON with images copied beside it (see the module docstring)."""
    ds = _as_dataset(data)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        paths = _copy_images(ds, tmp)
        rows = []
        for s in ds:
            _check_one_image(s)
            rel = paths[s.image]
            rows.append(
                {
                    "id": s.sample_id,
                    "image": rel,
                    "images": [rel],
                    "conversations": sharegpt_conversations(s),
                }
            )
        (tmp / "data.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
        info = {
            "getok": {
                "file_name": "data.json",
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "images": "images"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
            }
        }
        (tmp / "dataset_info.json").write_text(json.dumps(info, indent=1))
        _export_manifest(
            ds, tmp, "sharegpt", len(rows), ["id", "image", "images", "conversations"], files=["data.json"]
        )
    return Path(out_dir)


def export_easyr1(
    data: Dataset | str | Path,
    out_dir: str | Path,
    *,
    embed_images: bool = True,
    num_proc: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """EasyR1 rows ``problem`` / ``answer`` / ``images`` (see the module docstring)."""
    datasets = require("datasets", "data", "EasyR1 export")
    ds = _as_dataset(data)
    h = ds.manifest.get("layout_hash")
    f = datasets
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        rows = []
        paths = {} if embed_images else _copy_images(ds, tmp)
        final = Path(out_dir).resolve()
        for s in ds:
            _check_one_image(s)
            img = str(ds.image_path(s).resolve()) if embed_images else paths[s.image]
            abs_img = img if embed_images else str(final / img)  # for decoders that read pixels
            rows.append(
                {
                    "problem": easyr1_problem(s),
                    "answer": json.dumps(easyr1_truth(s, h, abs_img), separators=(",", ":")),
                    "images": [img],
                    "sample_id": s.sample_id,
                }
            )
        base = {"problem": f.Value("string"), "answer": f.Value("string"), "sample_id": f.Value("string")}
        if embed_images:
            features = f.Features({**base, "images": f.List(f.Image())})
            n = _to_parquet(
                rows, features, tmp / "train.parquet", image_cols=("images",), embed=True,
                num_proc=num_proc, progress=progress,
            )  # fmt: skip
        else:  # plain path strings, joined with data.image_dir by EasyR1
            features = f.Features({**base, "images": f.List(f.Value("string"))})
            dset = (
                f.Dataset.from_list(rows, features=features)
                if rows
                else f.Dataset.from_dict({k: [] for k in features}, features=features)
            )
            dset.to_parquet(str(tmp / "train.parquet"))
            n = len(rows)
        _export_manifest(
            ds, tmp, "easyr1", n, list(features), embed_images=embed_images, files=["train.parquet"],
            image_dir="." if not embed_images else None,
        )  # fmt: skip
    return Path(out_dir)


def export_sft(data, out_dir, *, style: str = "trl", **kwargs) -> Path:
    """SFT conversations: ``style="trl"`` (``messages`` + ``images`` parquet) or ``"sharegpt"`` (LLaVA JSON)."""
    if style == "trl":
        return export_trl(data, out_dir, **kwargs)
    if style in ("sharegpt", "llava"):
        return export_sharegpt(data, out_dir, **kwargs)
    raise DataError(f"unknown SFT style {style!r}; use 'trl' or 'sharegpt'")


#: Export name → function (the CLI's ``getok export NAME``).
EXPORT_FORMATS: dict[str, Callable[..., Path]] = {
    "hf": export_hf,
    "sft": export_trl,
    "trl": export_trl,
    "sharegpt": export_sharegpt,
    "llava": export_sharegpt,
    "easyr1": export_easyr1,
}


def export_dataset(fmt: str, data, out_dir, **kwargs) -> Path:
    """Export ``data`` in format ``fmt`` (a key of :data:`EXPORT_FORMATS`)."""
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; known: {sorted(EXPORT_FORMATS)}")
    return EXPORT_FORMATS[fmt](data, out_dir, **kwargs)
