"""``run_demo``: every stage in order, then ``run.json`` and ``summary.md`` rewritten from the markers."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from getok.errors import ConfigError
from getok.eval.baselines import BaselineGenerator
from getok.provenance import Clock, cpu_model, machine
from getok.provenance import versions as provenance_versions

from .compare import compare_runs, expression_kinds
from .config import (
    BASELINES,
    EVAL_SERIES,
    GRID_CODEC,
    GRPO_SERIES,
    STAGES,
    TRAIN_SERIES,
    DemoConfig,
    grpo_config,
    sft_config,
)
from .data import build_box_polygon_set
from .evaluate import eval_sets, evaluate_sets, load_model, untrained_model
from .figures import plot_miou, plot_training_curves, read_jsonl
from .report import summary_markdown
from .stages import Stages


# ---- the run
def lock_differences(versions: dict, lock: str | Path | None = None) -> dict | None:
    """``{package: {"installed", "lock"}}`` for every package of ``versions`` whose installed version differs
    from ``requirements/lock.txt`` (the versions ``make demo`` installs); None when there is no lock file
    (getok installed from a wheel).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "lock.txt")
    >>> _ = open(f, "w").write("# comment\\ntorch==2.14.1\\nTransformers==5.23.0\\n")
    >>> lock_differences({"torch": "2.14.1", "transformers": "5.25.0", "numpy": "2.0"}, f)
    {'transformers': {'installed': '5.25.0', 'lock': '5.23.0'}}
    """
    path = Path(lock) if lock else Path(__file__).resolve().parents[2] / "requirements" / "lock.txt"
    if not path.is_file():
        return None
    pinned = {}
    for line in path.read_text().splitlines():
        name, sep, ver = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pinned[name.strip().lower().replace("_", "-")] = ver.strip()
    return {k: {"installed": v, "lock": pinned[k.lower()]} for k, v in versions.items()
            if k.lower() in pinned and v is not None and pinned[k.lower()] != v}  # fmt: skip


def run_demo(cfg: DemoConfig, out_dir: str | Path, *, fast: bool = False, progress: bool = True,
             command: str | None = None) -> Path:  # fmt: skip
    """Run (or resume) the demo into ``out_dir``; returns the path of ``summary.md``.

    Parameters
    ----------
    cfg : DemoConfig
    out_dir : path
    fast : bool
        Recorded in the report (``cfg`` already holds the :data:`FAST` sizes).
    progress : bool
        tqdm bars inside the stages (stage banners are always printed, on stderr).
    command : str, optional
        The command line recorded in the report.
    """
    from getok.config import config_to_dict
    from getok.io import atomic_write_json, atomic_write_text

    clock, started = Clock(), time.strftime("%Y-%m-%d %H:%M:%S")
    load0 = machine()["load_average"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch

        torch.set_num_threads(cfg.threads)
    except ImportError as exc:  # pragma: no cover - torch is a hard requirement of training
        raise ConfigError(f"the demo trains a model: install torch ({exc})") from exc
    stages = Stages(out)
    sft_cfg = sft_config(cfg, out)
    g1_cfg, g2_cfg = grpo_config(cfg, out, 1), grpo_config(cfg, out, 2)
    d = out / "data"
    keys: dict[str, dict] = {}
    keys["data"] = {"train_scenes": cfg.train_scenes, "eval_scenes": cfg.eval_scenes, "eval_tasks": cfg.eval_tasks,
                    "polygon_codec": cfg.polygon_codec}  # fmt: skip
    eval_key = {"turns": cfg.turns, "eval_batch": cfg.eval_batch, "seed": cfg.seed, "data": keys["data"]}

    # 1. data: the polygon training set and the held-out sets
    def data_stage() -> dict:
        from getok.data_builders.dataset import read_dataset
        from getok.train.config import EvalConfig
        from getok.train.data import build_eval_set

        poly_train = build_box_polygon_set(cfg.train_scenes, TRAIN_SERIES, cfg.polygon_codec, d / "polygons-train",
                                           progress=progress)  # fmt: skip
        ev = EvalConfig(n_scenes=cfg.eval_scenes, seed=EVAL_SERIES, tasks=list(cfg.eval_tasks))
        tasks = build_eval_set(ev, sft_cfg.data, GRID_CODEC, d / "eval-tasks")
        poly_eval = build_box_polygon_set(cfg.eval_scenes, EVAL_SERIES, cfg.polygon_codec, d / "eval-polygons")
        return {name: len(read_dataset(p, check_images=False)) for name, p in
                (("polygons-train", poly_train), ("eval-tasks", tasks), ("eval-polygons", poly_eval))}  # fmt: skip

    stages.run("data", "scenes → polygon training set, held-out task and polygon sets", keys["data"], data_stage)
    sets = eval_sets(cfg, out)

    # 2. trivial baselines
    def baselines_stage() -> dict:
        from getok.data_builders.dataset import read_dataset

        samples = {key: list(read_dataset(data_dir, check_images=False)) for key, (data_dir, *_) in sets.items()}
        res = {}
        for b, _ in BASELINES:
            gens = {key: BaselineGenerator(b, cfg.polygon_codec, samples=samples[key], seed=cfg.seed) for key in sets}
            res[b] = evaluate_sets(None, None, sets, out / "eval" / f"baseline-{b}", cfg, f"baseline:{b}",
                                    generate_fn=gens, progress=False)  # fmt: skip
        return res

    base_m = stages.run("baselines", "trivial answers (centre cell, the query's geometry, the reference)",
                        {"eval": eval_key, "baselines": [b for b, _ in BASELINES]}, baselines_stage)  # fmt: skip

    # 3. the untrained model
    def untrained_stage() -> dict:
        model, proc = untrained_model(cfg, out)
        return evaluate_sets(model, proc, sets, out / "eval" / "untrained", cfg, "untrained", progress=progress)

    # training depends on the training data only: other held-out settings re-evaluate, never retrain
    keys["sft"] = {"sft": config_to_dict(sft_cfg), "data": {k: keys["data"][k] for k in ("train_scenes", "polygon_codec")}}
    model_m = {"untrained": stages.run("eval-untrained", "evaluate the untrained model (vocabulary added)",
                                       {"eval": eval_key, "model": keys["sft"]}, untrained_stage)}  # fmt: skip

    # 4-9. train and evaluate
    def sft_stage() -> dict:
        from getok.train.sft import run_sft

        s = run_sft(sft_cfg, progress=progress)
        return {"train": s.get("train"), "data": s.get("data"), "params": s.get("params"), "final": s.get("final")}

    def grpo_stage(gcfg) -> Callable[[], dict]:
        def fn() -> dict:
            from getok.rl.grpo import run_grpo

            s = run_grpo(gcfg, progress=progress)
            keep = ("train", "data", "params", "final", "proposals", "start_policy")
            return {k: s.get(k) for k in keep}

        return fn

    def eval_stage(path: Path, name: str) -> Callable[[], dict]:
        def fn() -> dict:
            model, proc = load_model(path)
            return evaluate_sets(model, proc, sets, out / "eval" / name, cfg, name, progress=progress)

        return fn

    train_m: dict[str, dict] = {}
    keys["grpo1"] = {"grpo": config_to_dict(g1_cfg), "after": keys["sft"]}
    keys["grpo2"] = {"grpo": config_to_dict(g2_cfg), "after": keys["grpo1"]}
    titles = {
        "sft": f"SFT of the tiny model ({sft_cfg.train.max_steps} steps of {sft_cfg.train.batch_size})",
        "grpo1": f"GRPO stage 1: propose cells ({g1_cfg.train.max_steps} steps × {g1_cfg.per_device_batch} completions)",
        "grpo2": f"GRPO stage 2: refine own proposals ({g2_cfg.train.max_steps} steps × {g2_cfg.per_device_batch} completions)",
    }
    fns = {"sft": sft_stage, "grpo1": grpo_stage(g1_cfg), "grpo2": grpo_stage(g2_cfg)}
    for name in ("sft", "grpo1", "grpo2"):
        train_m[name] = stages.run(name, titles[name], keys[name], fns[name])
        model_m[name] = stages.run(f"eval-{name}", f"evaluate the {name} model", {"eval": eval_key, "model": keys[name]},
                                   eval_stage(out / name / "final", name))  # fmt: skip

    # 10. per-sample overlays of the final model
    def viz_stage() -> dict:
        from getok.eval.viz import render_run

        res = {}
        for set_key in ("tasks", "polygons"):
            run_dir = out / "eval" / "grpo2" / set_key
            recs = read_jsonl(run_dir / "records.jsonl")
            ids = _viz_ids(recs, cfg.viz_samples)
            r = render_run(run_dir, out / "viz" / set_key, ids=ids, progress=progress)
            res[set_key] = {"index": str(Path(r["index"]).relative_to(out)), "rendered": len(r["pngs"]),
                            "skipped": len(r["skipped"])}  # fmt: skip
        return res

    stages.run("viz", "per-sample overlays + HTML index of the final model",
               {"viz": cfg.viz_samples, "after": keys["grpo2"], "eval": eval_key}, viz_stage)  # fmt: skip

    # report (always rewritten from the markers)
    results = {"models": {k: v["result"] for k, v in model_m.items()},
               "baselines": base_m["result"]}  # fmt: skip
    comparisons = compare_runs(results, expression_kinds(out / "data" / "eval-tasks"))
    plot_training_curves(out, out / "figures" / "training_curves.png")
    plot_miou(results, out / "figures" / "miou_by_model.png")
    for stage in ("grpo1", "grpo2"):
        src = out / stage / "reward_curve.png"
        if src.is_file():
            shutil.copyfile(src, out / "figures" / f"{stage}_reward_curve.png")
    stage_info = {st: {k: m[k] for k in ("title", "wall_s", "cpu_s", "finished")}
                  for st in STAGES if (m := stages.marker(st))}  # fmt: skip
    info = {
        "command": command or f"getok demo --out {out}" + (" --fast" if fast else "") + f" --seed {cfg.seed}",
        "fast": fast,
        "config": {**config_to_dict(cfg), "polygon_codec": cfg.polygon_codec},
        "seeds": {
            "seed": cfg.seed,
            "tiny_model": sft_cfg.model.tiny_seed,
            "vocab_init": sft_cfg.vocab.init_seed,
            "scene_series": {"sft": TRAIN_SERIES, "grpo": GRPO_SERIES, "held_out": EVAL_SERIES},
        },  # fmt: skip
        "versions": (versions := provenance_versions()),
        "versions_vs_lock": lock_differences(versions),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            **cpu_model(),  # float results differ between CPUs with other vector units
            "loadavg_start": load0,
            "torch_threads": cfg.threads,
        },  # fmt: skip
        "sft": {"steps": sft_cfg.train.max_steps, "config": config_to_dict(sft_cfg)},
        "grpo": {"stage1": config_to_dict(g1_cfg), "stage2": config_to_dict(g2_cfg)},
        "training": {k: (v["result"] or {}).get("train") for k, v in train_m.items()},
        "stages": stage_info,
        "total": {
            "wall_s": round(sum(m["wall_s"] for m in stage_info.values()), 1),
            "cpu_s": round(sum(m["cpu_s"] for m in stage_info.values()), 1),
        },  # fmt: skip
        "results": results,
        "comparisons": comparisons,
    }
    prev = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    wall, cpu = clock.elapsed()
    invocation = {"started": started, "ran": stages.ran, "skipped": stages.skipped, "wall_s": round(wall, 1),
                  "cpu_s": round(cpu, 1), "loadavg_start": load0, "loadavg_end": machine()["load_average"]}  # fmt: skip
    info["invocations"] = list(prev.get("invocations", [])) + [invocation]
    atomic_write_json(out / "run.json", info)
    summary = out / "summary.md"
    atomic_write_text(summary, summary_markdown(results, info))
    return summary


def _viz_ids(records: Sequence[dict], k: int) -> list[str]:
    """Up to ``k`` sample ids, spread over the tasks (the first of each task in turn)."""
    by_task: dict[str, list[str]] = {}
    for r in records:
        by_task.setdefault(str(r.get("task")), []).append(str(r.get("id")))
    out: list[str] = []
    i = 0
    while len(out) < k and any(i < len(v) for v in by_task.values()):
        for t in sorted(by_task):
            if i < len(by_task[t]) and len(out) < k:
                out.append(by_task[t][i])
        i += 1
    return out


