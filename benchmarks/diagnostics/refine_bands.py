"""Diagnostic: what does a model's refine turn do with each kind of proposed point?

The demo's refine turn keeps every point of its own proposals (turn 2 = turn 1 on every held-out question),
while the oracle refinement of the same proposals would gain +0.23 on text>mask. Either the refine turn did
not learn the refinement at all, or it learned it on the training samples' noisy proposals and does not
transfer to its own. This scores the refine turn on **held-out refinement samples built exactly like the
training ones** (:func:`getok.data_builders.refine.refine_from_tasks`: the evaluated question in turn 1, a
noisy proposal of ``k`` cells answered for it, the demo's ``inside_steps``), with turn 1 given, against the
labels the builder wrote — per band of the proposed point:

* **Inside** (on the object: keep ``<off_0_0>``), **Ring** (beside it: the move onto it), **Far** and
  **Hard-Delete** (``<DELETE>``);
* per band: the share of exact labels, and the action the model took (keep / a move / delete), beside the
  majority-action rate a model that ignores the image would reach.

    python benchmarks/diagnostics/refine_bands.py --model runs/demo/sft/final [--scenes 100] [--out FILE.json]

The samples come from the development series (10000), never the test series.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _grounding import DECODER, REPO  # noqa: E402

from getok_lab.series import SERIES  # noqa: E402

TOKEN = re.compile(r"<off_-?\d+_-?\d+>|<DELETE>")
TASKS = ["text>mask", "point>mask", "box>mask"]


def refine_set(out_dir: Path, n_scenes: int, series: int, ks: list[int], inside_steps: float | None) -> Path:
    """Held-out refinement samples of ``n_scenes`` scenes of ``series`` (the demo's codec and scenes)."""
    from getok.data_builders.dataset import reuse_built, write_dataset
    from getok.data_builders.scenes import generate_scenes
    from getok.provenance import fingerprint
    from getok.train.config import MixtureEntry, load_sft_config
    from getok.train.data import build_pool

    cfg = load_sft_config(REPO / "configs/sft/tiny-cpu.yaml", [])
    spec = cfg.vocab.codecs[0]
    key = {"n": n_scenes, "series": series, "ks": ks, "inside_steps": inside_steps, "codec": spec, "tasks": TASKS}
    fp = fingerprint(key)
    if reuse_built(out_dir, fp, "a refinement set", "remove it"):
        return out_dir
    scenes = generate_scenes(n_scenes, series, cfg.data.scenes.scene_config())
    entry = MixtureEntry(type="offsets", tasks=TASKS, ks=ks, codec=spec, inside_steps=inside_steps)
    pool = build_pool(entry, [spec], scenes, task_seed=series)
    source = {"loader": "scenes", "n": n_scenes, "seed": series, "config": cfg.data.scenes.scene_config().to_dict()}
    return write_dataset(pool, out_dir, {"builder": {"fingerprint": fp, **key}, "sources": [source]})


def action(tok: str | None) -> str:
    if tok is None:
        return "missing"
    if tok == "<DELETE>":
        return "delete"
    return "keep" if tok == "<off_0_0>" else "move"


def analyse(records: list[dict], samples: dict[str, dict]) -> dict:
    """Per band: n, exact-label rate, the model's action shares, and the majority-action rate."""
    per: dict[str, dict] = {}
    for r in records:
        s = samples[r["id"]]
        labels = TOKEN.findall(s["turns"][1]["assistant"])
        said = TOKEN.findall(r.get("answer") or "")
        for i, band in enumerate(s["meta"]["bands"]):
            d = per.setdefault(band, {"n": 0, "exact": 0, "actions": Counter(), "label_actions": Counter()})
            got = said[i] if i < len(said) and len(said) == len(labels) else None
            d["n"] += 1
            d["exact"] += int(got == labels[i])
            d["actions"][action(got)] += 1
            d["label_actions"][action(labels[i])] += 1
    out = {}
    for band, d in per.items():
        n = d["n"]
        out[band] = {"n": n, "exact": round(d["exact"] / n, 4),
                     "model_actions": {k: round(v / n, 4) for k, v in sorted(d["actions"].items())},
                     "label_actions": {k: round(v / n, 4) for k, v in sorted(d["label_actions"].items())}}  # fmt: skip
    total = Counter()
    for d in per.values():
        total.update(d["label_actions"])
    n = sum(total.values())
    maj, cnt = total.most_common(1)[0]
    exact = sum(d["exact"] for d in per.values())
    return {"points": n, "exact": round(exact / n, 4), "majority_action": maj, "majority_rate": round(cnt / n, 4),
            "bands": out}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, nargs="+", required=True)
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--inside-steps", type=float, default=0.0)
    ap.add_argument("--work", type=Path, default=Path("runs/diag-refine-bands"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch

    from getok.eval.run_records import read_records
    from getok.eval.runner import evaluate
    from getok.vocab import load_model_and_processor

    data = refine_set(args.work / f"data-{args.scenes}", args.scenes, SERIES["dev"], args.ks, args.inside_steps)
    samples = {s["sample_id"]: s for s in map(json.loads, (data / "samples.jsonl").read_text().splitlines())}
    res = {"data": str(data), "series": SERIES["dev"], "ks": args.ks, "inside_steps": args.inside_steps, "models": {}}
    for m in args.model:
        model, proc = load_model_and_processor(m)
        model.eval()
        out = args.work / "eval" / m.as_posix().strip("/").replace("/", "_")
        with torch.inference_mode():
            evaluate(model, proc, str(data), decoder=DECODER, out_dir=str(out), turns=1, batch_size=32,
                     max_new_tokens=16, resume=True, progress=False)  # fmt: skip
        r = res["models"][str(m)] = analyse(list(read_records(out / "records.jsonl")), samples)
        print(f"{m}: {r['points']} points, exact {r['exact']:.3f} (majority action {r['majority_action']} "
              f"{r['majority_rate']:.3f})")
        for band, b in sorted(r["bands"].items()):
            print(f"    {band:12s} n={b['n']:4d} exact {b['exact']:.3f}  model {b['model_actions']}  "
                  f"labels {b['label_actions']}")
    if args.out:
        from getok.io import atomic_write_json

        atomic_write_json(args.out, res)  # makes the parent directory
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
