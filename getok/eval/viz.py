"""Per-sample overlays of an evaluation run (``getok viz --run DIR``), drawn with matplotlib's Agg canvas.

One PNG per sample, one panel per turn (a two-turn refinement sample of the dataset: its proposal, then
the refinement; a self-correction run: turn 1 … K, then the oracle's last turn). Each panel shows the image
(dimmed), the masks — truth only **green**, prediction only **red**, both **yellow** — the proposed grid
cells (outlined squares), each point's move as an arrow from its cell centre to its (summed) offset
position, deleted points as **crosses**, boxes, polygons and point answers; the title gives the IoU and
its change from the previous panel, or the reason an output was invalid.

Renderings are made at run time from the run's records and the dataset's images; nothing here is meant
to be committed (real-dev photos are licensed: never commit their renderings).

``render_run`` also writes ``index.html`` (:mod:`getok.eval.report`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data_builders.dataset import read_dataset
from ..data_builders.tasks import safe_name
from ..errors import DataError
from ..ops.masks import rle_decode
from ..samples import Sample
from .generate import load_sample_image
from .report import question_text, write_index
from .runner import RECORDS_FILE, RUN_FILE, SAMPLES_FILE, SUMMARY_FILE, read_records
from .scoring import truth_union

__all__ = ["panels_of", "render_record", "render_run", "overlay_rgba", "load_run"]

log = logging.getLogger(__name__)

_TRUTH = (0.15, 0.85, 0.2, 0.45)
_PRED = (0.95, 0.15, 0.15, 0.45)
_BOTH = (1.0, 0.85, 0.0, 0.55)


def overlay_rgba(pred: np.ndarray | None, gt: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` float RGBA: truth only green, prediction only red, both yellow, else transparent."""
    g = np.asarray(gt, dtype=bool)
    p = np.zeros_like(g) if pred is None else np.asarray(pred, dtype=bool)
    out = np.zeros(g.shape + (4,), dtype=np.float32)
    out[g & ~p] = _TRUTH
    out[p & ~g] = _PRED
    out[p & g] = _BOTH
    return out


def panels_of(record: dict) -> list[dict]:
    """The panels of a record: ``{"title", "instances", "pred_rle", "iou", "valid", "reason"}`` each."""

    def panel(title, r, prev_iou=None):
        iou = r.get("iou")
        t = title
        if not r.get("valid", True):
            t += f": invalid ({r.get('invalid_reason')})"
        elif iou is not None:
            t += f": IoU {iou:.3f}"
            if prev_iou is not None:
                t += f" ({iou - prev_iou:+.3f})"
        if r.get("refine_valid") is False:
            t += f"\nrefinement invalid ({r.get('refine_reason')}), kept"
        if r.get("skipped"):
            t += f"\n{r['skipped']}"
        return {"title": t, "instances": r.get("instances") or [], "pred_rle": r.get("pred_rle"), "iou": iou,
                "valid": r.get("valid", True)}  # fmt: skip

    if record.get("turns"):
        out, prev = [], None
        for r in record["turns"]:
            out.append(panel(f"turn {r.get('turn')}", r, prev))
            prev = r.get("iou")
        if record.get("oracle"):
            o = record["oracle"][-1]
            out.append(panel(f"oracle turn {o.get('turn')}", o, record["turns"][0].get("iou")))
        return out
    if record.get("proposal") is not None:
        prop = {"title": "proposal (dataset)", "instances": record["proposal"], "pred_rle": None, "iou": None, "valid": True}
        return [prop, panel("refinement", record)]
    return [panel(record.get("task", "answer"), record)]


def _draw_instances(ax, instances: Sequence[dict], size) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    h, w = size
    for inst in instances:
        if "cells" in inst and inst["cells"]:
            n = int(inst["grid_n"])
            cw, ch = w / n, h / n
            cells = np.asarray(inst["cells"], dtype=np.float64).reshape(-1, 2)
            x0, y0 = cells[:, 0] * cw, cells[:, 1] * ch
            squares = [[(a, b), (a + cw, b), (a + cw, b + ch), (a, b + ch)] for a, b in zip(x0, y0)]
            ax.add_collection(PolyCollection(squares, facecolors="none", edgecolors=(0.2, 0.6, 1.0, 0.9), linewidths=0.8))
            centres = np.stack([x0 + cw / 2, y0 + ch / 2], axis=1)
            k = len(cells)
            offs = np.asarray(inst.get("offsets") or np.zeros((k, 2)), dtype=np.float64).reshape(-1, 2)
            step = float(inst.get("offset_step", 0.5))
            pos = np.clip(centres + offs * step * np.array([cw, ch]), 0.0, [w, h])
            dele = np.asarray(inst.get("deleted") or np.zeros(k, dtype=bool), dtype=bool)
            moved = np.any(offs != 0, axis=1)
            keep = ~dele
            ax.scatter(centres[keep & ~moved, 0], centres[keep & ~moved, 1], s=10, c="white", edgecolors="black", linewidths=0.5, zorder=4)
            if np.any(moved & keep):
                m = moved & keep
                ax.quiver(centres[m, 0], centres[m, 1], pos[m, 0] - centres[m, 0], pos[m, 1] - centres[m, 1],
                          angles="xy", scale_units="xy", scale=1, color="cyan", width=0.006, zorder=5)  # fmt: skip
                ax.scatter(pos[m, 0], pos[m, 1], s=10, c="cyan", zorder=5)
            if dele.any():
                ax.scatter(pos[dele, 0], pos[dele, 1], s=40, marker="x", c="red", linewidths=1.5, zorder=6)
        elif inst.get("points"):
            p = np.asarray(inst["points"], dtype=np.float64).reshape(-1, 2)
            if len(p) > 1:
                ax.add_collection(LineCollection([p], colors="cyan", linewidths=1.0))
            ax.scatter(p[:, 0], p[:, 1], s=24, c="cyan", edgecolors="black", linewidths=0.5, zorder=5)
        if inst.get("polygons"):
            polys = [np.asarray(q, dtype=np.float64).reshape(-1, 2) for q in inst["polygons"]]
            ax.add_collection(PolyCollection(polys, facecolors="none", edgecolors="magenta", linewidths=1.0))
        if inst.get("box"):
            x1, y1, x2, y2 = inst["box"]
            ax.add_collection(PolyCollection([[(x1, y1), (x2, y1), (x2, y2), (x1, y2)]], facecolors="none",
                                             edgecolors="orange", linewidths=1.2))  # fmt: skip


