"""Study: multi-turn self-correction — propose with grid cells, refine with offsets / ``<DELETE>`` for K - 1 turns.

``getok study self-correction`` trains the tiny model with the ``grid_offset`` vocabulary on query tasks
plus two-turn refinement samples, then runs the self-correction protocol (:mod:`getok.eval.selfcorrect`)
on held-out scenes for K turns (default 3): per-turn mIoU (per task and overall), how many samples each
turn improved / made worse, what happened to the proposed points, and the **oracle refinement**
(the offset builder's labels applied to the model's own proposal, every turn) as the bound on what
refining that proposal can gain.

Two training variants (same steps, batch, lr, scenes):

* **varying k, point questions** — refinement samples whose first turn is the ``point>mask`` question
  and whose noisy proposals have 1, 2, 3, 4 or 6 cells: what the model meets at evaluation (its own
  proposals are mostly one cell);
* **k = 6, text questions** — the SFT recipe's refinement samples (``configs/sft/tiny-cpu.yaml``): six
  cells after a text question. The GRPO helper found that a model trained only on these deletes
  everything when asked to refine a one-cell proposal (``docs/rl.md``).

The mask decoder is ``point_masks:proposer=exact`` (each scene's exact regions), where a refined point that
moves onto an object selects that object: refinement is meaningful there. (The weight-free ``raster``
decoder shifts whole cell squares, so even the oracle refinement can lower the IoU.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from getok.config import config_to_dict, load_config
from getok.errors import ConfigError

from .common import Budget, Clock, SceneSeries, command_line, crossed_ci, environment, fmt, fmt_ci, write_outputs

__all__ = ["Variant", "SelfCorrectStudyConfig", "load_selfcorrect_config", "run_self_correction", "per_turn",
           "selfcorrect_study_markdown"]  # fmt: skip

log = logging.getLogger("getok_lab.studies.self_correction")

NAME = "self-correction"


@dataclass
class Variant:
    """A training variant: which refinement samples the model sees.

    Attributes
    ----------
    name : str
    refine_ks : list of int
        Proposal sizes of the refinement samples.
    refine_ask : {"point", "text"}
        The first-turn question of the refinement samples.
    """

    name: str = "varying k, point questions"
    refine_ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 6])
    refine_ask: str = "point"

    def __post_init__(self):
        if not self.refine_ks or min(self.refine_ks) < 1:
            raise ConfigError(f"variants[{self.name}].refine_ks must be proposal sizes >= 1, got {self.refine_ks}")
        if self.refine_ask not in ("point", "text"):
            raise ConfigError(f"variants[{self.name}].refine_ask must be 'point' or 'text', got {self.refine_ask!r}")


def _default_variants() -> list[Variant]:
    return [
        Variant("varying k, point questions", [1, 2, 3, 4, 6], "point"),
        Variant("k = 6, text questions", [6], "text"),
    ]


def _default_budget() -> Budget:
    return Budget(steps=700, batch_size=16)  # the demo's SFT budget (600 x 8 stayed at the location prior)


@dataclass
class SelfCorrectStudyConfig:
    """Settings of ``getok study self-correction`` (YAML: ``configs/studies/self-correction.yaml``).

    Attributes
    ----------
    codec : str
        A ``grid_offset`` codec.
    variants : list of Variant
    tasks, task_weights : query tasks of the training mixture and their shares.
    refine_weight : float
        Share of refinement samples in the mixture.
    eval_tasks : list of str
        Held-out questions (all are refined).
    turns : int
        K: one proposal and K - 1 refinements.
    seeds : list of int
    budget : Budget
    scenes : SceneSeries
    decoder : str
    eval_batch_size : int
    work_dir : str
    """

    codec: str = "grid_offset:n=8,r=1,step=0.5"
    variants: list[Variant] = field(default_factory=_default_variants)
    tasks: list[str] = field(default_factory=lambda: ["point>mask", "box>mask"])
    task_weights: list[float] = field(default_factory=lambda: [0.45, 0.3])
    refine_weight: float = 0.25
    eval_tasks: list[str] = field(default_factory=lambda: ["point>mask", "box>mask"])
    turns: int = 3
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: Budget = field(default_factory=_default_budget)
    scenes: SceneSeries = field(default_factory=SceneSeries)
    decoder: str = "point_masks:proposer=exact,n=8"
    eval_batch_size: int = 16
    work_dir: str = "runs/studies/self-correction"

    def __post_init__(self):
        from getok.codecs.base import get_codec

        self.codec = get_codec(self.codec).spec
        if get_codec(self.codec).name != "grid_offset":
            raise ConfigError(f"codec must be a grid_offset codec, got {self.codec!r}")
        if not 2 <= int(self.turns) <= 8:
            raise ConfigError(f"turns must be in [2, 8], got {self.turns}")
        if len(self.task_weights) != len(self.tasks) or min(self.task_weights, default=0) <= 0:
            raise ConfigError("task_weights must give one positive weight per task")
        if not 0 < self.refine_weight < 1:
            raise ConfigError(f"refine_weight must be in (0, 1), got {self.refine_weight}")
        if not self.variants or len({v.name for v in self.variants}) != len(self.variants):
            raise ConfigError("variants must be non-empty with distinct names")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")


FAST_OVERRIDES = [
    "budget.steps=3", "budget.batch_size=2", "budget.dataloader_workers=0", "budget.vision_warmup=2", "scenes.n_train=6", "scenes.n_eval=2",
    "seeds=[0]", "eval_batch_size=8",
]  # fmt: skip


def load_selfcorrect_config(path=None, overrides=None, *, fast: bool = False) -> SelfCorrectStudyConfig:
    """Defaults ← YAML ← (``--fast``) ← ``a.b=c`` overrides, validated."""
    return load_config(SelfCorrectStudyConfig, path, (FAST_OVERRIDES if fast else []) + list(overrides or []))


# ---------------------------------------------------------------------------------------------- metrics
def per_turn(records: list[dict], turns: int, tasks: list[str] | None = None) -> dict:
    """Per-turn metrics of self-correction records, for the model and the oracle, overall and per task.

    Returns
    -------
    dict
        ``{group: {"model": [row per turn], "oracle": [row per turn]}}`` for ``group`` in ``all`` and each
        task; a row has ``turn``, ``n``, ``gIoU``, ``Acc@0.5``, ``invalid_rate`` and (turns >= 2)
        ``improved`` / ``worse`` / ``same`` / ``mean_delta`` vs the previous turn (oracle: vs its own previous
        turn, turn 1 being the shared proposal), the model's ``refine_invalid`` count and ``question_iou``
        (sample id → IoU).
    """
    from getok.eval.metrics import sample_ious, summarize
    from getok.eval.selfcorrect import turn_deltas

    recs = [r for r in records if r.get("turns")]
    groups = {"all": recs}
    for t in tasks or sorted({r["task"] for r in recs}):
        groups[t] = [r for r in recs if r["task"] == t]
    out = {}
    for g, rs in groups.items():
        model, oracle = [], []
        if not rs:
            out[g] = {"model": model, "oracle": oracle}
            continue
        k = min(turns, min(len(r["turns"]) for r in rs))
        prev_m = prev_o = None
        for t in range(1, k + 1):
            cur_m = [r["turns"][t - 1] for r in rs]
            cur_o = [
                r["oracle"][t - 2] if t >= 2 and len(r.get("oracle") or []) >= t - 1 else r["turns"][0] for r in rs
            ]
            for cur, prev, rows, who in ((cur_m, prev_m, model, "model"), (cur_o, prev_o, oracle, "oracle")):
                s = summarize(cur)
                row = {
                    "turn": t,
                    "n": s["n"],
                    "gIoU": s["gIoU"],
                    "Acc@0.5": s.get("Acc@0.5"),
                    "invalid_rate": s["invalid_rate"],
                    # per question (sample id → IoU): the intervals over seeds x questions resample these
                    "question_iou": {str(r.get("id", i)): float(v) for i, (r, v) in enumerate(zip(rs, sample_ious(cur)))},
                }
                if prev is not None:
                    row.update(turn_deltas(prev, cur))
                    if who == "model":
                        row["refine_invalid"] = sum(
                            1 for x in cur if x.get("skipped") is None and x.get("refine_valid") is False
                        )
                rows.append(row)
            prev_m, prev_o = cur_m, cur_o
        out[g] = {"model": model, "oracle": oracle}
    return out


# ---------------------------------------------------------------------------------------------- the study
def run_self_correction(cfg: SelfCorrectStudyConfig, out_dir: str | Path, *, progress: bool = True,
                        argv: list[str] | None = None) -> dict:  # fmt: skip
    """Run the study; writes ``self-correction.{json,md,png}`` into ``out_dir`` and returns the result."""
    from getok.eval.runner import read_records

    from .common import evaluate_model, load_trained, sft_config, train_sft
    from .data import refine_samples, task_samples, write_pool

    total = Clock()
    root = Path(cfg.work_dir)
    train_scenes, eval_scenes = cfg.scenes.generate("train"), cfg.scenes.generate("eval")
    src_tr, src_ev = [cfg.scenes.source("train")], [cfg.scenes.source("eval")]
    wsum = sum(cfg.task_weights)
    task_pools = []
    for task, w in zip(cfg.tasks, cfg.task_weights):
        s = task_samples(train_scenes, cfg.codec, [task])
        task_pools.append(
            (
                write_pool(s, root / "data" / f"train-{task.replace('>', '2')}", src_tr),
                (1 - cfg.refine_weight) * w / wsum,
            )
        )
    ev = task_samples(eval_scenes, cfg.codec, cfg.eval_tasks, seed=cfg.scenes.eval_seed)
    eval_dir = write_pool(ev, root / "data" / "eval", src_ev)
    result: dict = {
        "study": NAME,
        "config": config_to_dict(cfg),
        "provenance": {"command": command_line(argv), "seeds": list(cfg.seeds), "environment": environment()},
        "variants": [],
    }
    for vi, v in enumerate(cfg.variants):  # every variant: same task pools, its own refinement pool
        rs = refine_samples(train_scenes, cfg.codec, v.refine_ks, ask=v.refine_ask)
        rpool = write_pool(rs, root / "data" / f"train-refine-v{vi}", src_tr)
        runs = []
        for seed in cfg.seeds:
            d = root / f"variant{vi}" / f"seed{seed}"
            scfg = sft_config(cfg.budget, [cfg.codec], [*task_pools, (rpool, cfg.refine_weight)], d, seed=seed,
                              image_size=cfg.scenes.size)  # fmt: skip
            log.info("variant %r seed %d: training %d steps", v.name, seed, cfg.budget.steps)
            summ = train_sft(scfg, progress=progress)
            model, processor = load_trained(summ["final"])
            e = evaluate_model(model, processor, eval_dir, d / "eval", decoder=cfg.decoder, turns=cfg.turns,
                               max_new_tokens=16, batch_size=cfg.eval_batch_size, seed=seed,
                               model_name=f"{v.name} seed {seed}")  # fmt: skip
            recs = read_records(d / "eval" / "records.jsonl")
            sc = e.get("selfcorrect") or {}
            runs.append({
                "seed": seed,
                "train": {k: summ["train"].get(k) for k in ("steps", "first_loss", "last_loss", "train_wall_s", "train_cpu_s")},
                "eval_clock": e["clock"],
                "per_turn": per_turn(recs, cfg.turns, cfg.eval_tasks),
                "points": {str(t): r.get("points") for t, r in (sc.get("turns") or {}).items() if r.get("points")},
                "oracle_points": {str(t): r.get("points") for t, r in (sc.get("oracle") or {}).items()},
                "n_no_proposal": sc.get("n_no_proposal"),
            })  # fmt: skip
            del model
        result["variants"].append({"name": v.name, "refine_ks": list(v.refine_ks), "refine_ask": v.refine_ask,
                                   "refine_pool": len(rs), "runs": runs, "mean": _mean_curves(runs)})  # fmt: skip
    result["eval_samples"] = len(ev)
    result["provenance"]["clock"] = total.stop()
    result["outputs"] = write_outputs(out_dir, NAME, result, selfcorrect_study_markdown(result), _plot(result))
    return result


def _mean_curves(runs: list[dict]) -> dict:
    """Per group and turn: mIoU over seeds x questions with its bootstrap interval (:func:`crossed_ci`; model and
    oracle) and the summed improved / worse counts."""
    out: dict = {}
    groups = runs[0]["per_turn"].keys() if runs else []
    for g in groups:
        out[g] = {}
        for who in ("model", "oracle"):
            k = min(len(r["per_turn"][g][who]) for r in runs)
            rows = []
            for t in range(k):
                vals = [r["per_turn"][g][who][t] for r in runs]
                row = {"turn": t + 1, "gIoU": crossed_ci([v["question_iou"] for v in vals]), "n": sum(v["n"] for v in vals)}
                for key in ("improved", "worse", "same", "refine_invalid"):
                    if key in vals[0]:
                        row[key] = sum(v.get(key) or 0 for v in vals)
                rows.append(row)
            out[g][who] = rows
    return out


def _shares(cfg: dict) -> list[tuple[str, float]]:
    """Share of each query task in the training mixture (the refinement samples take ``refine_weight``)."""
    wsum = sum(cfg["task_weights"])
    return [(t, (1 - cfg["refine_weight"]) * w / wsum) for t, w in zip(cfg["tasks"], cfg["task_weights"])]


def selfcorrect_study_markdown(result: dict) -> str:
    cfg = result["config"]
    b = cfg["budget"]
    k = cfg["turns"]
    lines = [
        "# Self-correction study (miniature)",
        "",
        f"Command: `{result['provenance']['command']}`  ",
        f"Seeds: {result['provenance']['seeds']}; codec `{cfg['codec']}`; {b['steps']} steps x batch {b['batch_size']} "
        f"(lr {b['lr']}); training mixture: {', '.join(f'{t} {w:.2f}' for t, w in _shares(cfg))}, "
        f"refinement samples {cfg['refine_weight']:.2f}; K = {k} turns on "
        f"{result.get('eval_samples')} held-out questions ({cfg['scenes']['n_eval']} scenes, {cfg['scenes'].get('eval_split', 'held-out')} series {cfg['scenes']['eval_seed']}); "
        f"decoder `{cfg['decoder']}`. mIoU per turn: mean over seeds x questions [95% bootstrap interval resampling "
        "seeds and questions together].",
        "",
    ]
    for v in result["variants"]:
        lines += [f"## {v['name']} (refinement samples: k in {v['refine_ks']}, {v['refine_ask']} questions)", ""]
        head = "| group | " + " | ".join(f"turn {t}" for t in range(1, k + 1)) + " | " + " | ".join(
            f"oracle turn {t}" for t in range(2, k + 1)) + " | improved / worse (turn 2) | oracle improved / worse (turn 2) |"  # fmt: skip
        lines += [head, "|---|" + "---|" * (2 * k + 1)]
        for g, cur in v["mean"].items():
            m, o = cur["model"], cur["oracle"]
            if not m:
                continue
            cells = [fmt_ci(r["gIoU"]) for r in m] + ["–"] * (k - len(m))
            ocells = [fmt_ci(r["gIoU"]) for r in o[1:]] + ["–"] * (k - len(o))
            iw = f"{m[1].get('improved', '–')} / {m[1].get('worse', '–')}" if len(m) > 1 else "–"
            oiw = f"{o[1].get('improved', '–')} / {o[1].get('worse', '–')}" if len(o) > 1 else "–"
            lines.append(
                f"| {g} (n = {m[0]['n']}) | " + " | ".join(cells) + " | " + " | ".join(ocells) + f" | {iw} | {oiw} |"
            )
        m_all = v["mean"].get("all", {}).get("model", [])
        if len(m_all) > 1:
            lines += ["", "Per turn (all questions): improved / worse / same, invalid refinements: " + "; ".join(
                f"turn {r['turn']}: {r.get('improved')} / {r.get('worse')} / {r.get('same')}, {r.get('refine_invalid')}"
                for r in m_all[1:]) + "."]  # fmt: skip
        nop = [r.get("n_no_proposal") for r in v["runs"]]
        lines += ["", f"Questions without a valid proposal at turn 1 (nothing to refine), per seed: {nop}."]
        pts = v["runs"][0].get("points") or {}
        if pts:
            lines += ["", "Points of the proposals (seed " + str(v["runs"][0]["seed"]) + "), per refinement turn: " + "; ".join(
                f"turn {t}: {p.get('points')} points, into {p.get('into')}, out of {p.get('out_of')}, kept inside "
                f"{p.get('kept_inside')}, kept outside {p.get('kept_outside')}, valid / invalid delete "
                f"{p.get('valid_delete')} / {p.get('invalid_delete')}, point score {fmt(p.get('point_score'))}"
                for t, p in pts.items()) + "."]  # fmt: skip
        lines.append("")
    lines += [
        "mIoU = mean per-sample mask IoU (LISA empty-target rule); turn 1 is the model's proposal (no refinement). "
        "Improved / worse: per-sample IoU vs the previous turn (tolerance 1e-9), summed over seeds. Oracle: the "
        "offset builder's labels (Inside keep, Ring move, Far / Hard-Delete delete) applied to the model's own proposal "
        "every turn — the bound on what refining *that* proposal can reach. Invalid refinements keep the previous "
        "state (`on_invalid: keep`).",
    ]
    return "\n".join(lines)


def _plot(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vs = result["variants"]
    if not vs:
        return None
    groups = [g for g in vs[0]["mean"]]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    for ax, g in zip(axes[0], groups):
        for i, v in enumerate(vs):
            cur = v["mean"].get(g) or {}
            for who, ls in (("model", "-"), ("oracle", "--")):
                rows = cur.get(who) or []
                if not rows:
                    continue
                mean = [r["gIoU"]["mean"] or 0 for r in rows]
                ax.errorbar([r["turn"] for r in rows], mean,
                            yerr=[[max(0.0, m - (r["gIoU"]["lo"] if r["gIoU"]["lo"] is not None else m)) for m, r in zip(mean, rows)],
                                  [max(0.0, (r["gIoU"]["hi"] if r["gIoU"]["hi"] is not None else m) - m) for m, r in zip(mean, rows)]], ls=ls, marker="o", color=f"C{i}", capsize=3,
                            label=f"{v['name']} ({who})")  # fmt: skip
        ax.set_title(f"{g}: mIoU per turn", fontsize=9)
        ax.set_xlabel("turn (1 = proposal)")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(1, int(result["config"]["turns"]) + 1))
    axes[0][0].set_ylabel("mIoU")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig
