"""The evaluation runner: generate answers, decode them, score them, write records and a summary.

``evaluate(model, processor, data, out_dir=...)`` (CLI: ``getok eval``) writes::

    OUT/
      run.json          what was evaluated with what (model, data, codec, decoder, turns, constrained, ...)
      records.jsonl     one record per sample (getok.eval.scoring / getok.eval.selfcorrect), appended per batch
      samples.jsonl     the evaluated samples (only when ``data`` was not a dataset directory)
      summary.json      overall / per-task metrics, self-correction tables, timing
      summary.md        the same as markdown tables, with the empty-target convention stated

**Resumable:** with ``resume=True`` (default) samples whose id is already in ``records.jsonl`` are not
evaluated again (a torn last line from an interrupted run is dropped); the run's settings must match
``run.json`` (a different model, data, codec, decoder, turn count, constraint or budget raises
:class:`~getok.errors.ConfigError`: use another ``out_dir`` or ``resume=False``, which starts over). The
summary always covers every requested sample. ``empty`` only affects the summary, so it may change
between resumed runs.

**Invalid outputs** are records with ``valid=False`` and the codec's reason; they are counted
(``invalid_rate``, ``invalid_reasons``) and never raised. Errors of the setup (a missing image, a dataset
whose refinement proposal does not parse, a tokenizer without the codec's tokens) do raise.

Per record (single turn): ``id``, ``image_id``, ``image``, ``task``, ``kind``, ``codec``, ``target``
(reference answer), ``prediction`` (generated text), ``answer`` (the extracted answer), ``valid``,
``invalid_reason``, ``iou``, ``box_iou``, ``inter`` / ``union`` / areas, ``boundary_f``, ``chamfer``,
``n_tokens``, ``n_objects``, ``point_hit``, ``instances`` (decoded cells / offsets / deleted / points /
box / polygons), ``pred_rle`` (the predicted mask); a refinement sample of the dataset (two turns,
``grid_offset``) adds ``proposal`` and ``points`` (the per-point counters of :mod:`getok.eval.selfcorrect`).
With ``turns > 1``, mask samples of a ``grid_offset`` codec run the self-correction protocol
(:mod:`getok.eval.selfcorrect`) and add ``turns``, ``points``, ``oracle``, ``oracle_points``; other
samples are evaluated in one turn.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .._version import __version__
from ..answers import extract_answer
from ..codecs.base import Codec, get_codec
from ..codecs.count import tokenizer_count
from ..data_builders.dataset import Dataset, read_dataset
from ..decoding import canonical_decoder_spec, get_decoder
from ..errors import ConfigError, DataError, DecodeError
from ..io import atomic_write_json, atomic_write_text, json_default
from ..samples import Sample
from ..vocab.layout import VocabLayout
from ..vocab.loading import load_model_and_processor
from .constrained import grammar_for, grammar_for_sample
from .generate import ModelGenerator, load_sample_image
from .metrics import EMPTY_CONVENTIONS
from .run_records import RECORDS_FILE, question_ious, read_records, summarize_run, summary_markdown
from .scoring import describe_sample, geometry_json, instance_masks, score_answer, truth_masks
from .selfcorrect import RefineState, SelfCorrectConfig, _centroids, account_points, match_targets, run_selfcorrect

__all__ = [
    "EvalRunConfig",
    "RUN_FILE",
    "RECORDS_FILE",
    "SUMMARY_FILE",
    "SUMMARY_MD",
    "SAMPLES_FILE",
    "evaluate",
    "evaluate_path",
    "load_eval_data",
    "read_records",
    "question_ious",
    "summarize_run",
    "summary_markdown",
]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
SUMMARY_MD = "summary.md"
SAMPLES_FILE = "samples.jsonl"

#: Settings that must match when a run is resumed (they change the records).
_RESUME_KEYS = ("model", "data", "codec", "decoder", "turns", "constrained", "max_new_tokens", "on_invalid", "oracle", "refine_prompt")


@dataclass(frozen=True)
class EvalRunConfig:
    """Settings of an evaluation run (:func:`evaluate`'s keyword arguments).

    Parameters
    ----------
    codec : str, optional
        Codec that decodes the answers (default: each sample's own).
    decoder : str
        Mask decoder spec (:func:`getok.decoding.get_decoder`), e.g. ``raster``, ``sam:checkpoint=...``.
    turns : int
        1: one answer per sample; K > 1: self-correction for ``grid_offset`` mask samples.
    constrained : bool
        Grammar-constrained generation (:mod:`getok.eval.constrained`).
    limit : int, optional
        Evaluate only the first ``limit`` samples.
    batch_size, max_new_tokens : int
    empty : {"lisa", "rela", "exclude"}
        Empty-target convention of the summary (:mod:`getok.eval.metrics`).
    boundary : bool
        Boundary F-score per record.
    on_invalid, oracle, refine_prompt
        Self-correction settings (:class:`getok.eval.selfcorrect.SelfCorrectConfig`).
    seed : int
    """

    codec: str | None = None
    decoder: str = "raster"
    turns: int = 1
    constrained: bool = False
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int = 128
    empty: str = "lisa"
    boundary: bool = True
    on_invalid: str = "keep"
    oracle: bool = True
    refine_prompt: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.codec is not None:
            object.__setattr__(self, "codec", get_codec(self.codec).spec)
        if int(self.turns) < 1:
            raise ConfigError(f"turns must be >= 1, got {self.turns}")
        if self.limit is not None and int(self.limit) < 0:
            raise ConfigError(f"limit must be >= 0, got {self.limit}")
        for name in ("batch_size", "max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.empty not in EMPTY_CONVENTIONS:
            raise ConfigError(f"empty must be one of {sorted(EMPTY_CONVENTIONS)}, got {self.empty!r}")
        if self.turns > 1:
            self.selfcorrect()  # validates on_invalid / refine_prompt

    def selfcorrect(self):
        kw = {"turns": max(int(self.turns), 2), "on_invalid": self.on_invalid, "oracle": self.oracle}
        if self.refine_prompt is not None:
            kw["refine_prompt"] = self.refine_prompt
        return SelfCorrectConfig(**kw)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ data
def load_eval_data(data, image_root=None) -> tuple[list[Sample], Path | None, str | None, dict]:
    """``(samples, image_root, data_dir, manifest)`` from a dataset directory, a :class:`Dataset` or samples."""
    if isinstance(data, (str, Path)):
        data = read_dataset(data)
    if isinstance(data, Dataset):
        return list(data.samples), Path(data.root), str(Path(data.root).resolve()), dict(data.manifest)
    samples = list(data)
    if not all(isinstance(s, Sample) for s in samples):
        raise DataError("data must be a dataset directory, a read_dataset result or a list of Sample")
    seen: set[str] = set()
    dups = [s.sample_id for s in samples if s.sample_id in seen or seen.add(s.sample_id)]
    if dups:
        raise DataError(f"sample ids must be unique (records are keyed by them); repeated: {dups[:3]}")
    return samples, (None if image_root is None else Path(image_root)), None, {}


# ------------------------------------------------------------------------------------------------ scoring
def _refine_proposal(sample: Sample, codec: Codec):
    """The proposal a two-turn ``grid_offset`` sample refines (its first assistant message), else ``None``."""
    if codec.name != "grid_offset" or len(sample.turns) < 2:
        return None
    try:
        return codec.decode(extract_answer(sample.turns[0].assistant), sample.size, "mask")
    except DecodeError as exc:
        raise DataError(f"sample {sample.sample_id}: its proposal (turn 1) does not parse: {exc}") from exc


def _score_single(sample, text, codec, decoder, image, count_tokens, boundary) -> dict:
    gts = truth_masks(sample)
    decoder.set_image(image, size=sample.size, key=sample.image_id)
    proposal = _refine_proposal(sample, codec)
    rec, geoms, _ = score_answer(
        sample, text, codec=codec, decoder=decoder, gt_masks=gts, proposal=proposal, count_tokens=count_tokens,
        boundary=boundary, prediction=text,
    )  # fmt: skip
    if proposal is not None:
        rec["proposal"] = geometry_json(proposal)
        if geoms:
            idx = match_targets(instance_masks(decoder, proposal, sample.size), gts, _centroids(proposal))
            targets = [gts[j] if j >= 0 else None for j in idx]
            state = RefineState.initial(proposal, codec.config.step)
            rec["points"] = [{"turn": 2, "refine_valid": True, **account_points(state, geoms, targets, codec.config.r)}]
    return {**describe_sample(sample), **rec, "codec": codec.spec}


def _eligible_selfcorrect(sample: Sample, codec: Codec) -> bool:
    return sample.kind == "mask" and codec.name == "grid_offset"


# ------------------------------------------------------------------------------------------------ the run
def _resume_value(key: str, value):
    """A run setting as a resume compares it: a decoder spec by its current name (a run made with
    ``proposals:...`` resumes as ``point_masks:...``, the same decoder)."""
    return canonical_decoder_spec(value) if key == "decoder" else value


def _check_resume(out: Path, info: dict, resume: bool) -> list[dict]:
    rp = out / RUN_FILE
    if not resume:
        (out / RECORDS_FILE).unlink(missing_ok=True)
        return []
    if rp.is_file():
        old = json.loads(rp.read_text())
        diff = [k for k in _RESUME_KEYS if _resume_value(k, old.get(k)) != _resume_value(k, info.get(k))]
        if diff:
            raise ConfigError(
                f"{out} holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r} vs {info.get(k)!r}' for k in diff)}); "
                "use another --out or resume=False to start over"
            )
    return read_records(out / RECORDS_FILE)


def evaluate(
    model,
    processor,
    data,
    *,
    codec=None,
    decoder="raster",
    out_dir=None,
    turns: int = 1,
    constrained: bool = False,
    limit: int | None = None,
    batch_size: int = 8,
    empty: str = "lisa",
    resume: bool = True,
    progress: bool = True,
    generate_fn=None,
    image_root=None,
    max_new_tokens: int = 128,
    boundary: bool = True,
    on_invalid: str = "keep",
    oracle: bool = True,
    refine_prompt: str | None = None,
    seed: int = 0,
    model_name: str | None = None,
) -> dict:
    """Evaluate a VLM (or any generate function) on samples; returns the summary.

    Parameters
    ----------
    model, processor
        The VLM and its processor (ignored when ``generate_fn`` is given; may then be ``None``).
    data : path, Dataset or list of Sample
        A dataset directory, a :func:`read_dataset` result or samples (relative images under ``image_root``).
    codec, decoder, turns, constrained, limit, batch_size, empty, max_new_tokens, boundary, on_invalid,
    oracle, refine_prompt, seed
        See :class:`EvalRunConfig`.
    out_dir : path, optional
        Write run.json, records.jsonl, summary.json, summary.md there (module docstring).
    resume : bool
        Skip samples already recorded in ``out_dir``.
    progress : bool
        A tqdm bar over samples.
    generate_fn : GenerateFn, optional
        Replaces the model: ``generate_fn(samples, turns_context=..., constrained=..., max_new_tokens=...)``
        → one string per sample (a scripted fake model in tests).
    image_root : path, optional
        Root of relative image paths when ``data`` is a list of samples.
    model_name : str, optional
        What ``run.json`` calls the model (default: the model's ``name_or_path``).

    Returns
    -------
    dict
        ``run`` (settings, counts, timing), ``overall``, ``per_task``, ``empty`` / ``empty_rule``, and
        ``selfcorrect`` / ``refine_points`` when present (:func:`summarize_run`).
    """

    cfg = EvalRunConfig(
        codec=codec if codec is None or isinstance(codec, str) else get_codec(codec).spec,
        decoder=decoder if isinstance(decoder, str) else getattr(decoder, "name", type(decoder).__name__),
        turns=turns, constrained=bool(constrained), limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens,
        empty=empty, boundary=boundary, on_invalid=on_invalid, oracle=oracle, refine_prompt=refine_prompt, seed=seed,
    )  # fmt: skip
    samples, root, data_dir, manifest = load_eval_data(data, image_root)
    if cfg.limit is not None:
        samples = samples[: int(cfg.limit)]
    if generate_fn is None:
        if model is None or processor is None:
            raise ConfigError("evaluate needs a model and processor, or a generate_fn")
        generate_fn = ModelGenerator(model, processor, image_root=root, batch_size=cfg.batch_size, progress=False, seed=cfg.seed)
    tokenizer = getattr(generate_fn, "tokenizer", None)
    codecs = {s.sample_id: get_codec(cfg.codec or s.codec) for s in samples}
    _preflight(samples, codecs, cfg, tokenizer)
    count_tokens = None
    if tokenizer is not None:
        def count_tokens(text: str) -> int:
            return tokenizer_count(text, tokenizer)

    dec = get_decoder(decoder, manifest=manifest)
    sc_cfg = cfg.selfcorrect() if cfg.turns > 1 else None
    if model_name is None and model is not None:
        model_name = str(getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__)
    info = {
        "getok_version": __version__,
        "model": model_name,
        "data": data_dir,
        "image_root": None if root is None else str(Path(root).resolve()),
        **{k: v for k, v in cfg.to_dict().items() if k not in ("limit",)},
        "refine_prompt": None if sc_cfg is None else sc_cfg.refine_prompt,
        "decoder_settings": dec.settings() if hasattr(dec, "settings") else {"name": getattr(dec, "name", "?")},
    }
    done: dict[str, dict] = {}
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for r in _check_resume(out, info, resume):
            done[str(r.get("id"))] = r
        atomic_write_json(out / RUN_FILE, info)
        if data_dir is None:
            atomic_write_text(
                out / SAMPLES_FILE,
                "".join(json.dumps({**s.to_dict(), "image": str(_abs_image(s, root))}) + "\n" for s in samples),
            )
    todo = [s for s in samples if s.sample_id not in done]
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(samples), initial=len(samples) - len(todo), desc="eval", unit="sample")
    new: dict[str, dict] = {}
    fh = open(out / RECORDS_FILE, "a") if out is not None else None  # noqa: SIM115 - appended per batch
    try:
        bs = cfg.batch_size
        for b0 in range(0, len(todo), bs):
            batch = todo[b0 : b0 + bs]
            images = [load_sample_image(s, root) for s in batch]
            recs = _evaluate_batch(batch, images, codecs, dec, generate_fn, cfg, sc_cfg, count_tokens)
            for r in recs:
                new[r["id"]] = r
                if fh is not None:
                    fh.write(json.dumps(r, default=json_default) + "\n")
            if fh is not None:
                fh.flush()
            if bar:
                bar.update(len(batch))
    finally:
        if fh is not None:
            fh.close()
        if bar:
            bar.close()
    elapsed = time.perf_counter() - t0
    records = [new.get(s.sample_id) or done[s.sample_id] for s in samples]
    summary = summarize_run(records, cfg.empty)
    summary["run"] = {
        **info,
        "limit": cfg.limit,
        "n_samples": len(samples),
        "n_evaluated_now": len(todo),
        "n_resumed": len(samples) - len(todo),
        "elapsed_s": round(elapsed, 3),
        "samples_per_s": round(len(todo) / elapsed, 3) if elapsed > 0 and todo else None,
    }
    if out is not None:
        atomic_write_json(out / SUMMARY_FILE, summary)
        atomic_write_text(out / SUMMARY_MD, summary_markdown(summary))
    return summary


def _abs_image(s: Sample, root) -> Path:
    p = Path(s.image)
    return (p if p.is_absolute() or root is None else Path(root) / p).resolve()


def _preflight(samples, codecs, cfg: EvalRunConfig, tokenizer) -> None:
    """Fail before generating: constrained grammars exist, the tokenizer has the codecs' tokens."""
    if tokenizer is not None:
        specs = sorted({c.spec for c in codecs.values() if c.new_tokens()})
        if specs:
            VocabLayout.from_codecs(specs).validate(tokenizer)
    if cfg.constrained:
        for s in samples:
            c = codecs[s.sample_id]
            if cfg.turns > 1 and _eligible_selfcorrect(s, c):
                grammar_for(c, "mask")
            else:
                grammar_for_sample(s, codec=c)


def _evaluate_batch(batch, images, codecs, decoder, generate_fn, cfg: EvalRunConfig, sc_cfg, count_tokens) -> list[dict]:
    sc_idx = [i for i, s in enumerate(batch) if sc_cfg is not None and _eligible_selfcorrect(s, codecs[s.sample_id])]
    one_idx = [i for i in range(len(batch)) if i not in set(sc_idx)]
    out: dict[int, dict] = {}
    if one_idx:
        ss = [batch[i] for i in one_idx]
        grammars = [grammar_for_sample(s, codec=codecs[s.sample_id]) for s in ss] if cfg.constrained else None
        budget = cfg.max_new_tokens
        if grammars is not None:  # a refinement must fit: one token per proposed cell
            need = [sum(g.refine) + 2 * len(g.refine) + 8 for g in grammars if g.refine]
            budget = max([budget, *need])
        kw = {"images": [images[i] for i in one_idx]} if isinstance(generate_fn, ModelGenerator) else {}
        texts = generate_fn(ss, turns_context=None, constrained=grammars, max_new_tokens=budget, **kw)
        if not isinstance(texts, (list, tuple)) or len(texts) != len(ss):
            raise ConfigError(f"generate_fn returned {len(texts) if hasattr(texts, '__len__') else '?'} answers for {len(ss)} samples")
        for i, text in zip(one_idx, texts):
            s = batch[i]
            out[i] = _score_single(s, text, codecs[s.sample_id], decoder, images[i], count_tokens, cfg.boundary)
    if sc_idx:
        groups: dict[str, list[int]] = {}
        for i in sc_idx:
            groups.setdefault(codecs[batch[i].sample_id].spec, []).append(i)
        for spec, idx in groups.items():
            gen = generate_fn
            if isinstance(generate_fn, ModelGenerator):
                gen = _WithImages(generate_fn, [batch[i] for i in idx], [images[i] for i in idx])
            recs = run_selfcorrect(
                [batch[i] for i in idx], gen, codec=spec, decoder=decoder, images=[images[i] for i in idx], cfg=sc_cfg,
                constrained=cfg.constrained, max_new_tokens=cfg.max_new_tokens, count_tokens=count_tokens,
                boundary=cfg.boundary,
            )  # fmt: skip
            for i, r in zip(idx, recs):
                out[i] = r
    return [out[i] for i in range(len(batch))]


class _WithImages:
    """A ModelGenerator with the batch's images already loaded (self-correction asks only the active samples)."""

    def __init__(self, gen, samples, images) -> None:
        self.gen = gen
        self.images = {s.sample_id: im for s, im in zip(samples, images)}
        self.tokenizer = gen.tokenizer

    def __call__(self, samples, **kw):
        return self.gen(samples, images=[self.images[s.sample_id] for s in samples], **kw)


def evaluate_path(model_dir, data_dir, *, dtype=None, device=None, trust_remote_code: bool = False, **kwargs) -> dict:
    """:func:`evaluate` for a model directory (loaded with :func:`getok.vocab.loading.load_model_and_processor`,
    its vocabulary layout checked) and a dataset directory."""

    model, processor = load_model_and_processor(model_dir, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    kwargs.setdefault("model_name", str(Path(model_dir).resolve()))
    return evaluate(model, processor, data_dir, **kwargs)