def render_record(record: dict, image: np.ndarray, gt: np.ndarray, out_path: str | Path, *, panel_inches: float = 3.2, dpi: int = 100) -> Path:
    """Draw one record's panels side by side into a PNG.

    Parameters
    ----------
    record : dict
        A record of ``records.jsonl``.
    image : (H, W, 3) uint8
    gt : (H, W) bool
        The truth union.
    out_path : path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = panels_of(record)
    h, w = gt.shape
    aspect = h / w
    fig = Figure(figsize=(panel_inches * len(panels), panel_inches * aspect + 0.9), dpi=dpi)
    FigureCanvasAgg(fig)
    dim = (np.asarray(image, dtype=np.float32) / 255.0) * 0.75
    for k, p in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(dim, interpolation="nearest")
        pred = rle_decode(p["pred_rle"]) if p.get("pred_rle") else None
        ax.imshow(overlay_rgba(pred, gt), interpolation="nearest")
        _draw_instances(ax, p["instances"], (h, w))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(p["title"], fontsize=8)
    fig.suptitle(
        f"{record.get('id')}  [{record.get('task')}]   green: truth only, red: prediction only, yellow: both; "
        "x: deleted, arrows: offsets",
        fontsize=7,
    )
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def load_run(run_dir: str | Path) -> tuple[dict, list[dict], dict[str, Sample], Path | None]:
    """``(run info, records, samples by id, image root)`` of an evaluation run directory."""

    run = Path(run_dir)
    rp = run / RUN_FILE
    if not rp.is_file():
        raise DataError(f"{run} is not an evaluation run (no {RUN_FILE})")
    info = json.loads(rp.read_text())
    records = read_records(run / RECORDS_FILE)
    samples: dict[str, Sample] = {}
    root = None
    if info.get("data"):
        ds = read_dataset(info["data"], check_images=False)
        samples = {s.sample_id: s for s in ds.samples}
        root = Path(ds.root)
    elif (run / SAMPLES_FILE).is_file():
        for line in (run / SAMPLES_FILE).read_text().splitlines():
            if line.strip():
                s = Sample.from_dict(json.loads(line))
                samples[s.sample_id] = s
    else:
        raise DataError(f"{run}: run.json names no dataset and there is no {SAMPLES_FILE}")
    return info, records, samples, root


def render_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    progress: bool = True,
    dpi: int = 100,
) -> dict:
    """Render every record of a run (or ``ids`` / the first ``limit``) and write ``index.html``.

    The index has one row per chosen record (its question, each turn's answer and IoU, the change, the
    overlay, or why none was drawn) under the whole run's summary tables (:mod:`getok.eval.report`).

    Returns
    -------
    dict
        ``out`` (directory), ``pngs`` (``{id: path}``), ``index`` (the HTML file), ``skipped``
        (``{id: reason}`` for records whose sample or image is missing).
    """

    run = Path(run_dir)
    info, records, samples, root = load_run(run)
    out = Path(out_dir) if out_dir is not None else run / "viz"
    (out / "samples").mkdir(parents=True, exist_ok=True)
    chosen = records
    if ids is not None:
        want = set(ids)
        chosen = [r for r in records if r.get("id") in want]
    if limit is not None:
        chosen = chosen[: int(limit)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(chosen), desc="viz", unit="sample")
    pngs: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for r in chosen:
        sid = str(r.get("id"))
        s = samples.get(sid)
        if s is None:
            skipped[sid] = "sample not in the data"
        else:
            try:
                img = load_sample_image(s, root)
            except DataError as exc:
                skipped[sid] = str(exc)
                log.warning("viz: skipping %s: %s", sid, exc)
            else:
                p = render_record(r, img, truth_union(s), out / "samples" / f"{safe_name(sid)}.png", dpi=dpi)
                pngs[sid] = str(p)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    summary = None
    if (run / SUMMARY_FILE).is_file():
        summary = json.loads((run / SUMMARY_FILE).read_text())
    questions = {str(r.get("id")): question_text(samples[str(r.get("id"))]) for r in chosen if str(r.get("id")) in samples}
    index = write_index(out, chosen, {k: str(Path(v).relative_to(out)) for k, v in pngs.items()}, info=info, summary=summary,
                        questions=questions, skipped=skipped, n_run=len(records))  # fmt: skip
    return {"out": str(out), "pngs": pngs, "index": str(index), "skipped": skipped}
