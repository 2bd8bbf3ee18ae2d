"""What every study shares: the training budget, scene series, statistics, provenance and output files.

A study trains the tiny offline Qwen2.5-VL (:mod:`getok.train`) on procedural scenes with some
representation, evaluates it on held-out scenes (:mod:`getok.eval.runner`) and writes, into ``--out``:

* ``<name>.json`` — settings, per-run results, aggregated rows, and the provenance of the run: the exact
  command, seeds, package versions, machine (CPU count, load average) and wall / CPU time of each part;
* ``<name>.md`` — the tables;
* ``<name>.png`` — the plot (procedural scenes and numbers only; never a rendering of a real-dev photo).

Heavy imports (torch, transformers, TRL, matplotlib) stay inside the functions.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from getok.errors import ConfigError
from getok.io import atomic_write_json, atomic_write_text
from getok.provenance import Clock, cpu_seconds, environment, git_commit  # noqa: F401  (the studies import them from here)
from getok_lab.series import SERIES as _ALL_SERIES

__all__ = [
    "Budget",
    "SceneSeries",
    "Clock",
    "cpu_seconds",
    "mean_ci",
    "SERIES",
    "question_scores",
    "crossed_ci",
    "environment",
    "command_line",
    "write_outputs",
    "sft_config",
    "train_sft",
    "load_trained",
    "evaluate_model",
    "oracle_records",
    "target_tokens_per_object",
    "fmt",
    "fmt_ci",
]

log = logging.getLogger("getok_lab.studies")


# ---------------------------------------------------------------------------------------------- configs
@dataclass
class Budget:
    """The SFT budget of one training run (identical for every arm of a study).

    Attributes
    ----------
    steps : int
        Optimiser steps.
    batch_size : int
        Samples per step (one device).
    lr : float
        Peak learning rate (AdamW, cosine schedule after ``warmup_ratio`` of the steps).
    scheduler : str
    warmup_ratio : float
    max_length : int
        Longest training sample in tokens (image tokens included); longer ones are dropped and counted.
    torch_threads, dataloader_workers : int
        CPU settings (one intra-op thread and one worker: the fastest on 2 cores, ``docs/training.md``).
    vision_warmup : int, optional
        Vision warm-up steps of the tiny model before SFT (``vision_warmup.steps``; None: the SFT default,
        0: none). Every arm gets the same warm-up (it reads the scenes, not the arm's vocabulary, except
        that a vocabulary without grid tokens warms up on appearance only: docs/tiny_grounding.md).
    """

    steps: int = 200
    batch_size: int = 8
    lr: float = 2e-3
    scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    max_length: int = 448
    torch_threads: int = 1
    dataloader_workers: int = 1
    vision_warmup: int | None = None

    def __post_init__(self):
        from getok.config import check_numbers

        check_numbers(self, "budget")  # no NaN / inf (lr, warmup_ratio)
        for name in ("steps", "batch_size", "max_length", "torch_threads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"budget.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"budget.lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"budget.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.vision_warmup is not None and self.vision_warmup < 0:
            raise ConfigError(f"budget.vision_warmup must be >= 0, got {self.vision_warmup}")
        if self.dataloader_workers < 0:
            raise ConfigError(f"budget.dataloader_workers must be >= 0, got {self.dataloader_workers}")

    @property
    def samples(self) -> int:
        """Training samples drawn for the run (one pass: ``steps * batch_size``)."""
        return int(self.steps) * int(self.batch_size)


#: The scene series of the studies (:data:`getok_lab.series.SERIES`: ``dev`` for decisions, ``test`` for the
#: reported tables), named in every result file.
SERIES = {k: _ALL_SERIES[k] for k in ("train", "dev", "test")}


@dataclass
class SceneSeries:
    """Procedural scenes for training and held-out evaluation (:mod:`getok.data_builders.scenes`).

    Attributes
    ----------
    n_train, train_seed : int
        Training scenes (series ``train_seed``).
    n_eval : int
        Held-out scenes.
    eval_split : {"test", "dev"}
        Which fixed held-out series (:data:`SERIES`): ``test`` for reported tables, ``dev`` for decisions.
    eval_seed : int, optional
        The held-out series itself; ``None`` (default) takes ``SERIES[eval_split]``. Must differ from
        ``train_seed``.
    size : int
        Square scene side in pixels (112: 64 image tokens for the default tiny model).
    min_objects, max_objects : int
    """

    n_train: int = 800
    train_seed: int = 0
    n_eval: int = 40
    eval_split: str = "test"
    eval_seed: int | None = None
    size: int = 112
    min_objects: int = 1
    max_objects: int = 3

    def __post_init__(self):
        if self.eval_split not in ("dev", "test"):
            raise ConfigError(f"scenes.eval_split must be 'dev' or 'test', got {self.eval_split!r}")
        if self.eval_seed is None:
            self.eval_seed = SERIES[self.eval_split]
        for name in ("n_train", "n_eval", "size", "min_objects", "max_objects"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"scenes.{name} must be >= 1, got {getattr(self, name)}")
        if self.min_objects > self.max_objects:
            raise ConfigError(
                f"scenes.min_objects ({self.min_objects}) must be <= scenes.max_objects ({self.max_objects})"
            )
        if self.train_seed == self.eval_seed:
            raise ConfigError("scenes.eval_seed must differ from scenes.train_seed (held-out scenes)")

    def scene_config(self):
        from getok.data_builders.scenes import SceneConfig

        return SceneConfig(size=(self.size, self.size), min_objects=self.min_objects, max_objects=self.max_objects)

    def source(self, split: str) -> dict:
        """The manifest ``sources`` record of a split (lets the exact decoder rebuild a scene's label map)."""
        n, seed = (self.n_train, self.train_seed) if split == "train" else (self.n_eval, self.eval_seed)
        return {"loader": "scenes", "n": int(n), "seed": int(seed), "config": self.scene_config().to_dict()}

    def generate(self, split: str):
        """The scenes of ``split`` (``train`` or ``eval``), a list of AnnotatedImage."""
        from getok.data_builders.scenes import generate_scenes

        n, seed = (self.n_train, self.train_seed) if split == "train" else (self.n_eval, self.eval_seed)
        return generate_scenes(n, seed, self.scene_config())


# ---------------------------------------------------------------------------------------------- time, stats
def mean_ci(values: Sequence[float | None], level: float = 0.95) -> dict:
    """Mean and Student-t confidence interval of per-seed values (``None`` values are left out).

    Returns
    -------
    dict
        ``mean``, ``half`` (half-width; ``None`` with fewer than two values), ``lo``, ``hi``, ``n``,
        ``values``. With 2 seeds the t quantile is 12.7: intervals are wide, and say so.

    >>> r = mean_ci([0.2, 0.4]); round(r["mean"], 3), round(r["half"], 3)
    (0.3, 1.271)
    """
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    out: dict = {"n": len(vals), "values": vals, "mean": None, "half": None, "lo": None, "hi": None}
    if not vals:
        return out
    m = float(np.mean(vals))
    out["mean"] = m
    if len(vals) >= 2:
        from scipy.stats import t

        sd = float(np.std(vals, ddof=1))
        half = float(t.ppf(0.5 + level / 2, len(vals) - 1) * sd / math.sqrt(len(vals)))
        out.update(half=half, lo=m - half, hi=m + half)
    return out


def question_scores(records: Sequence[dict], tasks: Sequence[str] | None = None, turn: int | None = None) -> dict:
    """``{sample id: IoU}`` of one run's evaluation records (LISA's convention; ``turn``: a self-correction
    turn, 1-based, else the final one), for the questions of ``tasks`` (all when ``None``)."""
    from getok.eval.metrics import sample_ious

    recs = []
    for r in records:
        if tasks is not None and r.get("task") not in tasks:
            continue
        if turn is not None and r.get("turns"):
            r = {**r["turns"][min(turn, len(r["turns"])) - 1], "id": r["id"]}
        recs.append(r)
    return {str(r["id"]): float(v) for r, v in zip(recs, sample_ious(recs))} if recs else {}


def crossed_ci(
    per_seed: Sequence[dict], level: float = 0.95, seed: int = 0, questions: Sequence[str] | None = None,
    missing: float | None = None,
) -> dict:  # fmt: skip
    """Mean IoU over seeds x questions with a bootstrap interval resampling both
    (:func:`getok.eval.stats.bootstrap_crossed`), from one :func:`question_scores` dict per seed. A question
    a seed's run did not score counts as missing for that seed only — or, with ``questions`` (the question set
    every arm of a study is scored on) and ``missing``, as the score ``missing`` (0: a question this arm could
    not be asked, e.g. an object too small for its representation, is wrong for it, not dropped).

    Returns ``{"mean", "lo", "hi", "half": None, "n_seeds", "n_questions", "method"}`` (:func:`fmt_ci` prints
    ``mean [lo, hi]``)."""
    from getok.eval.stats import bootstrap_crossed

    ids = sorted(questions) if questions is not None else sorted({q for d in per_seed for q in d})
    fill = np.nan if missing is None else float(missing)
    out = {"mean": None, "lo": None, "hi": None, "half": None, "n_seeds": len(per_seed), "n_questions": len(ids),
           "method": "bootstrap over seeds x questions"}  # fmt: skip
    if not ids or not per_seed:
        return out
    m = np.array([[d.get(q, fill) for q in ids] for d in per_seed], dtype=float)
    r = bootstrap_crossed(m, level=level, seed=seed)
    out.update(mean=r["mean"], lo=r["lo"], hi=r["hi"])
    return out


def fmt(v, nd: int = 3) -> str:
    """A number for a table (``–`` for missing)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}"


def fmt_ci(ci: dict, nd: int = 3) -> str:
    """``mean ± half`` (Student-t over seeds), ``mean [lo, hi]`` (a bootstrap interval: :func:`crossed_ci`), or
    the mean alone with one seed."""
    if ci.get("mean") is None:
        return "–"
    if ci.get("half") is None and ci.get("lo") is not None:
        return f"{ci['mean']:.{nd}f} [{ci['lo']:.{nd}f}, {ci['hi']:.{nd}f}]"
    if ci.get("half") is None:
        return fmt(ci["mean"], nd)
    return f"{ci['mean']:.{nd}f} ± {ci['half']:.{nd}f}"


# ---------------------------------------------------------------------------------------------- provenance
def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (``getok study ...``), shell-quoted."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["getok", *args])


def write_outputs(out_dir: str | Path, name: str, result: dict, markdown: str, figure=None) -> dict:
    """Write ``<name>.json``, ``<name>.md`` and (given a matplotlib figure) ``<name>.png`` atomically.

    Returns
    -------
    dict
        ``{"json": path, "md": path, "png": path or None}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        result.setdefault("provenance", {})["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    paths = {"json": str(out / f"{name}.json"), "md": str(out / f"{name}.md"), "png": None}
    atomic_write_json(out / f"{name}.json", result)
    atomic_write_text(out / f"{name}.md", markdown if markdown.endswith("\n") else markdown + "\n")
    if figure is not None:
        import tempfile

        import matplotlib.pyplot as plt

        fd, tmp = tempfile.mkstemp(suffix=".png", dir=out)
        os.close(fd)
        try:
            figure.savefig(tmp, dpi=110, bbox_inches="tight")
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / f"{name}.png")
        finally:
            plt.close(figure)
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths["png"] = str(out / f"{name}.png")
    return paths




# ---------------------------------------------------------------------------------------------- training
def sft_config(
    budget: Budget,
    codecs: Sequence[str],
    pools: Sequence[tuple[str | Path, float]],
    output_dir: str | Path,
    *,
    seed: int = 0,
    init: str = "2d",
    model_path: str = "tiny",
    image_size: int = 112,
):
    """An :class:`~getok.train.config.SFTRunConfig` for a study arm.

    Parameters
    ----------
    budget : Budget
    codecs : codec specs whose tokens the model gets (``vocab.codecs``).
    pools : ``(dataset_dir, weight)`` pairs; ``budget.samples`` samples are drawn from them by weight.
    output_dir : the run directory.
    seed : int
        The run's seed: tiny model weights, new-row init, data draw and order.
    init : str
        Row init of the new tokens (``2d``, ``random``, ``mean``, ``text``).
    model_path : str
        ``tiny`` or a model directory that already has ``codecs``' tokens (validated, not re-added).
    image_size : int
        Scene side; ``model.max_pixels`` is set to its square.
    """
    from getok.train.config import MixtureEntry, load_sft_config

    cfg = load_sft_config(
        None,
        [
            f"output_dir={output_dir}",
            f"seed={int(seed)}",
            f"model.tiny_seed={int(seed)}",
            f"model.max_pixels={int(image_size) ** 2}",
            f"vocab.init={init}",
            f"vocab.init_seed={int(seed)}",
            f"train.max_steps={int(budget.steps)}",
            f"train.batch_size={int(budget.batch_size)}",
            f"train.lr={float(budget.lr)}",
            f"train.scheduler={budget.scheduler}",
            f"train.warmup_ratio={float(budget.warmup_ratio)}",
            f"train.torch_threads={int(budget.torch_threads)}",
            f"train.dataloader_workers={int(budget.dataloader_workers)}",
            f"train.save_steps={int(budget.steps) + 1}",
            "train.save_total_limit=1",
            f"train.logging_steps={max(1, min(10, int(budget.steps) // 4))}",
            "train.resume=never",
            f"data.num_samples={budget.samples}",
            f"data.max_length={int(budget.max_length)}",
            "eval.enabled=false",
            *([f"vision_warmup.steps={int(budget.vision_warmup)}"] if budget.vision_warmup is not None else []),
        ],
    )
    cfg.model.path = str(model_path)
    cfg.vocab.codecs = list(codecs)
    cfg.vocab.__post_init__()
    cfg.data.mixture = [MixtureEntry(type="dataset", path=str(p), weight=float(w), name=Path(p).name) for p, w in pools]
    cfg.check()
    return cfg


def train_sft(cfg, *, progress: bool = True) -> dict:
    """Run :func:`getok.train.run_sft` (a fresh run: an existing output directory is replaced).

    Returns the run summary plus ``clock`` (wall / CPU seconds of the whole call).
    """
    import shutil

    from getok.train.sft import run_sft

    out = Path(cfg.output_dir)
    if out.exists():
        shutil.rmtree(out)
    with Clock() as c:
        summary = run_sft(cfg, progress=progress)
    summary["clock"] = {"wall_s": round(c.wall, 1), "cpu_s": round(c.cpu, 1)}
    return summary


def load_trained(model_dir: str | Path):
    """``(model, processor)`` of a trained full fine-tuning directory, in eval mode."""
    from getok.vocab.loading import load_model_and_processor

    model, processor = load_model_and_processor(model_dir)
    model.eval()
    return model, processor


def evaluate_model(
    model,
    processor,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    decoder: str,
    turns: int = 1,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
    model_name: str | None = None,
) -> dict:
    """:func:`getok.eval.runner.evaluate` from scratch into ``out_dir``; adds ``clock`` and ``ms_per_sample``."""
    from getok.eval.runner import evaluate

    with Clock() as c:
        summary = evaluate(
            model, processor, str(data_dir), decoder=decoder, out_dir=str(out_dir), turns=int(turns),
            batch_size=int(batch_size), max_new_tokens=int(max_new_tokens), resume=False, progress=progress,
            seed=int(seed), boundary=False, model_name=model_name,
        )  # fmt: skip
    n = int(summary["run"]["n_samples"]) or 1
    summary["clock"] = {"wall_s": round(c.wall, 1), "cpu_s": round(c.cpu, 1)}
    summary["ms_per_sample"] = round(1000.0 * c.wall / n, 2)
    return summary


def oracle_records(data_dir: str | Path, out_dir: str | Path, *, decoder: str) -> list[dict]:
    """Evaluation records of the reference answers themselves: the representation's ceiling on this data.

    The target text of every sample is "generated" and scored like a model's answer (same decoder, same
    metrics), so the records say what a perfect model of this representation would reach.
    """
    from getok.eval.runner import RECORDS_FILE, evaluate, read_records

    def targets(samples, **kw):
        return [s.answer for s in samples]

    evaluate(None, None, str(data_dir), decoder=decoder, generate_fn=targets, out_dir=str(out_dir), progress=False,
             boundary=False, resume=False)  # fmt: skip
    return read_records(Path(out_dir) / RECORDS_FILE)


def target_tokens_per_object(samples, tokenizer) -> float | None:
    """Mean tokens per target instance of the reference answers (the tokenizer's ids, final turn only)."""
    from getok.answers import extract_answer
    from getok.codecs.count import tokenizer_count

    tok = tot = 0
    for s in samples:
        n = len(s.truth.get("masks") or [])
        if not n:
            continue
        tok += tokenizer_count(extract_answer(s.answer), tokenizer)
        tot += n
    return tok / tot if tot else None
