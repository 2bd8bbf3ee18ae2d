"""Render ``benchmarks/README.md`` from the committed results, so its tables never drift from the numbers.

    python benchmarks/tables.py           # rewrite benchmarks/README.md from benchmarks/results/
    python benchmarks/tables.py --check   # exit 1 if benchmarks/README.md is not what the results give

Every ``benchmarks/results/*.json`` becomes one section: the command that writes it, its settings and
machine, a table of the key numbers, and target vs measured wherever the JSON records a target
(``targets_one_core``, ``target_*``, ``meets_target``). Known benchmarks come first, in a fixed order; any
other JSON gets a generic section (its top-level scalar fields, any list of row dicts, and every target
found). Studies (``benchmarks/results/studies/<name>.json``) follow, each with the tables of the
``<name>.md`` it wrote. No number is typed here: everything is read from the JSON. Pure standard library.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["render", "render_section", "render_generic", "render_study", "missed_targets", "main"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"

INTRO = """\
# Benchmarks

Measured numbers of getok: how faithfully and in how many tokens each codec writes real masks, how fast the
data builders turn masks into training targets, how fast the mask decoders, metrics and rewards run, the
cost of one SFT step of the tiny model, a localization diagnostic of that model and, when committed, the
studies (`getok study NAME`). Speed numbers are wall-clock or CPU seconds (each table says which) on the
shared 2-core CPU machine (no GPU) that each section's machine line describes; other jobs often run there
too, so read CPU time beside wall time. Speed targets live here, in the results JSON, and never in tests.
This file is generated from `benchmarks/results/*.json` (do not edit it by hand): to regenerate, run
`python benchmarks/<script>.py` (it rewrites its JSON), then `python benchmarks/tables.py`;
`python benchmarks/tables.py --check` (run by `tests/test_benchmark_tables.py`) fails when this file is stale.
"""


# ------------------------------------------------------------------------------------------------- formatting
def fmt(v, nd: int = 3) -> str:
    """One value as table text: ``–`` for missing, 0 decimals from 1000, 1 from 10, else ``nd``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.{nd}f}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def cell(v, nd: int = 3) -> str:
    return fmt(v, nd).replace("|", "\\|").replace("\n", " ")


def verdict(met) -> str:
    """``met`` / ``**missed**`` / ``–`` (no target)."""
    return "–" if met is None else "met" if met else "**missed**"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table; ``rows`` hold already formatted strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def columns(rows: list[dict], cols: list[tuple[str, str, int]]) -> list[str]:
    """A table of dict rows; ``cols`` are ``(header, key, decimals)``."""
    return table([h for h, _, _ in cols], [[cell(r.get(k), nd) for _, k, nd in cols] for r in rows])


def rows_table(rows: list[dict]) -> list[str]:
    """A table of dict rows with every key seen, in first-seen order."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return columns(rows, [(k, k, 3) for k in keys])


def kv(d: dict, skip: tuple[str, ...] = ()) -> str:
    """``key value; key value`` of a dict's entries (nested dicts as JSON)."""
    return "; ".join(f"{k} {fmt(v)}" for k, v in d.items() if k not in skip)


def machine_line(d: dict) -> str:
    env = d.get("machine") or d.get("environment") or (d.get("provenance") or {}).get("environment")
    return f"Machine: {kv(env)}." if isinstance(env, dict) else "Machine: not recorded in this JSON."


