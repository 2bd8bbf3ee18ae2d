"""Study: change the grid of a trained model (``n x n`` → ``m x m``) and carry its learned rows over.

``getok study resize-vocab`` trains the tiny model with ``grid:n=<n>`` tokens on the query-conditioned
tasks (``point>mask``, ``box>mask``: the ones it learns in minutes), then for every direction ``n → m``
(default 8 → 16 and 16 → 8) and every init of the new cell rows — ``interp`` (bilinear interpolation of
the learned cell rows, input and output: :func:`getok.vocab.resize_grid`), ``mean`` (every new row the
mean of the vocabulary, plus a little noise) and ``random`` (the model's own init) — it evaluates the
resized model on held-out scenes written in the new grid **before any further training** (step 0), and
then along a learning curve: one fine-tune at ``m`` saves a checkpoint every ``curve_every`` steps, each
evaluated afterwards (default 15, 30, 45, 60 of one 60-step cosine run). References beside every number:
the source model at its own grid, a fresh model trained at ``m`` on the same schedule (same checkpoints:
what the fine-tune reaches without the carried-over rows), and two answers without a model, scored through
the same decoder: the always-centre cell (the floor) and the reference answer (the ceiling).

Statistics (:mod:`getok.eval.stats`): every mIoU is the mean over seeds x the held-out questions of the
grid, with a 95 % bootstrap interval resampling seeds and questions together (:func:`.common.crossed_ci`;
each run's per-question IoUs are kept in the JSON). Arms are compared on the same questions, pooled over
seeds (:func:`~getok.eval.stats.paired_comparison`: difference with its interval, better / worse counts,
sign-test p), with a second interval for the difference that resamples seeds and questions together:
``interp`` vs ``mean`` and vs ``random`` before the fine-tune and after it, ``interp`` vs the fresh model
at every point of the curve.

What this can show on a CPU: whether the resized token rows still *mean* their positions (the question
is written in the new tokens, so a model that reads ``<g16_r09_c05>`` as "near ``<g8_r04_c02>``" answers
with nearby cells at once), and how much of the learned skill a short fine-tune recovers per init.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from getok.config import config_to_dict, load_config
from getok.decoding.base import canonical_decoder_spec
from getok.errors import ConfigError
from getok.eval.baselines import BASELINES, BaselineGenerator
from getok.eval.run_records import RECORDS_FILE, read_records
from getok.eval.stats import bootstrap_crossed, format_diff, format_p, paired_comparison

from .common import (
    SERIES,
    Budget,
    Clock,
    SceneSeries,
    command_line,
    crossed_ci,
    environment,
    evaluate_model,
    fmt,
    fmt_ci,
    load_trained,
    question_scores,
    sft_config,
    train_sft,
    write_outputs,
)

__all__ = ["ResizeConfig", "load_resize_config", "run_resize_vocab", "resize_markdown", "curve_steps", "INITS"]

log = logging.getLogger("getok_lab.studies.resize_vocab")

NAME = "resize-vocab"
INITS = ("interp", "mean", "random")
METRICS = ("gIoU", "Acc@0.5", "Acc@0.8", "invalid_rate")
#: Baselines scored beside every number (:data:`getok.eval.baselines.BASELINES`): the floor and the ceiling.
DEFAULT_BASELINES = ("centre", "reference")


def _default_finetune() -> Budget:
    return Budget(steps=60)


def _default_source() -> Budget:
    return Budget(steps=400)


@dataclass
class ResizeConfig:
    """Settings of ``getok study resize-vocab`` (YAML: ``configs/studies/resize-vocab.yaml``).

    Attributes
    ----------
    directions : list of [n, m]
        Resizes to run; every ``n`` gets a source model.
    inits : list of str
        Inits of the new cell rows: ``interp`` and any registered init (``mean``, ``random``, ``2d``, ``text``).
        The paired comparisons set ``interp`` (else the first init) against the others.
    source_init : str
        Row init when the source model gets its ``n``-grid tokens.
    tasks, task_weights : training / evaluation tasks and their shares.
    seeds : list of int
        One source model, fine-tune and fresh model per seed (model weights, new-row init, data draw / order).
    budget : Budget
        Training of each source model.
    finetune : Budget
        The fine-tune after resizing (and the fresh model's training: the same schedule).
    curve_every : int
        Learning curve: the fine-tune (and the fresh model) saves a checkpoint every ``curve_every`` steps and
        each is evaluated, plus the final step (default 15, 30, 45, 60 of one cosine run of 60 steps).
    scratch_baseline : bool
        Also train a fresh model at ``m`` on the fine-tune's schedule.
    baselines : list of str
        Answers without a model, scored through the same decoder at every grid (``centre``: the floor,
        ``reference``: the ceiling; :data:`getok.eval.baselines.BASELINES`).
    scenes : SceneSeries
    decoder : str
        Mask decoder (``n`` follows each grid).
    eval_batch_size : int
    work_dir : str
    """

    directions: list[list[int]] = field(default_factory=lambda: [[8, 16], [16, 8]])
    inits: list[str] = field(default_factory=lambda: list(INITS))
    source_init: str = "2d"
    tasks: list[str] = field(default_factory=lambda: ["point>mask", "box>mask"])
    task_weights: list[float] = field(default_factory=lambda: [0.5, 0.5])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    budget: Budget = field(default_factory=_default_source)
    finetune: Budget = field(default_factory=_default_finetune)
    curve_every: int = 15
    scratch_baseline: bool = True
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    scenes: SceneSeries = field(default_factory=SceneSeries)
    decoder: str = "point_masks:proposer=exact"
    eval_batch_size: int = 16
    work_dir: str = "runs/studies/resize-vocab"

    def __post_init__(self):
        from getok.vocab.init import list_inits

        if not self.directions:
            raise ConfigError("directions must list at least one [n, m] pair")
        for d in self.directions:
            if len(d) != 2 or min(d) < 1 or d[0] == d[1]:
                raise ConfigError(f"directions: each entry must be [n, m] with n != m >= 1, got {d}")
        known = set(list_inits()) | {"interp"}
        bad = [i for i in self.inits if i not in known]
        if bad or not self.inits or len(set(self.inits)) != len(self.inits):
            raise ConfigError(f"inits must be a non-empty subset of {sorted(known)}, got {self.inits}")
        if len(self.task_weights) != len(self.tasks) or min(self.task_weights, default=0) <= 0:
            raise ConfigError("task_weights must give one positive weight per task")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if int(self.curve_every) < 1:
            raise ConfigError(f"curve_every must be >= 1, got {self.curve_every}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ConfigError(f"baselines must be a subset of {sorted(BASELINES)}, got {self.baselines}")


FAST_OVERRIDES = [
    "budget.steps=3", "budget.batch_size=2", "budget.dataloader_workers=0", "budget.vision_warmup=2",
    "finetune.steps=4", "finetune.vision_warmup=2", "finetune.batch_size=2", "finetune.dataloader_workers=0",
    "curve_every=1", "scenes.n_train=6", "scenes.n_eval=2", "seeds=[0]", "directions=[[4,8]]", "eval_batch_size=8",
]  # fmt: skip


def load_resize_config(path=None, overrides=None, *, fast: bool = False) -> ResizeConfig:
    """Defaults ← YAML ← (``--fast``) ← ``a.b=c`` overrides, validated."""
    return load_config(ResizeConfig, path, (FAST_OVERRIDES if fast else []) + list(overrides or []))


def curve_steps(cfg: ResizeConfig) -> list[int]:
    """The fine-tune steps of the learning curve: every ``curve_every`` steps, and the last one.

    >>> curve_steps(ResizeConfig())
    [15, 30, 45, 60]
    """
    k, total = int(cfg.curve_every), int(cfg.finetune.steps)
    return sorted({*range(k, total, k), total})


# ---------------------------------------------------------------------------------------------- pieces
def _spec(n: int) -> str:
    return f"grid:n={int(n)}"


def _decoder(cfg: ResizeConfig, n: int) -> str:
    base = ",".join(p for p in cfg.decoder.split(",") if not p.startswith("n="))
    return f"{base},n={int(n)}" if canonical_decoder_spec(base).startswith("point_masks") else base


def _headline(summary: dict, tasks: list[str], records: list[dict]) -> dict:
    """One evaluation: its metrics, per task, and the per-question IoUs (sample id → IoU) the intervals use."""
    out = {k: summary["overall"].get(k) for k in METRICS}
    out["n"] = summary["overall"].get("n")
    out["per_task"] = {t: {k: (summary.get("per_task", {}).get(t) or {}).get(k) for k in METRICS} for t in tasks}
    out["ms_per_sample"] = summary.get("ms_per_sample")
    out["question_iou"] = question_scores(records, tasks)
    return out


def _data(cfg: ResizeConfig, n: int, root: Path, train_scenes, eval_scenes) -> dict:
    from .data import task_samples, write_pool

    pools = []
    wsum = sum(cfg.task_weights)
    for task, w in zip(cfg.tasks, cfg.task_weights):
        s = task_samples(train_scenes, _spec(n), [task])
        pools.append(
            (write_pool(s, root / f"train-n{n}-{task.replace('>', '2')}", [cfg.scenes.source("train")]), w / wsum)
        )
    ev = task_samples(eval_scenes, _spec(n), cfg.tasks, seed=cfg.scenes.eval_seed)
    return {
        "pools": pools,
        "eval_dir": write_pool(ev, root / f"eval-n{n}", [cfg.scenes.source("eval")]),
        "samples": list(ev),
    }


def _question_set(data: dict, tasks: list[str]) -> dict:
    """The held-out questions of one grid, named in the result (every arm at this grid answers all of them)."""
    by_task = {t: sorted(str(s.sample_id) for s in data["samples"] if s.task == t) for t in tasks}
    return {"eval_dir": str(data["eval_dir"]), "n": len(data["samples"]), "by_task": by_task,
            "ids": sorted(str(s.sample_id) for s in data["samples"])}  # fmt: skip


def _evaluate_dir(cfg: ResizeConfig, model_dir, data: dict, n: int, out: Path, seed: int, name: str) -> dict:
    model, processor = load_trained(model_dir)
    s = evaluate_model(model, processor, data["eval_dir"], out, decoder=_decoder(cfg, n), max_new_tokens=8,
                       batch_size=cfg.eval_batch_size, seed=seed, model_name=name)  # fmt: skip
    del model
    return {**_headline(s, cfg.tasks, read_records(Path(out) / RECORDS_FILE)), "eval_clock": s["clock"]}


def _evaluate_baseline(cfg: ResizeConfig, name: str, data: dict, n: int, out: Path) -> dict:
    """A model-free answer (:class:`~getok.eval.baselines.BaselineGenerator`) scored like a model's."""
    from getok.eval.runner import evaluate

    gen = BaselineGenerator(name, samples=data["samples"], seed=0)
    s = evaluate(None, None, str(data["eval_dir"]), decoder=_decoder(cfg, n), generate_fn=gen, out_dir=str(out),
                 progress=False, boundary=False, resume=False, model_name=f"baseline {name}")  # fmt: skip
    return {**_headline(s, cfg.tasks, read_records(Path(out) / RECORDS_FILE)), "baseline": BASELINES[name]}


def _resize_and_save(src_final, n: int, m: int, init: str, seed: int, out: Path) -> dict:
    """Load the source model, resize its grid to ``m`` with ``init``, save it (a model directory)."""
    from getok.vocab import resize_grid
    from getok.vocab.add_tokens import save_with_layout
    from getok.vocab.layout import VocabLayout
    from getok.vocab.loading import load_model_and_processor

    model, processor = load_model_and_processor(src_final)
    layout = VocabLayout.load(src_final).with_ids(processor.tokenizer)
    with Clock() as c:
        processor, new_layout = resize_grid(model, processor, layout, int(m), init=init, seed=int(seed), from_n=int(n))
    if out.exists():
        shutil.rmtree(out)
    save_with_layout(model, processor, new_layout, out)
    return {"resize_s": round(c.wall, 2), "codecs": list(new_layout.codecs), "tokens": len(new_layout.tokens)}


def _finetune_curve(cfg: ResizeConfig, data: dict, m: int, d: Path, seed: int, name: str, progress: bool,
                    model_path: str = "tiny") -> tuple[list[dict], dict]:  # fmt: skip
    """Train ``cfg.finetune`` at grid ``m`` from ``model_path`` (``tiny``: a fresh model), saving a checkpoint
    at every :func:`curve_steps` point; evaluate each (then delete it; the final model stays).

    Returns the curve (one evaluation per point, with ``step``) and the training summary."""
    sc = sft_config(cfg.finetune, [_spec(m)], data["pools"], d / "finetune", seed=seed, init=cfg.source_init,
                    model_path=str(model_path), image_size=cfg.scenes.size)  # fmt: skip
    sc.train.save_steps = int(cfg.curve_every)
    sc.train.save_total_limit = None  # keep every checkpoint until it is evaluated
    log.info("seed %d: %s: training %d steps at grid %d", seed, name, cfg.finetune.steps, m)
    s = train_sft(sc, progress=progress)
    points = []
    for k in curve_steps(cfg):
        ckpt = Path(s["final"]) if k == int(cfg.finetune.steps) else Path(sc.output_dir) / f"checkpoint-{k}"
        ev = _evaluate_dir(cfg, ckpt, data, m, d / f"eval-step{k}", seed, f"{name} step {k}")
        points.append({"step": k, **ev})
    for ckpt in Path(sc.output_dir).glob("checkpoint-*"):
        shutil.rmtree(ckpt, ignore_errors=True)  # ~40 MB each with the optimiser state; the records stay
    return points, s


# ---------------------------------------------------------------------------------------------- the study
def run_resize_vocab(
    cfg: ResizeConfig, out_dir: str | Path, *, progress: bool = True, argv: list[str] | None = None
) -> dict:
    """Run the study; writes ``resize-vocab.{json,md,png}`` into ``out_dir`` and returns the result."""
    total = Clock()
    root = Path(cfg.work_dir)
    train_scenes, eval_scenes = cfg.scenes.generate("train"), cfg.scenes.generate("eval")
    grids = sorted({int(x) for d in cfg.directions for x in d})
    data = {n: _data(cfg, n, root / "data", train_scenes, eval_scenes) for n in grids}
    result: dict = {
        "study": NAME,
        "config": config_to_dict(cfg),
        "seeds": list(cfg.seeds),
        "eval": {
            "split": cfg.scenes.eval_split,
            "series": cfg.scenes.eval_seed,
            "scenes": cfg.scenes.n_eval,
            "tasks": list(cfg.tasks),
            "series_names": dict(SERIES),
        },
        "questions": {str(n): _question_set(data[n], cfg.tasks) for n in grids},
        "curve_steps": [0, *curve_steps(cfg)],
        "provenance": {"command": command_line(argv), "seeds": list(cfg.seeds), "environment": environment()},
        "baselines": {
            str(n): {b: _evaluate_baseline(cfg, b, data[n], n, root / "baselines" / f"n{n}-{b}") for b in cfg.baselines}
            for n in grids
        },
        "runs": [],
    }
    for seed in cfg.seeds:
        sources = {}
        for n in sorted({int(d[0]) for d in cfg.directions}):
            d = root / f"seed{seed}" / f"source-n{n}"
            cfg_n = sft_config(cfg.budget, [_spec(n)], data[n]["pools"], d, seed=seed, init=cfg.source_init,
                               image_size=cfg.scenes.size)  # fmt: skip
            log.info("seed %d: training the %d-grid source model (%d steps)", seed, n, cfg.budget.steps)
            s = train_sft(cfg_n, progress=progress)
            sources[n] = s["final"]
            ev = _evaluate_dir(cfg, s["final"], data[n], n, d / "eval", seed, f"source n={n}")
            result["runs"].append({"seed": seed, "kind": "source", "n": n, "m": n, "init": cfg.source_init,
                                   "train_wall_s": s["train"]["train_wall_s"],
                                   "train_cpu_s": s["train"].get("train_cpu_s"), "eval": ev})  # fmt: skip
        if cfg.scratch_baseline:
            for m in sorted({int(d[1]) for d in cfg.directions}):
                curve, s = _finetune_curve(cfg, data[m], m, root / f"seed{seed}" / f"fresh-m{m}", seed,
                                           f"fresh m={m}", progress)  # fmt: skip
                result["runs"].append({"seed": seed, "kind": "scratch", "n": m, "m": m, "init": cfg.source_init,
                                       "train_wall_s": s["train"]["train_wall_s"],
                                       "train_cpu_s": s["train"].get("train_cpu_s"), "curve": curve})  # fmt: skip
        for n, m in cfg.directions:
            n, m = int(n), int(m)
            for init in cfg.inits:
                d = root / f"seed{seed}" / f"n{n}-to-m{m}-{init}"
                info = _resize_and_save(sources[n], n, m, init, seed, d / "resized")
                name = f"{n}->{m} {init}"
                before = _evaluate_dir(cfg, d / "resized", data[m], m, d / "eval-step0", seed, f"{name} step 0")
                curve, s = _finetune_curve(cfg, data[m], m, d, seed, name, progress, model_path=str(d / "resized"))
                result["runs"].append({"seed": seed, "kind": "resize", "n": n, "m": m, "init": init, **info,
                                       "curve": [{"step": 0, **before}, *curve],
                                       "finetune_wall_s": s["train"]["train_wall_s"],
                                       "finetune_cpu_s": s["train"].get("train_cpu_s")})  # fmt: skip
    result["rows"] = _rows(result, cfg)
    result["comparisons"] = _comparisons(result, cfg)
    result["provenance"]["clock"] = total.stop()
    result["outputs"] = write_outputs(out_dir, NAME, result, resize_markdown(result), _plot(result))
    return result


# ---------------------------------------------------------------------------------------------- statistics
def _seed_mean(values) -> dict:
    """The mean of per-seed values (no interval: a few bounded values do not carry a Student-t one)."""
    v = [float(x) for x in values if x is not None]
    return {"mean": float(np.mean(v)) if v else None, "values": v}


def _aggregate(evals: list[dict], qset: dict) -> dict:
    """One arm at one point, over seeds: mIoU over seeds x questions with its crossed bootstrap interval (also
    per task); the other metrics as per-seed means."""
    out = {"gIoU": crossed_ci([e["question_iou"] for e in evals], questions=qset["ids"])}
    out["per_task"] = {t: crossed_ci([e["question_iou"] for e in evals], questions=ids)
                       for t, ids in qset["by_task"].items()}  # fmt: skip
    out.update({k: _seed_mean(e[k] for e in evals) for k in METRICS if k != "gIoU"})
    return out


def _rows(result: dict, cfg: ResizeConfig) -> list[dict]:
    """Aggregate over seeds: one row per (kind, n, m, init), each curve point aggregated; then the baselines."""
    runs = result["runs"]
    keys = []
    for r in runs:
        k = (r["kind"], r["n"], r["m"], r["init"])
        if k not in keys:
            keys.append(k)
    rows = []
    for k in keys:
        rs = [r for r in runs if (r["kind"], r["n"], r["m"], r["init"]) == k]
        qset = result["questions"][str(k[2])]
        row = {"kind": k[0], "n": k[1], "m": k[2], "init": k[3], "seeds": [r["seed"] for r in rs]}
        if "curve" in rs[0]:
            row["curve"] = [{"step": p["step"], **_aggregate([r["curve"][i] for r in rs], qset)}
                            for i, p in enumerate(rs[0]["curve"])]  # fmt: skip
        else:
            row["eval"] = _aggregate([r["eval"] for r in rs], qset)
        rows.append(row)
    for g, bs in result["baselines"].items():
        for b, ev in bs.items():
            rows.append({"kind": "baseline", "init": b, "n": int(g), "m": int(g), "seeds": [],
                         "eval": _aggregate([ev], result["questions"][g])})  # fmt: skip
    return rows


def _point(run: dict, step: int) -> dict | None:
    return next((p for p in run.get("curve", []) if p["step"] == step), None)


def _compare(result: dict, a: dict, b: dict, step: int, seeds: list[int]) -> dict | None:
    """Arm ``a`` vs arm ``b`` (``{"kind", "init", "n", "m"}``) at ``step`` on the same questions, over seeds.

    ``diff`` = mean of ``a - b`` over the (seed, question) pairs both scored, its bootstrap interval over the
    pairs, better / worse / same counts and the sign test (:func:`~getok.eval.stats.paired_comparison`);
    ``crossed``: the interval of the same difference resampling seeds and questions together."""

    def scores(arm, seed):
        r = next((r for r in result["runs"] if r["seed"] == seed and r["kind"] == arm["kind"] and r["m"] == arm["m"]
                  and (arm["kind"] == "scratch" or (r["n"], r["init"]) == (arm["n"], arm["init"]))), None)  # fmt: skip
        p = _point(r, step) if r else None
        return p["question_iou"] if p else None

    qa, qb = [scores(a, s) for s in seeds], [scores(b, s) for s in seeds]
    if any(q is None for q in qa + qb):
        return None
    ids = sorted(set().union(*[set(x) & set(y) for x, y in zip(qa, qb)]))
    xa, xb = [], []
    diff = np.full((len(seeds), len(ids)), np.nan)
    for i, (x, y) in enumerate(zip(qa, qb)):
        for j, q in enumerate(ids):
            if q in x and q in y:
                xa.append(x[q])
                xb.append(y[q])
                diff[i, j] = x[q] - y[q]
    c = paired_comparison(xb, xa)  # "after" = a: diff = a - b, improved = a better
    cr = bootstrap_crossed(diff) if ids else {"lo": None, "hi": None}
    return {"n": c["n"], "n_seeds": len(seeds), "n_questions": len(ids), "mean_a": c["after"], "mean_b": c["before"],
            "diff": c["diff"], "lo": c["lo"], "hi": c["hi"], "better": c["improved"], "worse": c["worse"],
            "same": c["same"], "p": c["p"], "significant": c["significant"],
            "crossed": {"lo": cr["lo"], "hi": cr["hi"], "method": "bootstrap over seeds x questions"}}  # fmt: skip


def _label(arm: dict) -> str:
    return "fresh model" if arm["kind"] == "scratch" else f"`{arm['init']}`"


def _comparisons(result: dict, cfg: ResizeConfig) -> list[dict]:
    """Per direction: the focal init (``interp``) vs every other init before the fine-tune (step 0) and at its
    end, and vs the fresh model at every point of the curve."""
    focal = "interp" if "interp" in cfg.inits else cfg.inits[0]
    steps = curve_steps(cfg)
    out = []
    for n, m in cfg.directions:
        n, m = int(n), int(m)
        a = {"kind": "resize", "init": focal, "n": n, "m": m}
        others = [{"kind": "resize", "init": i, "n": n, "m": m} for i in cfg.inits if i != focal]
        plan = [(0, b) for b in others]
        if cfg.scratch_baseline:
            plan += [(k, {"kind": "scratch", "init": cfg.source_init, "n": m, "m": m}) for k in steps]
        plan += [(steps[-1], b) for b in others]
        for step, b in plan:
            c = _compare(result, a, b, step, list(cfg.seeds))
            if c is not None:
                out.append({"direction": [n, m], "step": step, "a": _label(a), "b": _label(b), **c})  # n: the pairs
    return out


# ---------------------------------------------------------------------------------------------- report
def _find(rows: list[dict], kind: str, m: int, n: int | None = None, init: str | None = None) -> dict | None:
    return next((r for r in rows if r["kind"] == kind and r["m"] == m and (n is None or r["n"] == n)
                 and (init is None or r["init"] == init)), None)  # fmt: skip


def _invalid(r: dict) -> str:
    if "curve" in r:
        vals = [p["invalid_rate"]["mean"] for p in (r["curve"][0], r["curve"][-1])]
        first = fmt(vals[0], 2) if r["curve"][0]["step"] == 0 else "–"
        return f"{first} → {fmt(vals[1], 2)}"
    return fmt(r["eval"]["invalid_rate"]["mean"], 2)


def _md_row(label: str, cells: list[str], invalid: str) -> str:
    return "| " + " | ".join([label, *cells, invalid]) + " |"


def resize_markdown(result: dict) -> str:
    cfg = result["config"]
    b, f = cfg["budget"], cfg["finetune"]
    steps = result["curve_steps"]
    seeds = result["seeds"]
    ev = result["eval"]
    qdesc = ", ".join(f"{g}-grid: {q['n']} questions" for g, q in result["questions"].items())
    lines = [
        "# Resize-vocab study (miniature)",
        "",
        f"Command: `{result['provenance']['command']}`  ",
        f"Seeds: {seeds}; tasks {', '.join(cfg['tasks'])}; source models: {b['steps']} steps x batch "
        f"{b['batch_size']} (lr {b['lr']}); fine-tune after resizing: {f['steps']} steps x batch {f['batch_size']} "
        f"(lr {f['lr']}, {f['scheduler']}), a checkpoint every {cfg['curve_every']} steps evaluated afterwards (the "
        f"learning curve: points of one run); the fresh model trains on the same schedule. Held-out: "
        f"{ev['scenes']} scenes of the `{ev['split']}` series {ev['series']} "
        f"({qdesc}); decoder "
        f"`{cfg['decoder']}` at each grid.",
        "",
        f"mIoU = mean per-question mask IoU over {len(seeds)} seed(s) x the held-out questions of the grid "
        "[95% bootstrap interval resampling seeds and questions together]; every arm at a grid answers the same "
        "questions. Baselines (no model, same decoder): always-centre = the centre cell (the floor); reference = "
        "the encoded reference answer (the ceiling).",
    ]
    rows = result["rows"]
    for n, m in cfg["directions"]:
        n, m = int(n), int(m)
        head = ["before (0)" if k == 0 else f"{k} steps" for k in steps]
        lines += ["", f"## {n} → {m}", "", "| arm | " + " | ".join(head) + " | invalid (first → last) |",
                  "|---|" + "---|" * (len(steps) + 1)]  # fmt: skip
        src, other = _find(rows, "source", n, n), _find(rows, "source", m, m)
        if src:
            label = f"source: {n}-grid model ({b['steps']} steps) on the {n}-grid questions"
            lines.append(_md_row(label, [fmt_ci(src["eval"]["gIoU"])] + [""] * (len(steps) - 1), _invalid(src)))
        if other:
            label = f"{m}-grid model trained the full {b['steps']} steps (a source of its own)"
            lines.append(_md_row(label, [fmt_ci(other["eval"]["gIoU"])] + [""] * (len(steps) - 1), _invalid(other)))
        arms = [r for r in rows if r["kind"] == "resize" and (r["n"], r["m"]) == (n, m)]
        fresh = _find(rows, "scratch", m)
        for r in arms + ([fresh] if fresh else []):
            by = {p["step"]: p for p in r["curve"]}
            cells = [fmt_ci(by[k]["gIoU"]) if k in by else "–" for k in steps]
            name = f"{n} → {m}, `{r['init']}` rows" if r["kind"] == "resize" else f"fresh {m}-grid model"
            lines.append(_md_row(name, cells, _invalid(r)))
        for bname in cfg["baselines"]:
            r = _find(rows, "baseline", m, init=bname)
            if r:
                label = {"centre": "always-centre (floor)", "reference": "reference answer (ceiling)"}.get(bname, bname)
                lines.append(
                    _md_row(f"{label}, {m}-grid, no model", [fmt_ci(r["eval"]["gIoU"])] * len(steps), _invalid(r))
                )
    comps = result.get("comparisons") or []
    if comps:
        lines += [
            "",
            "## Paired comparisons (same questions, pooled over seeds)",
            "",
            "| direction | fine-tune steps | A | B | pairs (seeds x questions) | A − B [95% CI, pairs] "
            "| [95% CI, seeds x questions] | A better / worse / same | p (sign test) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in comps:
            cr = c["crossed"]
            cells = [
                f"{c['direction'][0]} → {c['direction'][1]}",
                str(c["step"] or "none (right after resizing)"),
                c["a"],
                c["b"],
                f"{c['n']} ({c['n_seeds']} x {c['n_questions']})",
                format_diff(c),
                f"[{cr['lo']:+.3f}, {cr['hi']:+.3f}]" if cr.get("lo") is not None else "–",
                f"{c['better']} / {c['worse']} / {c['same']}",
                format_p(c["p"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "mIoU = mean per-sample mask IoU over the held-out point>mask and box>mask questions, written in the new grid; "
        "invalid = answers that do not parse (scored 0), the mean over seeds. `interp`: bilinear interpolation of the "
        "learned cell rows (input embedding and output head) at the new cell centres; `mean`: the vocabulary's mean "
        "row plus noise; `random`: the model's own init. Everything else in the model is carried over unchanged. "
        "Curve points are checkpoints of one fine-tune run (cosine schedule over the whole budget), not separate "
        "shorter runs. Paired comparisons: the difference of per-question IoUs over the (seed, question) pairs both "
        "arms scored, with a percentile bootstrap interval over the pairs and one resampling seeds and questions "
        "together (with several seeds read the latter: the same question under different seeds is not an "
        "independent pair); the sign test counts pairs, ties dropped.",
    ]
    return "\n".join(lines)


def _plot(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    dirs = [(int(n), int(m)) for n, m in result["config"]["directions"]]
    if not any(r["kind"] == "resize" for r in rows):
        return None
    fig, axes = plt.subplots(1, len(dirs), figsize=(5.5 * len(dirs), 4.2), squeeze=False)
    for ax, (n, m) in zip(axes[0], dirs):
        arms = [r for r in rows if r["kind"] == "resize" and (r["n"], r["m"]) == (n, m)]
        fresh = _find(rows, "scratch", m)
        for r in arms + ([fresh] if fresh else []):
            pts = [p for p in r["curve"] if p["gIoU"]["mean"] is not None]
            x = [p["step"] for p in pts]
            label = f"{r['init']} rows" if r["kind"] == "resize" else f"fresh {m}-grid model"
            line, = ax.plot(x, [p["gIoU"]["mean"] for p in pts], marker="o", ms=3,
                            ls="-" if r["kind"] == "resize" else "--", label=label)  # fmt: skip
            lo = [p["gIoU"]["lo"] if p["gIoU"]["lo"] is not None else p["gIoU"]["mean"] for p in pts]
            hi = [p["gIoU"]["hi"] if p["gIoU"]["hi"] is not None else p["gIoU"]["mean"] for p in pts]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        src = _find(rows, "source", n, n)
        if src and src["eval"]["gIoU"]["mean"] is not None:
            ax.axhline(
                src["eval"]["gIoU"]["mean"],
                color="tab:purple",
                ls="--",
                lw=1,
                label=f"source ({n}-grid, own questions)",
            )
        for bname, style in (
            ("centre", dict(color="0.45", ls=":")),
            ("reference", dict(color="k", ls="-.")),
        ):
            r = _find(rows, "baseline", m, init=bname)
            if r and r["eval"]["gIoU"]["mean"] is not None:
                ax.axhline(r["eval"]["gIoU"]["mean"], lw=1.2, label=f"{bname} ({m}-grid, no model)", **style)
        ax.set_xticks(result["curve_steps"])
        ax.set_xlabel(f"fine-tune steps at grid {m} (0: right after resizing)")
        ax.set_ylabel("held-out mIoU")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"grid {n} → {m}: mIoU with 95% CI over seeds x questions", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
