"""A static HTML index of an evaluation run: one row per sample, sortable, no network.

``index.html`` holds the run's settings and summary tables, then a table of samples — id, task, kind,
validity, IoU of the first and the last turn, the IoU change, the oracle's last-turn IoU, invalid
refinement turns, the final answer, and the sample's overlay PNG (:mod:`getok.eval.viz`). Clicking a
column header sorts by it (numbers numerically, blanks last); the page is plain HTML with a few lines of
inline JavaScript and no external resources.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..io import atomic_write_text

__all__ = ["index_rows", "index_html", "write_index", "INDEX_FILE"]

INDEX_FILE = "index.html"

_COLUMNS = (
    ("id", "sample"),
    ("task", "task"),
    ("kind", "kind"),
    ("valid", "valid"),
    ("iou_first", "IoU first"),
    ("iou_last", "IoU last"),
    ("delta", "IoU change"),
    ("oracle", "oracle IoU"),
    ("refine_invalid", "invalid refinements"),
    ("answer", "final answer"),
    ("png", "overlay"),
)


def index_rows(records: Sequence[Mapping], pngs: Mapping[str, str] | None = None) -> list[dict]:
    """One row per record: ids, validity, first / last IoU, their change, the oracle's, the PNG path."""
    pngs = pngs or {}
    rows = []
    for r in records:
        turns = r.get("turns") or []
        first = turns[0].get("iou") if turns else r.get("iou")
        last = turns[-1].get("iou") if turns else r.get("iou")
        oracle = (r.get("oracle") or [{}])[-1].get("iou") if r.get("oracle") else None
        rows.append({
            "id": str(r.get("id")),
            "task": r.get("task"),
            "kind": r.get("kind"),
            "valid": bool(r.get("valid", True)),
            "iou_first": first,
            "iou_last": last,
            "delta": None if first is None or last is None else last - first,
            "oracle": oracle,
            "refine_invalid": sum(1 for t in turns[1:] if t.get("refine_valid") is False) if turns else None,
            "answer": r.get("answer") if r.get("answer") is not None else r.get("prediction"),
            "reason": r.get("invalid_reason"),
            "png": pngs.get(str(r.get("id"))),
        })  # fmt: skip
    return rows


def _cell(key: str, v, row: dict) -> str:
    if key == "png":
        if not v:
            return '<td data-v="">–</td>'
        src = html.escape(str(v), quote=True)
        return f'<td data-v="{src}"><a href="{src}"><img src="{src}" loading="lazy" style="max-height:120px"></a></td>'
    if isinstance(v, bool):
        txt = "yes" if v else f"no ({html.escape(str(row.get('reason') or ''))})"
        return f'<td data-v="{int(v)}">{txt}</td>'
    if isinstance(v, float):
        txt = f"{v:+.3f}" if key == "delta" else f"{v:.3f}"
        return f'<td data-v="{v!r}">{txt}</td>'
    if v is None:
        return '<td data-v="">–</td>'
    s = str(v)
    if key == "answer" and len(s) > 160:
        s = s[:160] + "…"
    return f'<td data-v="{html.escape(str(v)[:200], quote=True)}"><code>{html.escape(s)}</code></td>' if key == "answer" else f'<td data-v="{html.escape(s, quote=True)}">{html.escape(s)}</td>'


_SCRIPT = """
function sortBy(col) {
  const table = document.getElementById('samples');
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const th = table.tHead.rows[0].cells[col];
  const asc = th.dataset.dir !== 'asc';
  for (const h of table.tHead.rows[0].cells) { h.dataset.dir = ''; h.textContent = h.textContent.replace(/ [▲▼]$/, ''); }
  th.dataset.dir = asc ? 'asc' : 'desc';
  th.textContent += asc ? ' ▲' : ' ▼';
  const key = r => r.cells[col].dataset.v;
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === '' && y === '') return 0;
    if (x === '') return 1;
    if (y === '') return -1;
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  for (const r of rows) body.appendChild(r);
}
"""


def index_html(rows: Sequence[dict], *, info: Mapping | None = None, summary_md: str | None = None, title: str = "getok eval") -> str:
    """The page (a string): settings, the summary as preformatted markdown, the sortable sample table."""
    head = "".join(
        f'<th onclick="sortBy({k})" title="click to sort">{html.escape(label)}</th>' for k, (_, label) in enumerate(_COLUMNS)
    )
    body = "\n".join("<tr>" + "".join(_cell(key, row.get(key), row) for key, _ in _COLUMNS) + "</tr>" for row in rows)
    settings = ""
    if info:
        keep = {k: info.get(k) for k in ("model", "data", "codec", "decoder", "turns", "constrained", "empty") if k in info}
        settings = f"<pre>{html.escape(json.dumps(keep, indent=1))}</pre>"
    summ = f"<pre>{html.escape(summary_md)}</pre>" if summary_md else ""
    style = (
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top}"
        "th{cursor:pointer;background:#eee;position:sticky;top:0}code{font-size:11px;word-break:break-all}"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{settings}\n{summ}\n"
        f"<p>{len(rows)} samples. Click a column header to sort (e.g. by IoU change).</p>\n"
        f'<table id="samples"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def write_index(out_dir: str | Path, records: Sequence[Mapping], pngs: Mapping[str, str] | None = None, *,
                info: Mapping | None = None, summary: Mapping | None = None) -> Path:  # fmt: skip
    """Write ``out_dir/index.html`` (atomically); ``pngs`` maps sample ids to paths relative to ``out_dir``."""
    summary_md = None
    if summary:
        from .runner import summary_markdown

        summary_md = summary_markdown(dict(summary))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / INDEX_FILE
    atomic_write_text(path, index_html(index_rows(records, pngs), info=info, summary_md=summary_md))
    return path