def walk(obj, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    """Every leaf of a JSON value with its key path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, (*path, str(i)))
    else:
        yield path, obj


def missed_targets(data) -> list[str]:
    """Key paths (``a › b``, without the ``meets_target`` key) of every ``meets_target`` leaf that is false."""
    return [
        " › ".join(p for p in path if p != "meets_target")
        for path, v in walk(data)
        if v is False and "meets_target" in path
    ]


# ------------------------------------------------------------------------------------------------- sections
def render_codecs(d: dict) -> list[str]:
    first = d["rows"][0] if d["rows"] else {}
    sizes = ", ".join(f"{s} {first[f'objects_{s}']}" for s in ("small", "medium", "large") if f"objects_{s}" in first)
    lines = [
        f"Data: {d['data']}: {d['objects']} objects ({sizes}). Raster: {d['raster']}.",
        f"Tokens per object: {d['token_counter']}; Qwen-style counts each digit and punctuation mark as one "
        "token. Encode / decode times are wall-clock ms per object.",
        "",
    ]
    lines += columns(d["rows"], [
        ("setting", "setting", 0), ("new tokens", "new_tokens", 0), ("IoU all", "iou_all", 3),
        ("IoU small", "iou_small", 3), ("IoU medium", "iou_medium", 3), ("IoU large", "iou_large", 3),
        ("tokens/object", "tokens_mean", 1), ("Qwen-style tokens/object", "qwen_tokens_mean", 1),
        ("invalid", "invalid_rate", 3), ("encode ms", "encode_ms_per_object", 3),
        ("decode ms", "decode_ms_per_object", 3),
    ])  # fmt: skip
    ref = d.get("reference")
    if ref:
        lines += ["", f"Reference ({ref['recipe']}): mean IoU {fmt(ref['iou_mean'])}, Qwen-style tokens/object "
                  f"{fmt(ref['qwen_tokens_mean'], 1)} over {ref['objects']} objects."]  # fmt: skip
    return lines


BUILDER_STAGES = [  # (stage, rate key, target key, unit, ms key)
    ("greedy", "masks_per_s", "target_masks_per_s", "masks", "ms_per_mask"),
    ("offsets", "samples_per_s", "target_samples_per_s", "samples", "ms_per_sample"),
    ("polygons", "polygons_per_s", "target_polygons_per_s", "polygon samples", "ms_per_polygon_sample"),
]


def _builder_details(stage: str, s: dict) -> str:
    if stage == "greedy":
        return f"mean IoU {fmt(s['mean_iou'])}, mean cells {fmt(s['mean_cells'], 2)}, fallbacks {s['fallbacks']}"
    return ("k " + str(s["k"]) + ", " if "k" in s else "") + f"`{s['codec']}`"


def render_builders(d: dict) -> list[str]:
    lines = [
        f"What: {d['what']}.",
        f"Settings: {kv(d['settings'])}.",
        f"Targets (one core): {kv(d['targets_one_core'])}.",
    ]
    lines += [""] + [f"- {n}" for n in d.get("notes", [])] + [""]
    sets = d["datasets"]
    lines += table(
        ["dataset", "source", "images", "masks", "image size", "proposer", "point masks/image",
         "point-mask s/image (cached, not in rates)", "floor ms/mask"],
        [[name, cell(s["source"]), s["images"], s["masks"], cell(s["image_size"]), s["proposer"]["name"],
          cell(s["proposals"]["unique_masks_per_image"], 1), cell(s["proposals"]["compute_s_per_image"]),
          cell(s["floor"]["stack_read_ms_per_mask"])] for name, s in sets.items()],
    )  # fmt: skip
    rows = []
    for name, s in sets.items():
        for stage, rate, target, unit, ms in BUILDER_STAGES:
            st = s[stage]
            rows.append([name, stage, f"{fmt(st[rate], 1)} {unit}/CPU s", cell(st[ms]), cell(s["wall_s"][stage]),
                         cell(st[target]), verdict(st.get("meets_target")), cell(_builder_details(stage, st))])  # fmt: skip
    lines += [""] + table(["dataset", "stage", "rate", "ms/item", "wall s", "target", "vs target", "details"], rows)
    return lines


def render_decoders(d: dict) -> list[str]:
    wf, met = d["weight_free"], d["weight_free"]["meets_target"]
    lines = [
        f"Data: {d['data']}: {wf['images']} images, {wf['instances']} instances, mean size (H, W) "
        f"{fmt(wf['mean_size_hw'])}; grid n {wf['grid_n']}; proposer {wf['proposer']}; point-mask stack "
        f"{fmt(wf['proposal_stack_ms_per_image'])} ms/image.",
        f"Answers: {wf['answers']}.",
        "",
        f"### Weight-free decoders (wall clock; target {wf['target_masks_per_s']} masks/s)",
        "",
    ]
    lines += table(
        ["decoder", "answer", "masks", "masks/s", "ms/mask", "mean IoU vs instance", "vs target"],
        [[r["decoder"], r["answer"], r["masks"], cell(r["masks_per_s"], 1), cell(r["ms_per_mask"]),
          cell(r["mean_iou_vs_instance"]), verdict(met.get(f"{r['decoder']} / {r['answer']}"))] for r in wf["rows"]],
    )  # fmt: skip
    m = d["metrics"]
    lines += [
        "",
        f"### Metrics ({m['samples']} synthetic samples, wall clock)",
        "",
        f"Target: `batch_records` at 128 px and every `summarize_*` under {fmt(m['target_s'], 1)} s: "
        f"{verdict(m['meets_target'])}.",
        "",
    ]
    lines += table(
        ["measure", "value"], [[k, cell(v)] for k, v in m.items() if k not in ("samples", "target_s", "meets_target")]
    )
    pc = d["prompt_cost"]
    lines += ["", f"### Prompt cost (image {fmt(pc['image_size_hw'])}, {pc['repeats']} repeats, "
              f"{pc['torch_threads']} torch thread(s), wall clock)", ""]  # fmt: skip
    lines += columns(pc["rows"], [
        ("model", "model", 0), ("k prompts", "k", 0), ("embed ms", "embed_ms", 2), ("prompt ms", "prompt_ms", 2),
        ("cached embedding s", "cached_embedding_s", 3), ("k embeddings s", "k_embeddings_s", 3),
        ("speed-up", "speedup", 2),
    ])  # fmt: skip
    return lines + ["", f"Note: {pc['note']}."]


def render_rewards(d: dict) -> list[str]:
    target, met = d["target_rollouts_per_s"], d.get("meets_target", {})
    runs = {k: v for k, v in d.items() if isinstance(v, dict) and "rollouts_per_s" in v}
    lines = [f"What: {d['what']}.", f"Settings: {kv(d['settings'])}.", f"Target: {target} rollouts/s.", ""]
    rows = []
    for name, r in runs.items():
        m = met.get(name) or {}
        rows.append([name, f"{r['rollouts']} x {r['repeats']}", cell(r["rollouts_per_s"], 1),
                     cell(r["rollouts_per_s_median"], 1), cell(r["rollouts_per_cpu_s"], 1), cell(r["ms_per_rollout"]),
                     cell(r["invalid_rate"]), cell(r["mean_overall"]), cell(r.get("tokens_per_rollout"), 1),
                     cell(r.get("session_cache_hit_rate", r.get("line_cache_hit_rate"))), verdict(m.get("wall")), verdict(m.get("cpu"))])  # fmt: skip
    lines += table(
        ["run", "rollouts x repeats", "rollouts/s (wall)", "median", "rollouts/CPU s", "ms/rollout", "invalid",
         "mean reward", "tokens/rollout", "session-cache hits", "vs target (wall)", "vs target (CPU)"],
        rows,
    )  # fmt: skip
    lines.append("")
    for name, r in runs.items():
        if "decoder" in r:
            lines.append(f"- {name}: {r['decoder']}; set_image {fmt(r['set_image_s'])} s per group, "
                         f"{fmt(r['rollouts_per_s_excluding_set_image'], 1)} rollouts/s without it.")  # fmt: skip
    if "command" in d:
        lines += ["", f"Recorded command: `{d['command']}`."]
    return lines


SFT_PARTS = {
    "collate": "TRL vision collator, one batch (the work `train.dataloader_workers` moves away)",
    "step_threads1": "forward + backward + AdamW step, 1 torch thread",
    "step_threads2": "forward + backward + AdamW step, 2 torch threads",
}


def render_sft(d: dict) -> list[str]:
    parts = {k: v for k, v in d.items() if isinstance(v, dict) and "wall_s" in v}
    lines = [f"Tiny Qwen2.5-VL, batch {d['batch']}, sequence length {d['seq_len']}; seconds per batch, mean over "
             "the repeats. The machine is usually shared: read CPU time beside wall time.", ""]  # fmt: skip
    return lines + table(
        ["part", "what", "wall s", "CPU s"],
        [[k, SFT_PARTS.get(k, ""), cell(v["wall_s"]), cell(v["cpu_s"])] for k, v in parts.items()],
    )


def render_localization(d: dict) -> list[str]:
    lines = ["Can the tiny random-weight Qwen2.5-VL learn which cell of a 2 x 2 grid holds the object? Accuracy "
             "on held-out procedural scenes (chance about 0.25); times are seconds per variant."]  # fmt: skip
    lines += [f"Python {d['python']}." if "python" in d else "", ""]
    return lines + rows_table(d["rows"])


def _cmd(script: str, *same_as: str) -> str:
    out = f"`python benchmarks/{script}`"
    return out + (" (same as " + " and ".join(f"`{s}`" for s in same_as) + ")" if same_as else "")


#: stem → (title, command, renderer); the README lists them in this order.
KNOWN: dict[str, tuple[str, str, Callable[[dict], list[str]]]] = {
    "codecs_real_dev": ("Codecs on real-dev", _cmd("bench_codecs.py", "getok bench codecs --data ../shared/data/real-dev --out benchmarks/results/codecs_real_dev.json"), render_codecs),
    "codecs_scenes": ("Codecs on procedural scenes", _cmd("bench_codecs.py", "getok bench codecs --scenes 200 --out benchmarks/results/codecs_scenes.json"), render_codecs),
    "builders": ("Data builders", _cmd("bench_builders.py", "getok bench builders --data ../shared/data/real-dev --out benchmarks/results/builders.json"), render_builders),
    "decoders": ("Decoders, metrics and prompt cost", _cmd("bench_decoders.py", "getok bench decoders --data ../shared/data/real-dev --out benchmarks/results/decoders.json"), render_decoders),
    "rewards": ("Rewards", _cmd("bench_rewards.py", "getok bench rewards --sam-groups 2 --out benchmarks/results/rewards.json"), render_rewards),
    "sft_steps": ("SFT step cost", _cmd("bench_sft.py"), render_sft),
    "tiny_localization": ("Localization diagnostic (tiny model)", _cmd("diagnostics/tiny_localization.py"), render_localization),
}  # fmt: skip


def render_generic(d) -> list[str]:
    """Top-level scalar fields, any top-level list of row dicts as a table, and every target found."""
    if not isinstance(d, dict):
        return [f"Top level is a {type(d).__name__}, not an object: no table."]
    scalars = [[k, cell(v)] for k, v in d.items() if not isinstance(v, (dict, list))]
    lines = table(["field", "value"], scalars) if scalars else ["No top-level scalar fields."]
    for k, v in d.items():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            lines += ["", f"`{k}`:", ""] + rows_table(v)
    targets = [(p, v) for p, v in walk(d) if any(s.startswith("target") or s == "meets_target" for s in p)]
    if targets:
        lines += ["", "Targets found:", ""] + [
            f"- {' › '.join(p)}: {verdict(v) if isinstance(v, bool) else fmt(v)}" for p, v in targets
        ]
    return lines


def render_section(path: Path) -> list[str]:
    """The section of one results JSON (known benchmark or generic)."""
    d = load(path)
    stem = path.stem
    title, command, renderer = KNOWN.get(stem, (f"{stem} (generic)", None, render_generic))
    lines = [f"## {title}", "", f"Results: [`results/{path.name}`](results/{path.name}).  "]
    if command:
        lines.append(f"Command: {command}.  ")
    elif isinstance(d, dict) and isinstance(d.get("command"), str):
        lines.append(f"Recorded command: `{d['command']}`.  ")
    else:
        lines.append("Command: not known to tables.py (see the script that wrote this file).  ")
    lines += [machine_line(d) if isinstance(d, dict) else "Machine: not recorded in this JSON.", ""]
    try:
        lines += renderer(d)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: layout not what benchmarks/tables.py expects ({e!r}); update its renderer") from e
    return lines + [""]


def demote(md: str, levels: int = 2) -> list[str]:
    """Markdown lines with every heading outside code fences moved ``levels`` deeper."""
    out, fenced = [], False
    for line in md.rstrip("\n").splitlines():
        fenced ^= line.startswith("```")
        out.append("#" * levels + line if line.startswith("#") and not fenced else line)
    return out


def render_study(path: Path) -> list[str]:
    """A study's section: its machine line and its ``<name>.md`` (headings demoted), else a generic section."""
    d = load(path)
    md = path.with_suffix(".md")
    rel = f"results/studies/{path.name}"
    lines = [f"### Study: {path.stem}", "", f"Results: [`{rel}`]({rel}).  "]
    lines += [machine_line(d) if isinstance(d, dict) else "Machine: not recorded in this JSON.", ""]
    if md.is_file():
        lines += [f"Tables from [`results/studies/{md.name}`](results/studies/{md.name}), as the study wrote them "
                  "(headings two levels deeper):", ""] + demote(md.read_text(encoding="utf-8"))  # fmt: skip
    else:
        lines += [f"No `{md.name}` next to it; its fields:", ""] + render_generic(d)
    return lines + [""]


def load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def render(results_dir: Path = RESULTS) -> str:
    """The whole README for the results under ``results_dir``.

    Parameters
    ----------
    results_dir : Path
        Folder of ``*.json`` results, with an optional ``studies/`` sub-folder of ``<name>.json`` +
        ``<name>.md``.

    Returns
    -------
    str
        The markdown, ending in one newline.
    """
    results_dir = Path(results_dir)
    files = {p.stem: p for p in sorted(results_dir.glob("*.json"))}
    ordered = [files[s] for s in KNOWN if s in files] + [p for s, p in files.items() if s not in KNOWN]
    studies = sorted((results_dir / "studies").glob("*.json"))
    missed = [(p.name, m) for p in ordered for m in missed_targets(load(p))]
    missed += [(f"studies/{p.name}", m) for p in studies for m in missed_targets(load(p))]
    lines = [INTRO.rstrip("\n"), ""]
    if missed:
        lines += ["Targets missed in the committed results:", ""] + [f"- {f}: {m}" for f, m in missed] + [""]
    else:
        lines += ["Every recorded target is met in the committed results.", ""]
    for p in ordered:
        lines += render_section(p)
    lines += ["## Studies", ""]
    if studies:
        for p in studies:
            lines += render_study(p)
    else:
        lines += ["No study results committed yet (`getok study NAME` writes `benchmarks/results/studies/NAME.json` "
                  "and `NAME.md`).", ""]  # fmt: skip
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the README is stale; write nothing")
    ap.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    ap.add_argument("--readme", type=Path, default=README, help="README to write or check")
    args = ap.parse_args(argv)
    text = render(args.results)
    if args.check:
        current = args.readme.read_text(encoding="utf-8") if args.readme.is_file() else None
        if current != text:
            print(f"{args.readme} is stale: run python benchmarks/tables.py", file=sys.stderr)
            return 1
        print(f"{args.readme} is up to date")
        return 0
    args.readme.write_text(text, encoding="utf-8")
    print(f"wrote {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
