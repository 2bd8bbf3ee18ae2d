"""Study: the same tiny model, data and budget trained with six ways of writing where things are (eight arms).

``getok study representations`` trains the tiny offline Qwen2.5-VL once per representation and seed, with
the same scenes, tasks, steps, batch and learning rate, and evaluates each run on the same held-out scenes
(GETok's Table 9 and SimpleSeg's comparison, in miniature).

Representations (defaults; ``configs/studies/representations.yaml``), with the row init of their new tokens:

==================  ====================================  ======  ===========================================
name                codec                                 init    the answer (mask of the queried object)
==================  ====================================  ======  ===========================================
text coordinates    ``text_coords:style=norm3``           (none)  a point on the object, ``[0.438, 0.312]``
bins (random rows)  ``bins:bins=112``                     random  a point, ``<loc_0049><loc_0035>``
bins (1d rows)      ``bins:bins=112``                     1d      the same, bin rows a smooth 1-D code
grid (2d rows)      ``grid:n=8``                          2d      greedy grid cells, ``<g8_r2_c3>``
grid (random rows)  ``grid:n=8``                          random  the same, cell rows drawn at random
grid + offset       ``grid_offset:n=8,r=1,step=0.5``      2d      cells, then one refinement turn (offsets)
text polygons       ``text_coords:style=norm3,eps=0.02``  (none)  the outline, ``[[0.281, 0.295], ...]``
token polygons      ``bins:bins=112,eps=0.02``            random  the outline in ``<loc>`` tokens
==================  ====================================  ======  ===========================================

**The init is a factor**: ``2d`` / ``1d`` write one smooth code of a cell's / bin's position into a token's input
and output rows (copying a token from the question is nearly solved at initialisation), ``random`` independent
rows; grid and bins run with both, so a gap between them is not an init gap. Text adds no tokens (no init).

Points and cells become masks through the same plug-in decoder (``point_masks:proposer=exact``: the
scene's exact regions, the weight-free stand-in for SAM); outlines are rasterised. Point and box
queries are written in the representation itself (a text model reads ``[0.299, 0.540]``, a grid model
``<g8_r4_c2>``, a bin model ``<loc_0033><loc_0060>``).

**What the miniature can measure.** The tiny random-weight model learns the answer grammar and answers
conditioned on *tokens in the question* within minutes, but does not learn to localise objects from
pixels (``docs/training.md``, ``docs/rl.md``). So the headline tasks are ``point>mask`` and
``box>mask``: their difficulty is how coordinates are written and read (copy a point, find the middle of
a box, draw an outline around a point or inside a box). ``text>mask`` (the location prior at these
budgets) is not in the default mixture; ``tasks=[point>mask, box>mask, text>mask]`` adds it back.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from getok.codecs.base import get_codec
from getok.config import config_to_dict, load_config
from getok.decoding.base import canonical_decoder_spec
from getok.errors import ConfigError
from getok.eval.metrics import summarize
from getok.eval.runner import read_records
from getok.vocab.init import list_inits

from .common import (
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
    mean_ci,
    oracle_records,
    question_scores,
    sft_config,
    target_tokens_per_object,
    train_sft,  # fmt: skip
    write_outputs,
)
from .data import ANSWER_FORMS, grid_n, refine_samples, task_samples, write_pool

__all__ = ["Representation", "RepresentationsConfig", "load_representations_config", "run_representations",
           "summarize_records", "representations_markdown", "DEFAULT_REPRESENTATIONS"]  # fmt: skip

log = logging.getLogger("getok_lab.studies.representations")

NAME = "representations"
METRICS = ("Acc@0.5", "Acc@0.8", "gIoU", "invalid_rate", "tokens_per_object")


@dataclass
class Representation:
    """One arm of the study.

    Attributes
    ----------
    name : str
        Row label.
    codec : str
        Codec spec: answers and point / box queries are written with it.
    answer : {"native", "point"}
        ``native``: the codec's own mask answer (cells, outline); ``point``: one point on the object.
    init : str
        Row init of the codec's new tokens, a registered init (``getok.vocab.list_inits()``): ``2d`` for
        grid / offset tokens and ``1d`` for ``<loc>`` tokens (one smooth code of the position in a token's
        input and output rows), ``random`` (independent rows), ... Said in the arm's name where it is a factor.
    refine : bool
        ``grid_offset`` only: add two-turn refinement samples to the training mixture and evaluate with a
        refinement turn (the row reports the final turn; turn 1 is kept in the JSON).
    max_new_tokens : int
        Generation budget at evaluation.
    """

    name: str = "grid"
    codec: str = "grid:n=8"
    answer: str = "native"
    init: str = "2d"
    refine: bool = False
    max_new_tokens: int = 16

    def __post_init__(self):
        self.codec = get_codec(self.codec).spec
        if self.answer not in ANSWER_FORMS:
            raise ConfigError(f"representations[{self.name}].answer must be one of {ANSWER_FORMS}, got {self.answer!r}")
        if self.refine and get_codec(self.codec).name != "grid_offset":
            raise ConfigError(f"representations[{self.name}].refine needs a grid_offset codec, got {self.codec!r}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"representations[{self.name}].max_new_tokens must be >= 1")
        if self.init not in list_inits():
            raise ConfigError(f"representations[{self.name}].init must be one of {list_inits()}, got {self.init!r}")


def _default_representations() -> list[Representation]:
    return [
        Representation("text coordinates", "text_coords:style=norm3", "point", "2d", False, 24),
        Representation("bins (random rows)", "bins:bins=112", "point", "random", False, 8),
        Representation("bins (1d rows)", "bins:bins=112", "point", "1d", False, 8),
        Representation("grid (2d rows)", "grid:n=8", "native", "2d", False, 8),
        Representation("grid (random rows)", "grid:n=8", "native", "random", False, 8),
        Representation("grid + offset", "grid_offset:n=8,r=1,step=0.5", "native", "2d", True, 8),
        Representation("text polygons", "text_coords:style=norm3,eps=0.02", "native", "2d", False, 320),
        Representation("token polygons", "bins:bins=112,eps=0.02", "native", "random", False, 48),
    ]


DEFAULT_REPRESENTATIONS = [r.name for r in _default_representations()]


@dataclass
class RepresentationsConfig:
    """Settings of ``getok study representations`` (YAML: ``configs/studies/representations.yaml``).

    Attributes
    ----------
    representations : list of Representation
    only : list of str, optional
        Run only these representations (by name).
    tasks : list of str
        Training and evaluation tasks (mask tasks).
    task_weights : list of float
        Share of each task in the training mixture.
    core_tasks : list of str
        Tasks pooled into the headline columns (the query-conditioned ones).
    refine_weight : float
        Share of refinement samples for ``refine`` representations (the task shares shrink by it).
    refine_ks : list of int
        Proposal sizes of the refinement samples.
    seeds : list of int
        One run per seed (model weights, new-row init, data draw / order).
    budget : Budget
        Identical for every representation.
    scenes : SceneSeries
    decoder : str
        Mask decoder of the evaluation.
    eval_batch_size : int
    work_dir : str
        Models, datasets and evaluation records (large; not for committing).
    """

    representations: list[Representation] = field(default_factory=_default_representations)
    only: list[str] | None = None
    tasks: list[str] = field(default_factory=lambda: ["point>mask", "box>mask"])
    task_weights: list[float] = field(default_factory=lambda: [0.5, 0.5])
    core_tasks: list[str] = field(default_factory=lambda: ["point>mask", "box>mask"])
    refine_weight: float = 0.15
    refine_ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 6])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: Budget = field(default_factory=lambda: Budget(steps=400))
    scenes: SceneSeries = field(default_factory=SceneSeries)
    decoder: str = "point_masks:proposer=exact,n=8"
    eval_batch_size: int = 16
    work_dir: str = "runs/studies/representations"

    def __post_init__(self):
        names = [r.name for r in self.representations]
        if len(set(names)) != len(names):
            raise ConfigError(f"representation names must be unique, got {names}")
        if self.only:
            bad = [n for n in self.only if n not in names]
            if bad:
                raise ConfigError(f"only: unknown representations {bad}; known: {names}")
        if len(self.task_weights) != len(self.tasks) or min(self.task_weights, default=0) <= 0:
            raise ConfigError("task_weights must give one positive weight per task")
        bad = [t for t in self.core_tasks if t not in self.tasks]
        if bad or not self.core_tasks:
            raise ConfigError(f"core_tasks must be a non-empty subset of tasks, got {self.core_tasks}")
        if not 0 <= self.refine_weight < 1:
            raise ConfigError(f"refine_weight must be in [0, 1), got {self.refine_weight}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")

    @property
    def selected(self) -> list[Representation]:
        return [r for r in self.representations if not self.only or r.name in self.only]


#: ``--fast``: a few steps on a handful of scenes (CI: the whole path, not the numbers).
FAST_OVERRIDES = [
    "budget.steps=3", "budget.batch_size=2", "budget.dataloader_workers=0", "budget.vision_warmup=2", "scenes.n_train=6", "scenes.n_eval=2",
    "seeds=[0]", "eval_batch_size=8",
]  # fmt: skip


def load_representations_config(path=None, overrides=None, *, fast: bool = False) -> RepresentationsConfig:
    """Defaults ← YAML ← (``--fast``) ← ``a.b=c`` overrides, validated."""
    return load_config(RepresentationsConfig, path, (FAST_OVERRIDES if fast else []) + list(overrides or []))


# ---------------------------------------------------------------------------------------------- metrics
def summarize_records(records: list[dict], tasks: list[str], core: list[str], turn: int | None = None) -> dict:
    """Metrics per task, for the pooled ``core`` tasks and overall (``turn``: a self-correction turn, 1-based).

    Returns ``{"core": {...}, "per_task": {task: {...}}}`` with :data:`METRICS` and ``n``.
    """

    def pick(r):
        if turn is not None and r.get("turns"):
            return {**r["turns"][min(turn, len(r["turns"])) - 1], "task": r["task"]}
        return r

    recs = [pick(r) for r in records]

    def summ(rs):
        if not rs:
            return {k: None for k in ("n", *METRICS)}
        s = summarize(rs)
        return {"n": s["n"], **{k: s.get(k) for k in METRICS}}

    return {
        "core": summ([r for r in recs if r["task"] in core]),
        "per_task": {t: summ([r for r in recs if r["task"] == t]) for t in tasks},
    }


# ---------------------------------------------------------------------------------------------- the study
def _build_data(cfg: RepresentationsConfig, rep: Representation, root: Path, train_scenes, eval_scenes) -> dict:
    src_train, src_eval = [cfg.scenes.source("train")], [cfg.scenes.source("eval")]
    pools, counts = [], {}
    share, wsum = 1.0 - (cfg.refine_weight if rep.refine else 0.0), sum(cfg.task_weights)
    for task, w in zip(cfg.tasks, cfg.task_weights):
        s = task_samples(train_scenes, rep.codec, [task], answer=rep.answer)
        p = write_pool(s, root / "data" / f"train-{task.replace('>', '2')}", src_train)
        pools.append((p, share * w / wsum))
        counts[task] = len(s)
    if rep.refine:
        s = refine_samples(train_scenes, rep.codec, cfg.refine_ks, ask="point")
        pools.append((write_pool(s, root / "data" / "train-refine", src_train), cfg.refine_weight))
        counts["refine"] = len(s)
    ev = task_samples(eval_scenes, rep.codec, cfg.tasks, answer=rep.answer, seed=cfg.scenes.eval_seed)
    eval_dir = write_pool(ev, root / "data" / "eval", src_eval)
    return {"pools": pools, "eval_dir": eval_dir, "eval_samples": list(ev), "train_pool_sizes": counts}


def _run_arm(cfg: RepresentationsConfig, rep: Representation, seed: int, data: dict, root: Path, progress: bool):
    run_dir = root / f"seed{seed}"
    scfg = sft_config(cfg.budget, [rep.codec], data["pools"], run_dir, seed=seed, init=rep.init,
                      image_size=cfg.scenes.size)  # fmt: skip
    log.info("representation %r seed %d: training %d steps", rep.name, seed, cfg.budget.steps)
    summ = train_sft(scfg, progress=progress)
    model, processor = load_trained(summ["final"])
    turns = 2 if rep.refine else 1
    ev = evaluate_model(
        model, processor, data["eval_dir"], run_dir / "eval", decoder=_decoder_for(cfg.decoder, rep.codec), turns=turns,
        max_new_tokens=rep.max_new_tokens, batch_size=cfg.eval_batch_size, seed=seed,
        model_name=f"{rep.name} seed {seed}",
    )  # fmt: skip
    records = read_records(run_dir / "eval" / "records.jsonl")
    out = {
        "seed": seed,
        "final": summ.get("final"),
        "train": {k: summ["train"].get(k) for k in ("steps", "first_loss", "last_loss", "train_wall_s", "train_cpu_s")},
        "data": {k: summ["data"].get(k) for k in ("total", "kept", "too_long", "longest_kept")},
        "run_clock": summ["clock"],
        "eval_clock": ev["clock"],
        "eval_ms_per_sample": ev["ms_per_sample"],
        "final_turn": summarize_records(records, cfg.tasks, cfg.core_tasks),
        # per-question IoUs (sample id → IoU): the mIoU intervals resample seeds and questions together
        "question_iou": {"core": question_scores(records, cfg.core_tasks),
                         **{t: question_scores(records, [t]) for t in cfg.tasks}},  # fmt: skip
        "target_tokens_per_object": target_tokens_per_object(data["eval_samples"], processor.tokenizer),
    }
    if turns > 1:
        out["turn1"] = summarize_records(records, cfg.tasks, cfg.core_tasks, turn=1)
        out["question_iou"]["turn1/core"] = question_scores(records, cfg.core_tasks, turn=1)
        sc = ev.get("selfcorrect") or {}
        out["selfcorrect"] = {str(t): {k: v.get(k) for k in ("gIoU", "improved", "worse", "same", "refine_invalid_rate")}
                              for t, v in (sc.get("turns") or {}).items()}  # fmt: skip
        out["selfcorrect_oracle"] = {str(t): {k: v.get(k) for k in ("gIoU", "improved", "worse")}
                                     for t, v in (sc.get("oracle") or {}).items()}  # fmt: skip
    del model
    return out


def _aggregate(runs: list[dict], key_path: tuple[str, ...]) -> dict:
    vals = list(runs)
    for k in key_path:
        vals = [None if v is None else v.get(k) for v in vals]
    return mean_ci(vals)


def _score_on_one_question_set(result: dict, cfg) -> None:
    """Fair arms: every arm's mIoU over the union of the arms' questions, a question an arm could not be asked
    (its representation cannot write the answer, e.g. an object smaller than a cell) scored 0 for it."""
    keys = ["core", *cfg.tasks]
    rows = result["representations"]
    union = {k: sorted({q for r in rows for run in r["runs"] for q in run["question_iou"].get(k, {})}) for k in keys}
    result["questions"] = {k: len(v) for k, v in union.items()}
    for r in rows:
        for k in keys:
            name = "core/gIoU" if k == "core" else f"{k}/gIoU"
            per_seed = [run["question_iou"].get(k, {}) for run in r["runs"]]
            r["mean"][name] = crossed_ci(per_seed, questions=union[k], missing=0.0)
        asked = {q for run in r["runs"] for q in run["question_iou"].get("core", {})}
        r["unanswerable_core"] = len(set(union["core"]) - asked)


def run_representations(cfg: RepresentationsConfig, out_dir: str | Path, *, progress: bool = True,
                        argv: list[str] | None = None) -> dict:  # fmt: skip
    """Run the study; writes ``representations.{json,md,png}`` into ``out_dir`` and returns the result."""
    total = Clock()
    root = Path(cfg.work_dir)
    train_scenes, eval_scenes = cfg.scenes.generate("train"), cfg.scenes.generate("eval")
    result: dict = {
        "study": NAME,
        "config": config_to_dict(cfg),
        "provenance": {"command": command_line(argv), "seeds": list(cfg.seeds), "environment": environment()},
        "representations": [],
    }
    for rep in cfg.selected:
        rroot = root / re.sub(r"[^0-9A-Za-z]+", "_", rep.name.replace("+", "plus")).strip("_")
        with Clock() as dc:
            data = _build_data(cfg, rep, rroot, train_scenes, eval_scenes)
        ora = oracle_records(data["eval_dir"], rroot / "oracle", decoder=_decoder_for(cfg.decoder, rep.codec))
        oracle = summarize_records(ora, cfg.tasks, cfg.core_tasks)
        runs = [_run_arm(cfg, rep, s, data, rroot, progress) for s in cfg.seeds]
        row = {
            "name": rep.name, "codec": rep.codec, "answer": rep.answer, "init": rep.init, "refine": rep.refine,
            "new_tokens": len(get_codec(rep.codec).new_tokens()),  # 0: the init has nothing to initialise
            "train_pool_sizes": data["train_pool_sizes"], "eval_samples": len(data["eval_samples"]),
            "data_build_s": round(dc.wall, 1), "runs": runs, "oracle": oracle,
        }  # fmt: skip
        row["mean"] = {
            **{f"core/{m}": _aggregate(runs, ("final_turn", "core", m)) for m in METRICS},
            **{f"{t}/{m}": _aggregate(runs, ("final_turn", "per_task", t, m)) for t in cfg.tasks for m in METRICS},
            # mIoU: over seeds x questions, a bootstrap interval (not Student-t over a few bounded per-seed means)
            "core/gIoU": crossed_ci([r["question_iou"]["core"] for r in runs]),
            **{f"{t}/gIoU": crossed_ci([r["question_iou"][t] for r in runs]) for t in cfg.tasks},
            "target_tokens_per_object": _aggregate(runs, ("target_tokens_per_object",)),
            "train_wall_s": _aggregate(runs, ("train", "train_wall_s")),
            "train_cpu_s": _aggregate(runs, ("train", "train_cpu_s")),
            "eval_ms_per_sample": _aggregate(runs, ("eval_ms_per_sample",)),
        }
        if rep.refine:
            row["mean"]["turn1/core/gIoU"] = crossed_ci([r["question_iou"]["turn1/core"] for r in runs])
            row["mean"]["turn1/core/Acc@0.5"] = _aggregate(runs, ("turn1", "core", "Acc@0.5"))
        result["representations"].append(row)
        log.info("representation %r done: core mIoU %s", rep.name, fmt_ci(row["mean"]["core/gIoU"]))
    _score_on_one_question_set(result, cfg)
    result["provenance"]["clock"] = total.stop()
    result["outputs"] = write_outputs(out_dir, NAME, result, representations_markdown(result), _plot(result))
    return result


def _decoder_for(decoder: str, codec: str) -> str:
    n = grid_n(codec)
    if n is None or not canonical_decoder_spec(decoder).startswith("point_masks"):
        return decoder
    return ",".join(p if not p.startswith("n=") else f"n={n}" for p in decoder.split(","))


# ---------------------------------------------------------------------------------------------- report
def representations_markdown(result: dict) -> str:
    """The study's tables (markdown)."""
    cfg = result["config"]
    core = " + ".join(cfg["core_tasks"])
    seeds = result["provenance"]["seeds"]
    b = cfg["budget"]
    lines = [
        "# Representations study (miniature)",
        "",
        f"Command: `{result['provenance']['command']}`  ",
        *[f"Rows {', '.join(r['representations'])} rerun with `{r['command']}` (commit "
          f"{(r.get('environment') or {}).get('git_commit')}): {r.get('why', '')}  "
          for r in result["provenance"].get("reruns", [])],
        f"Seeds: {seeds}; budget per run: {b['steps']} steps x batch {b['batch_size']}, lr {b['lr']} ({b['scheduler']}); "
        f"{cfg['scenes']['n_train']} training scenes (series {cfg['scenes']['train_seed']}), "
        f"{cfg['scenes']['n_eval']} held-out scenes ({cfg['scenes'].get('eval_split', 'held-out')} series "
        f"{cfg['scenes']['eval_seed']}); decoder `{cfg['decoder']}`.",
        f"mIoU: mean over {len(seeds)} seeds x the same {result.get('questions', {}).get('core', '?')} held-out "
        "questions for every representation (one it cannot be asked scores 0 for it), [95% bootstrap interval "
        "resampling seeds and questions together]; other columns: mean over seeds ± the half-width of the 95% "
        "Student-t interval.",
        "",
        f"## Query-conditioned tasks ({core}): how coordinates are written and read",
        "",
        "| representation | init | answer | Acc@0.5 | Acc@0.8 | mIoU | invalid | tokens/object (target) | tokens/object "
        "(generated) | training time (s) | eval latency (ms/sample) | oracle mIoU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["representations"]:
        m = r["mean"]
        native = "cells → decoder" if "grid" in r["codec"] else "outline"
        ans = {"point": "point → decoder", "native": native}[r["answer"]]
        if r["refine"]:
            ans = "cells → decoder, + 1 refinement turn"
        ora = (r.get("oracle") or {}).get("core", {}).get("gIoU")
        lines.append(
            f"| {r['name']} (`{r['codec']}`) | {_init_cell(r)} | {ans} | {fmt_ci(m['core/Acc@0.5'])} | "
            f"{fmt_ci(m['core/Acc@0.8'])} | {fmt_ci(m['core/gIoU'])} | {fmt_ci(m['core/invalid_rate'])} | "
            f"{fmt_ci(m['target_tokens_per_object'], 1)} | {fmt_ci(m['core/tokens_per_object'], 1)} | "
            f"{fmt_ci(m['train_wall_s'], 0)} | {fmt_ci(m['eval_ms_per_sample'], 1)} | {fmt(ora)} |"
        )
    lines += ["", "## Per task (mIoU; Acc@0.5 in brackets)", ""]
    tasks = cfg["tasks"]
    lines += ["| representation | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for r in result["representations"]:
        m = r["mean"]
        cells = [f"{fmt_ci(m[f'{t}/gIoU'])} ({fmt_ci(m[f'{t}/Acc@0.5'], 2)})" for t in tasks]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    refine = [r for r in result["representations"] if r["refine"]]
    for r in refine:
        m = r["mean"]
        lines += [
            "",
            f"{r['name']}: core mIoU after turn 1 (proposal) {fmt_ci(m['turn1/core/gIoU'])}, after the refinement turn "
            f"{fmt_ci(m['core/gIoU'])} (Acc@0.5 {fmt_ci(m['turn1/core/Acc@0.5'])} → {fmt_ci(m['core/Acc@0.5'])}).",
        ]
    lines += [
        "",
        "Columns: init = row init of the new tokens (`2d` / `1d`: one smooth code of the cell's / bin's position in "
        "a token's input and output rows; `random`: independent rows); REC Acc@t = box IoU >= t with the box of the decoded mask (min / max); mIoU = mean per-sample mask "
        "IoU; invalid = answers that do not parse (scored IoU 0); tokens/object with the model's tokenizer (target: "
        "the reference answers; generated: the model's answers); training time = wall seconds of the training loop "
        "on the shared 2-core machine (CPU seconds in the JSON); eval latency = wall ms per held-out sample (greedy "
        "generation, batch " + str(cfg["eval_batch_size"]) + ", + mask decoding); oracle = the reference answers "
        "scored the same way (the representation's ceiling on this data).",
    ]
    if "text>mask" in cfg["tasks"]:
        lines += ["", "text>mask is the location prior: the tiny random-weight model does not learn to localise "
                  "objects from pixels within minutes (docs/training.md), so its text>mask numbers are those of an "
                  "image-blind answer."]  # fmt: skip
    return "\n".join(lines)


def _init_cell(row: dict) -> str:
    return f"`{row['init']}`" if row.get("new_tokens", 1) else "none (no new tokens)"


def _plot(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reps = result["representations"]
    if not reps:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    names = [r["name"] for r in reps]
    x = range(len(reps))
    for key, off, label in (("core/gIoU", -0.2, "mIoU"), ("core/Acc@0.5", 0.2, "Acc@0.5")):
        means = [r["mean"][key]["mean"] or 0.0 for r in reps]
        err = [r["mean"][key]["half"] or 0.0 for r in reps]
        axes[0].bar([i + off for i in x], means, width=0.4, yerr=err, capsize=3, label=label)
    ora = [((r.get("oracle") or {}).get("core") or {}).get("gIoU") for r in reps]
    axes[0].scatter([i - 0.2 for i in x], [o if o is not None else float("nan") for o in ora], marker="_", s=300,
                    color="k", label="oracle mIoU", zorder=3)  # fmt: skip
    axes[0].set_xticks(list(x), names, rotation=25, ha="right")
    axes[0].set_ylim(0, 1.05)
    core = " + ".join(result["config"]["core_tasks"])
    axes[0].set_title(f"{core} (mean ± 95% CI over seeds)")
    axes[0].legend(fontsize=8)
    for r in reps:
        t = r["mean"]["target_tokens_per_object"]["mean"]
        g = r["mean"]["core/gIoU"]
        if t is None or g["mean"] is None:
            continue
        axes[1].errorbar([t], [g["mean"]], yerr=[[g["half"] or 0.0]], fmt="o", capsize=3)
        axes[1].annotate(r["name"], (t, g["mean"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("target tokens per object (model's tokenizer)")
    axes[1].set_ylabel("mIoU")
    axes[1].set_title("cost vs quality")
    fig.suptitle("Representations in miniature: tiny VLM, procedural scenes, equal budget", fontsize=10)
    fig.tight_layout()
    return fig
