"""Study: change the grid of a trained model (``n x n`` → ``m x m``) and carry its learned rows over.

``getok study resize-vocab`` trains the tiny model with ``grid:n=<n>`` tokens on the query-conditioned
tasks (``point>mask``, ``box>mask``: the ones it learns in minutes), then for every direction ``n → m``
(default 8 → 16 and 16 → 8) and every init of the new cell rows — ``interp`` (bilinear interpolation of
the learned cell rows, input and output: :func:`getok.vocab.resize_grid`), ``mean`` (every new row the
mean of the vocabulary, plus a little noise) and ``random`` (the model's own init) — it evaluates the
resized model on held-out scenes written in the new grid **before any further training**, and again
after a short fine-tune at ``m``. Two reference rows: the source model at its own grid, and a fresh
model trained at ``m`` for the fine-tune budget only (what the fine-tune would reach without the
carried-over rows).

What this can show on a CPU: whether the resized token rows still *mean* their positions (the question
is written in the new tokens, so a model that reads ``<g16_r09_c05>`` as "near ``<g8_r04_c02>``" answers
with nearby cells at once), and how much of the learned skill a short fine-tune recovers per init.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from getok.config import config_to_dict, load_config
from getok.decoding.base import canonical_decoder_spec
from getok.errors import ConfigError

from .common import Budget, Clock, SceneSeries, command_line, environment, fmt_ci, mean_ci, write_outputs

__all__ = ["ResizeConfig", "load_resize_config", "run_resize_vocab", "resize_markdown", "INITS"]

log = logging.getLogger("getok_lab.studies.resize_vocab")

NAME = "resize-vocab"
INITS = ("interp", "mean", "random")
METRICS = ("gIoU", "Acc@0.5", "Acc@0.8", "invalid_rate")


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
    source_init : str
        Row init when the source model gets its ``n``-grid tokens.
    tasks, task_weights : training / evaluation tasks and their shares.
    seeds : list of int
    budget : Budget
        Training of each source model.
    finetune : Budget
        The short fine-tune after resizing (and the from-scratch reference).
    scratch_baseline : bool
        Also train a fresh model at ``m`` for ``finetune.steps``.
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
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: Budget = field(default_factory=_default_source)
    finetune: Budget = field(default_factory=_default_finetune)
    scratch_baseline: bool = True
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
        if bad or not self.inits:
            raise ConfigError(f"inits must be a non-empty subset of {sorted(known)}, got {self.inits}")
        if len(self.task_weights) != len(self.tasks) or min(self.task_weights, default=0) <= 0:
            raise ConfigError("task_weights must give one positive weight per task")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and non-empty, got {self.seeds}")


FAST_OVERRIDES = [
    "budget.steps=3", "budget.batch_size=2", "budget.dataloader_workers=0", "budget.vision_warmup=2", "finetune.steps=2", "finetune.vision_warmup=2",
    "finetune.batch_size=2", "finetune.dataloader_workers=0", "scenes.n_train=6", "scenes.n_eval=2", "seeds=[0]",
    "directions=[[4,8]]", "eval_batch_size=8",
]  # fmt: skip


def load_resize_config(path=None, overrides=None, *, fast: bool = False) -> ResizeConfig:
    """Defaults ← YAML ← (``--fast``) ← ``a.b=c`` overrides, validated."""
    return load_config(ResizeConfig, path, (FAST_OVERRIDES if fast else []) + list(overrides or []))


# ---------------------------------------------------------------------------------------------- pieces
def _spec(n: int) -> str:
    return f"grid:n={int(n)}"


def _decoder(cfg: ResizeConfig, n: int) -> str:
    base = ",".join(p for p in cfg.decoder.split(",") if not p.startswith("n="))
    return f"{base},n={int(n)}" if canonical_decoder_spec(base).startswith("point_masks") else base


def _headline(summary: dict, tasks: list[str]) -> dict:
    out = {k: summary["overall"].get(k) for k in METRICS}
    out["n"] = summary["overall"].get("n")
    out["per_task"] = {t: {k: (summary.get("per_task", {}).get(t) or {}).get(k) for k in METRICS} for t in tasks}
    out["ms_per_sample"] = summary.get("ms_per_sample")
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
        "n_eval": len(ev),
    }


def _evaluate_dir(cfg: ResizeConfig, model_dir, data: dict, n: int, out: Path, seed: int, name: str) -> dict:
    from .common import evaluate_model, load_trained

    model, processor = load_trained(model_dir)
    s = evaluate_model(model, processor, data["eval_dir"], out, decoder=_decoder(cfg, n), max_new_tokens=8,
                       batch_size=cfg.eval_batch_size, seed=seed, model_name=name)  # fmt: skip
    return _headline(s, cfg.tasks)


def _resize_and_save(src_final, n: int, m: int, init: str, seed: int, out: Path) -> dict:
    """Load the source model, resize its grid to ``m`` with ``init``, save it (a model directory)."""
    import shutil

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


# ---------------------------------------------------------------------------------------------- the study
def run_resize_vocab(
    cfg: ResizeConfig, out_dir: str | Path, *, progress: bool = True, argv: list[str] | None = None
) -> dict:
    """Run the study; writes ``resize-vocab.{json,md,png}`` into ``out_dir`` and returns the result."""
    from .common import sft_config, train_sft

    total = Clock()
    root = Path(cfg.work_dir)
    train_scenes, eval_scenes = cfg.scenes.generate("train"), cfg.scenes.generate("eval")
    grids = sorted({int(x) for d in cfg.directions for x in d})
    data = {n: _data(cfg, n, root / "data", train_scenes, eval_scenes) for n in grids}
    result: dict = {
        "study": NAME,
        "config": config_to_dict(cfg),
        "provenance": {"command": command_line(argv), "seeds": list(cfg.seeds), "environment": environment()},
        "runs": [],
    }
    for seed in cfg.seeds:
        sources = {}
        for n in sorted({int(d[0]) for d in cfg.directions}):
            cfg_n = sft_config(cfg.budget, [_spec(n)], data[n]["pools"], root / f"seed{seed}" / f"source-n{n}", seed=seed,
                               init=cfg.source_init, image_size=cfg.scenes.size)  # fmt: skip
            log.info("seed %d: training the %d-grid source model (%d steps)", seed, n, cfg.budget.steps)
            s = train_sft(cfg_n, progress=progress)
            ev = _evaluate_dir(
                cfg, s["final"], data[n], n, root / f"seed{seed}" / f"source-n{n}" / "eval", seed, f"source n={n}"
            )
            sources[n] = s["final"]
            result["runs"].append({"seed": seed, "kind": "source", "n": n, "m": n, "init": cfg.source_init,
                                   "train_wall_s": s["train"]["train_wall_s"], "eval": ev})  # fmt: skip
        for n, m in cfg.directions:
            n, m = int(n), int(m)
            if cfg.scratch_baseline:
                d = root / f"seed{seed}" / f"scratch-n{m}"
                sc = sft_config(cfg.finetune, [_spec(m)], data[m]["pools"], d, seed=seed, init=cfg.source_init,
                                image_size=cfg.scenes.size)  # fmt: skip
                s = train_sft(sc, progress=progress)
                ev = _evaluate_dir(cfg, s["final"], data[m], m, d / "eval", seed, f"scratch m={m}")
                result["runs"].append({"seed": seed, "kind": "scratch", "n": m, "m": m, "init": cfg.source_init,
                                       "train_wall_s": s["train"]["train_wall_s"], "eval": ev})  # fmt: skip
            for init in cfg.inits:
                d = root / f"seed{seed}" / f"n{n}-to-m{m}-{init}"
                info = _resize_and_save(sources[n], n, m, init, seed, d / "resized")
                before = _evaluate_dir(
                    cfg, d / "resized", data[m], m, d / "eval-before", seed, f"{n}->{m} {init} before"
                )
                ft = sft_config(cfg.finetune, [_spec(m)], data[m]["pools"], d / "finetune", seed=seed, init=cfg.source_init,
                                model_path=str(d / "resized"), image_size=cfg.scenes.size)  # fmt: skip
                log.info("seed %d: %d -> %d (%s): fine-tuning %d steps", seed, n, m, init, cfg.finetune.steps)
                s = train_sft(ft, progress=progress)
                after = _evaluate_dir(cfg, s["final"], data[m], m, d / "eval-after", seed, f"{n}->{m} {init} after")
                result["runs"].append({"seed": seed, "kind": "resize", "n": n, "m": m, "init": init, **info,
                                       "before": before, "after": after,
                                       "finetune_wall_s": s["train"]["train_wall_s"]})  # fmt: skip
    result["rows"] = _rows(result["runs"], cfg)
    result["provenance"]["clock"] = total.stop()
    result["outputs"] = write_outputs(out_dir, NAME, result, resize_markdown(result), _plot(result))
    return result


def _rows(runs: list[dict], cfg: ResizeConfig) -> list[dict]:
    """Aggregate over seeds: one row per (kind, n, m, init)."""
    keys = []
    for r in runs:
        k = (r["kind"], r["n"], r["m"], r["init"])
        if k not in keys:
            keys.append(k)
    rows = []
    for k in keys:
        rs = [r for r in runs if (r["kind"], r["n"], r["m"], r["init"]) == k]
        row = {"kind": k[0], "n": k[1], "m": k[2], "init": k[3], "seeds": [r["seed"] for r in rs]}
        if k[0] == "resize":
            for when in ("before", "after"):
                row[when] = {mt: mean_ci([r[when][mt] for r in rs]) for mt in METRICS}
        else:
            row["eval"] = {mt: mean_ci([r["eval"][mt] for r in rs]) for mt in METRICS}
        rows.append(row)
    return rows


def resize_markdown(result: dict) -> str:
    cfg = result["config"]
    b, f = cfg["budget"], cfg["finetune"]
    lines = [
        "# Resize-vocab study (miniature)",
        "",
        f"Command: `{result['provenance']['command']}`  ",
        f"Seeds: {result['provenance']['seeds']}; tasks {', '.join(cfg['tasks'])}; source models: {b['steps']} steps x batch "
        f"{b['batch_size']} (lr {b['lr']}); fine-tune after resizing: {f['steps']} steps x batch {f['batch_size']} (lr {f['lr']}); "
        f"{cfg['scenes']['n_eval']} held-out scenes (series {cfg['scenes']['eval_seed']}); decoder `{cfg['decoder']}` at each grid.",
        "",
        "| grid | new rows | mIoU before fine-tune | Acc@0.5 before | invalid before | mIoU after | Acc@0.5 after | invalid after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if r["kind"] == "source":
            e = r["eval"]
            lines.append(f"| {r['n']} (source, trained {b['steps']} steps) | – | {fmt_ci(e['gIoU'])} | {fmt_ci(e['Acc@0.5'])} | "
                         f"{fmt_ci(e['invalid_rate'])} | – | – | – |")  # fmt: skip
    for r in result["rows"]:
        if r["kind"] == "resize":
            bf, af = r["before"], r["after"]
            lines.append(
                f"| {r['n']} → {r['m']} | `{r['init']}` | {fmt_ci(bf['gIoU'])} | {fmt_ci(bf['Acc@0.5'])} | {fmt_ci(bf['invalid_rate'])} | "
                f"{fmt_ci(af['gIoU'])} | {fmt_ci(af['Acc@0.5'])} | {fmt_ci(af['invalid_rate'])} |"
            )
        elif r["kind"] == "scratch":
            e = r["eval"]
            lines.append(f"| {r['m']} from scratch ({f['steps']} steps) | – | – | – | – | {fmt_ci(e['gIoU'])} | {fmt_ci(e['Acc@0.5'])} | "
                         f"{fmt_ci(e['invalid_rate'])} |")  # fmt: skip
    lines += [
        "",
        "mIoU = mean per-sample mask IoU over the held-out point>mask and box>mask questions, written in the new grid; "
        "Acc@0.5 = box IoU >= 0.5 (box of the decoded mask); invalid = answers that do not parse. `interp`: bilinear "
        "interpolation of the learned cell rows (input embedding and output head) at the new cell centres; `mean`: the "
        "vocabulary's mean row plus noise; `random`: the model's own init. Everything else in the model is carried "
        "over unchanged.",
    ]
    return "\n".join(lines)


def _plot(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = [r for r in result["rows"] if r["kind"] == "resize"]
    if not res:
        return None
    dirs = []
    for r in res:
        if (r["n"], r["m"]) not in dirs:
            dirs.append((r["n"], r["m"]))
    fig, axes = plt.subplots(1, len(dirs), figsize=(5.5 * len(dirs), 4), squeeze=False)
    for ax, (n, m) in zip(axes[0], dirs):
        rows = [r for r in res if (r["n"], r["m"]) == (n, m)]
        x = range(len(rows))
        for when, off in (("before", -0.2), ("after", 0.2)):
            ax.bar([i + off for i in x], [r[when]["gIoU"]["mean"] or 0 for r in rows], width=0.4,
                   yerr=[r[when]["gIoU"]["half"] or 0 for r in rows], capsize=3, label=f"{when} fine-tune")  # fmt: skip
        for r in result["rows"]:
            if r["kind"] == "source" and r["n"] == n:
                ax.axhline(r["eval"]["gIoU"]["mean"] or 0, color="k", ls="--", lw=1, label=f"source ({n}-grid)")
            if r["kind"] == "scratch" and r["m"] == m:
                ax.axhline(r["eval"]["gIoU"]["mean"] or 0, color="gray", ls=":", lw=1.5, label=f"fresh {m}-grid model")
        ax.set_xticks(list(x), [r["init"] for r in rows])
        ax.set_ylim(0, 1)
        ax.set_title(f"grid {n} → {m}: held-out mIoU ({', '.join(result['config']['tasks'])})", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
