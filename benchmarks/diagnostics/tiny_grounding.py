"""Diagnostic: what makes the tiny offline VLM find a named object from pixels (text>mask), one factor at a time.

Each variant is the embedded tiny recipe (``configs/sft/tiny-cpu.yaml``: tiny Qwen3-VL, 7-px patches, the
vision warm-up) with one change, trained on text>mask alone (the task that needs pixels) for ``--steps``
steps of 16, a checkpoint every ``--every`` steps; every checkpoint answers the same held-out text>mask
questions (scene series 10000, greedy decoding, the exact-region decoder) — a learning curve in the real
metric, mIoU. Beside it: the trivial baselines (always the centre cell; a random object of the image — finds
*an* object, ignores which one is named) and the ceiling (the reference answer), and the final checkpoint's
score per expression type with a bootstrap interval. The last checkpoint of each variant is compared with
the recipe's on the same questions (paired bootstrap + sign test).

    python benchmarks/diagnostics/tiny_grounding.py                     # every variant → results/diagnostics/tiny_grounding.json
    python benchmarks/diagnostics/tiny_grounding.py --only recipe no_warmup --steps 300 --every 100

A variant takes ~0.8 s a step on one core plus ~20 s per checkpoint evaluation; runs are kept under
``--work`` and reused (delete a variant's directory to redo it).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: name: (what changes, SFT overrides on top of the recipe). One factor per variant.
VARIANTS = {
    "recipe": ("the embedded default", []),
    "train_vision": ("SFT also trains the warmed-up vision tower", ["tuning.train_vision=true"]),
    "no_warmup": ("no vision warm-up (a random, frozen vision tower)", ["vision_warmup.steps=0"]),
    "no_warmup_train_vision": ("no warm-up, vision tower trained by SFT (the previous default's training)",
                               ["vision_warmup.steps=0", "tuning.train_vision=true"]),
    "warmup_appearance_only": ("warm-up on colour / shape only (no cell alignment)", ["vision_warmup.align=0"]),
    "word_align": ("the warm-up also aligns object tokens with their colour / shape words' input rows",
                   ["vision_warmup.words=1"]),
    "patch14": ("14-px patches: 16 image tokens (2 x 2 answer cells each)", ["model.tiny.patch_size=14"]),
    "qwen2_5_vl": ("tiny Qwen2.5-VL (rotary-only vision tower, no position table; warm-up on appearance only)",
                   ["model.tiny.family=qwen2_5_vl", "vision_warmup.align=0"]),
    "image_first": ("image before the question in the prompt", ["model.tiny.text_before_image=false"]),
    "mean_init": ("new token rows start at the mean row (the 7B choice) instead of a 2-D code", ["vocab.init=mean"]),
}
from _grounding import DECODER, TASK, question_set, score, summarise  # noqa: E402  (the diagnostics' shared parts)

from getok_lab.series import SERIES  # noqa: E402

EVAL_SERIES = SERIES["dev"]  # 10000: decisions are taken here; the demo reports on SERIES['test']


def sft_overrides(steps: int, every: int, out: Path, extra: list[str]) -> list[str]:
    return [
        f"output_dir={out}",
        f"train.max_steps={steps}",
        f"train.save_steps={every}",
        "train.save_total_limit=1000",
        f"data.num_samples={steps * 16}",
        'data.mixture=[{type: tasks, weight: 1, tasks: ["text>mask"], greedy: exact}]',
        "eval.enabled=false",
        *extra,
    ]


def eval_set(work: Path, n_scenes: int) -> Path:
    return question_set(work / f"eval-{n_scenes}", n_scenes, EVAL_SERIES)


def kinds_train_set(work: Path, kinds: list[str], n_scenes: int) -> Path:
    """text>mask training questions of ``n_scenes`` training scenes (series 0) whose expression is of one of
    ``kinds`` (:func:`~getok.data_builders.expressions.expression_kind`), e.g. ``colour shape``: the
    curriculum's first phase, where no position word can stand in for reading the object's appearance."""
    from getok.data_builders.dataset import reuse_built, write_dataset
    from getok.data_builders.expressions import expression_kind
    from getok.data_builders.scenes import generate_scenes
    from getok.data_builders.tasks import SampleList
    from getok.provenance import fingerprint
    from getok.train.config import MixtureEntry, load_sft_config
    from getok.train.data import build_pool

    cfg = load_sft_config(REPO / "configs/sft/tiny-cpu.yaml", [])
    spec = cfg.vocab.codecs[0]
    key = {"kinds": sorted(kinds), "n": n_scenes, "series": SERIES["train"], "codec": spec, "task": TASK,
           "scenes": cfg.data.scenes.scene_config().to_dict()}  # fmt: skip
    out = work / f"train-{'-'.join(sorted(kinds))}-{n_scenes}"
    if reuse_built(out, fingerprint(key), "a training set", "remove it"):
        return out
    scenes = generate_scenes(n_scenes, SERIES["train"], cfg.data.scenes.scene_config())
    pool = build_pool(MixtureEntry(type="tasks", tasks=[TASK], greedy="exact"), [spec], scenes, 0)
    keep = SampleList(settings={"type": "tasks", "kinds": sorted(kinds)})
    keep.images.update(pool.images)
    for s in pool:
        if expression_kind(s.truth["query"]["text"]) in kinds:
            keep.append(s)
    print(f"training set: {len(keep)} of {len(pool)} text>mask questions have a {'/'.join(kinds)} expression")
    return write_dataset(keep, out, {"builder": {"fingerprint": fingerprint(key), **key}})


def run_variant(name: str, args, data: Path, ids: list[str], kinds: dict) -> dict:
    from getok.train.config import load_sft_config
    from getok.train.sft import run_sft
    from getok.vocab import load_model_and_processor

    what, extra = VARIANTS[name]
    out = args.work / name
    cfg = load_sft_config(REPO / "configs/sft/tiny-cpu.yaml",
                          sft_overrides(args.steps, args.every, out, [*args.set, *extra]))  # fmt: skip
    if not (out / "final").is_dir():
        run_sft(cfg, progress=not args.quiet)
    tr = json.loads((out / "summary.json").read_text())["train"]  # the run's own timing (also when reused)
    train_s, train_cpu = tr["train_wall_s"] + tr.get("setup_wall_s", 0.0), tr["train_cpu_s"]
    curve = []
    for step in range(args.every, args.steps + 1, args.every):
        ck = out / f"checkpoint-{step}"
        model, proc = load_model_and_processor(ck)
        model.eval()
        ious = score(model, proc, data, out / "eval" / f"step-{step}")
        row = {"step": step, **summarise(ious, ids, kinds)}
        curve.append(row)
        print(f"  {name} step {step}: mIoU {row['miou']:.3f} {row['ci']}", flush=True)
    loss = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    loss = [r for r in loss if "loss" in r]
    warm = out / "base-warm" / "getok_vision_warmup.json"
    return {
        "what": what,
        "overrides": extra,
        "curve": curve,
        "loss_first_last": [loss[0]["loss"], loss[-1]["loss"]] if loss else None,
        "vision_warmup": json.loads(warm.read_text())["stats"] if warm.is_file() else None,
        "train_wall_s": round(train_s, 1),  # warm-up + data + SFT steps
        "train_cpu_s": round(train_cpu, 1),
        "final_ious": [ious[i] for i in ids],
    }


DOC = REPO / "docs" / "tiny_grounding.md"
BEGIN, END = "<!-- tiny_grounding.py:begin -->", "<!-- tiny_grounding.py:end -->"


def markdown(res: dict) -> str:
    """The tables of one result: learning curves (mIoU per checkpoint) beside the baselines and the ceiling,
    the paired comparison of each variant's last checkpoint with the recipe's, and mIoU by expression type."""
    from getok.eval.stats import format_diff, format_p

    st, base, var = res["settings"], res["baselines"], res["variants"]
    steps = sorted({r["step"] for v in var.values() for r in v["curve"]})
    L = [f"Held-out text>mask, {st['questions']} questions ({st['eval_scenes']} scenes of series {EVAL_SERIES}), "
         f"mIoU of greedy answers through `{st['decoder']}`; training: text>mask only, batch {st['batch']}"
         + (f", `{' '.join(st['set'])}`" if st.get("set") else "") + ". Command: `python benchmarks/diagnostics/"
         f"tiny_grounding.py --steps {st['steps']} --every {st['every']}`.", ""]  # fmt: skip
    L += ["| variant | what changes | " + " | ".join(f"step {s}" for s in steps)
          + " | last vs recipe [95 % CI] | p | wall s (warm-up + SFT) / SFT CPU s |",
          "|---|---|" + "---|" * len(steps) + "---|---|---|"]  # fmt: skip
    for name, v in var.items():
        by = {r["step"]: r for r in v["curve"]}
        cells = [f"{by[s]['miou']:.3f}" if s in by else "–" for s in steps]
        c = v.get("vs_recipe")
        cmp_ = format_diff(c) if c else "–"
        p = format_p(c["p"]) if c else "–"
        L.append(f"| `{name}` | {v['what']} | " + " | ".join(cells)
                 + f" | {cmp_} | {p} | {v['train_wall_s']:.0f} / {v['train_cpu_s']:.0f} |")  # fmt: skip
    for b, lab in (("centre", "always the centre cell"), ("random_object", "a random object of the scene"),
                   ("reference", "the reference answer (ceiling)")):  # fmt: skip
        L.append(f"| baseline | {lab} | " + " | ".join(f"{base[b]['miou']:.3f}" for _ in steps) + " | – | – | – |")
    kinds = sorted(res["kinds"])
    L += ["", "Last checkpoint by expression type (mIoU):", "",
          "| variant | " + " | ".join(f"{k} (n={res['kinds'][k]})" for k in kinds) + " |",
          "|---|" + "---|" * len(kinds)]  # fmt: skip
    rows = [(f"`{n}`", v["curve"][-1]["by_kind"]) for n, v in var.items() if v["curve"]]
    rows += [(f"baseline: {b}", base[b]["by_kind"]) for b in ("centre", "random_object", "reference")]
    for name, by in rows:
        L.append(f"| {name} | " + " | ".join(f"{by[k]['miou']:.3f}" if k in by else "–" for k in kinds) + " |")
    return "\n".join(L) + "\n"


PROBES = REPO / "benchmarks/results/diagnostics/tiny_grounding_probes.json"
PBEGIN, PEND = "<!-- tiny_grounding.py:probes:begin -->", "<!-- tiny_grounding.py:probes:end -->"


def merge_probes(paths: list[str]) -> dict:
    """Short runs of the recipe with one ``--set`` change each (same steps / eval set), compared with the first
    (the recipe itself) on the same questions at the last checkpoint."""
    from getok.eval.stats import paired_comparison

    runs = [json.loads(Path(p).read_text()) for p in paths]
    base = runs[0]
    keys = ("steps", "every", "eval_scenes", "questions")
    for r in runs[1:]:
        if any(r["settings"][k] != base["settings"][k] for k in keys):
            raise SystemExit(f"probes differ in {keys}: {r['settings']} vs {base['settings']}")
    rows = []
    b_ious = base["variants"]["recipe"]["final_ious"]
    for r in runs:
        v = r["variants"]["recipe"]
        c = paired_comparison(b_ious, v["final_ious"]) if r is not base else None
        rows.append({"set": r["settings"]["set"], "curve": [{"step": x["step"], "miou": x["miou"], "ci": x["ci"]}
                                                          for x in v["curve"]],
                     "vs_first": {k: (round(x, 4) if isinstance(x, float) else x) for k, x in c.items()} if c else None,
                     "train_wall_s": v["train_wall_s"], "train_cpu_s": v["train_cpu_s"]})  # fmt: skip
    return {"what": "probes: the recipe with one change each, short runs", "settings": base["settings"],
            "baselines": {k: {"miou": v["miou"], "ci": v["ci"]} for k, v in base["baselines"].items()},
            "rows": rows, "machine": base.get("machine")}  # fmt: skip


def probes_markdown(p: dict) -> str:
    from getok.eval.stats import format_diff, format_p

    st = p["settings"]
    steps = [x["step"] for x in p["rows"][0]["curve"]]
    L = [f"Short runs ({st['steps']} steps, text>mask only, {st['questions']} held-out questions; the first row is the "
         "recipe itself, each other row changes one setting), compared with the first row on the same questions:",
         "", "| change | " + " | ".join(f"step {s}" for s in steps) + " | vs the recipe [95 % CI] | better / worse | p |",
         "|---|" + "---|" * len(steps) + "---|---|---|"]  # fmt: skip
    for i, r in enumerate(p["rows"]):
        c = r["vs_first"]
        name = "(the recipe)" if i == 0 else "`" + " ".join(r["set"]) + "`"
        tail = (f"{format_diff(c)} | {c['improved']} / {c['worse']} | {format_p(c['p'])}"
                if c else "– | – | –")  # fmt: skip
        L.append(f"| {name} | " + " | ".join(f"{x['miou']:.3f}" for x in r["curve"]) + f" | {tail} |")
    return "\n".join(L) + "\n"


def _replace_block(text: str, begin: str, end: str, body: str) -> str:
    a, b = text.index(begin) + len(begin), text.index(end)
    return text[:a] + "\n" + body + text[b:]


def write_doc(res: dict | None, doc: Path = DOC) -> None:
    """Rewrite the generated blocks of ``docs/tiny_grounding.md``: :func:`markdown` of ``res`` and, when
    committed, the probes table."""
    from getok.io import atomic_write_text

    text = doc.read_text()
    if res is not None:
        text = _replace_block(text, BEGIN, END, markdown(res))
    if PROBES.is_file() and PBEGIN in text:
        text = _replace_block(text, PBEGIN, PEND, probes_markdown(json.loads(PROBES.read_text())))
    atomic_write_text(doc, text)


def main(argv=None) -> int:
    from _cli import report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="variants to run (default: all)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=150)
    ap.add_argument("--eval-scenes", type=int, default=150, help="held-out scenes (about 2 questions each)")
    ap.add_argument("--work", type=Path, default=Path("runs/diag-grounding"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/diagnostics/tiny_grounding.json"))
    ap.add_argument("--set", nargs="*", default=[], metavar="A.B=C",
                    help="SFT overrides for every variant (before the variant's own), e.g. train.lr=1e-3")
    ap.add_argument("--train-kinds", nargs="+", metavar="KIND",
                    help="train on the text>mask questions whose expression is of these kinds only (e.g. colour "
                         "shape; the held-out questions keep every kind)")
    ap.add_argument("--train-scenes", type=int, default=3000, help="training scenes of --train-kinds")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--doc", action="store_true", help="only rewrite the table in docs/tiny_grounding.md from --out")
    ap.add_argument("--merge-probes", nargs="+", metavar="JSON",
                    help="combine short runs written with --out (the recipe first, then one --set change each) into "
                         "results/diagnostics/tiny_grounding_probes.json and its table in the doc")
    args = ap.parse_args(argv)
    if args.merge_probes:
        from getok.io import atomic_write_json

        atomic_write_json(PROBES, merge_probes(args.merge_probes))
        write_doc(None)
        return 0
    if args.doc:
        write_doc(json.loads(Path(args.out).read_text()))
        return 0
    if args.every <= 0 or args.steps % args.every:
        ap.error("--steps must be a positive multiple of --every")

    import torch

    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.scenes import expression_kind
    from getok.eval.baselines import BaselineGenerator
    from getok.eval.stats import paired_comparison

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.train_kinds:
        bad = [k for k in args.train_kinds if k not in ("colour", "shape", "superlative", "relation")]
        if bad:
            ap.error(f"--train-kinds: unknown kinds {bad}")
        path = kinds_train_set(args.work, args.train_kinds, args.train_scenes)
        args.set = [*args.set, f"data.mixture=[{{type: dataset, weight: 1, path: {path}}}]"]
    data = eval_set(args.work, args.eval_scenes)
    samples = list(read_dataset(data, check_images=False))
    ids = [s.sample_id for s in samples]
    kinds = {s.sample_id: expression_kind(s.truth["query"]["text"]) for s in samples}
    base = {}
    for b in ("centre", "random_object", "reference"):
        ious = score(None, None, data, args.work / "eval" / f"baseline-{b}",
                     generate_fn=BaselineGenerator(b, samples=samples, seed=0))  # fmt: skip
        base[b] = summarise(ious, ids, kinds)
    prev = {}
    old = Path(args.out)
    if old.is_file():  # keep variants run earlier with the same settings
        o = json.loads(old.read_text())
        same = ("steps", "every", "eval_scenes", "set")
        if all(o.get("settings", {}).get(k) == (args.set if k == "set" else getattr(args, k)) for k in same):
            prev = o.get("variants", {})
    res = dict(prev)
    for name in args.only or list(VARIANTS):
        print(f"{name}: {VARIANTS[name][0]}", flush=True)
        res[name] = run_variant(name, args, data, ids, kinds)
    if "recipe" in res:
        for name, r in res.items():
            if name != "recipe" and r.get("final_ious"):
                c = paired_comparison(res["recipe"]["final_ious"], r["final_ious"])
                r["vs_recipe"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()}
    result = {
        "what": __doc__.splitlines()[0],
        "settings": {"steps": args.steps, "every": args.every, "batch": 16, "eval_scenes": args.eval_scenes,
                     "set": args.set, "questions": len(ids), "task": TASK, "decoder": DECODER,
                     "recipe": "configs/sft/tiny-cpu.yaml"},  # fmt: skip
        "kinds": {k: sum(1 for i in ids if kinds[i] == k) for k in sorted(set(kinds.values()))},
        "baselines": base,
        "variants": res,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": 1},
    }
    rc = report(result, args.out)
    if Path(args.out).resolve() == (REPO / "benchmarks/results/diagnostics/tiny_grounding.json").resolve():
        write_doc(result)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
