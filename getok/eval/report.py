"""A static HTML index of an evaluation run: one row per sample, sortable and filterable, no network.

``index.html`` holds the run's settings and summary tables (as HTML tables), then a table of samples —
the sample id, task and kind, the question (the user text of turn 1), the model's answer of each turn
and its IoU, the IoU change of the last turn against turn 1 (improved / worse / same), the oracle's
last-turn IoU, validity, and the sample's overlay PNG (:mod:`getok.eval.viz`), shown small with a link
to the full-size image.

Above the table, controls filter the rows by task, by the change of IoU (improved / worse / same / one
turn only) and by free text (id or question). The filter is mirrored in the page's URL fragment, and a
fragment given when the page is opened is applied on load, so a filtered view can be linked to:
``index.html#task=text%3Emask&change=improved`` (``q=`` for the text). Clicking a column header sorts
by it (numbers numerically, blanks last). The page is plain HTML with inline CSS and JavaScript and no
external resources (it works from ``file://``); every text from the run (questions, answers, ids,
reasons) is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..io import atomic_write_text
from ..samples import IMAGE_PLACEHOLDER
from .runner import summary_markdown
from .stats import CHANGE_TOL

__all__ = ["index_rows", "index_html", "write_index", "markdown_html", "question_text", "INDEX_FILE", "CHANGES"]

INDEX_FILE = "index.html"

#: The values of a row's ``change`` (IoU of the last turn vs turn 1); ``one`` = a sample with one turn.
CHANGES = ("improved", "worse", "same", "one")
_CHANGE_LABELS = {"improved": "improved", "worse": "worse", "same": "same IoU", "one": "one turn only"}


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def question_text(sample) -> str | None:
    """The question of a sample: the user text of its first turn without the image placeholder."""

    turns = getattr(sample, "turns", None) or []
    if not turns:
        return None
    return turns[0].user.replace(IMAGE_PLACEHOLDER, "").strip()


def _said(r: Mapping):
    """What the model said in a turn: the generated text, else the extracted answer."""
    return r.get("prediction") if r.get("prediction") is not None else r.get("answer")


def index_rows(records: Sequence[Mapping], pngs: Mapping[str, str] | None = None, *,
               questions: Mapping[str, str | None] | None = None,
               skipped: Mapping[str, str] | None = None) -> list[dict]:  # fmt: skip
    """One row per record.

    Keys: ``id``, ``task``, ``kind``, ``question``, ``reference`` (the reference answer), ``valid``,
    ``reason``, ``turns`` (``[{turn, answer, iou, delta, valid, reason, refine_invalid, skipped}]``, one
    entry for a one-turn sample), ``iou_first`` / ``iou_last`` and their ``delta``, ``change`` (one of
    :data:`CHANGES`), ``oracle`` (the oracle's last-turn IoU), ``refine_invalid`` (invalid refinement
    turns), ``answer`` (the final answer), ``png`` (path relative to the page) and ``skipped`` (why no
    overlay was drawn).
    """
    pngs = pngs or {}
    questions = questions or {}
    skipped = skipped or {}
    rows = []
    for r in records:
        sid = str(r.get("id"))
        raw = r.get("turns") or []
        first = raw[0].get("iou") if raw else r.get("iou")
        last = raw[-1].get("iou") if raw else r.get("iou")
        oracle = (r.get("oracle") or [{}])[-1].get("iou") if r.get("oracle") else None
        turns, prev = [], None
        for k, t in enumerate(raw or [r]):
            iou = t.get("iou")
            turns.append({
                "turn": t.get("turn", k + 1), "answer": _said(t), "iou": iou,
                "delta": None if iou is None or prev is None else iou - prev,
                "valid": bool(t.get("valid", True)), "reason": t.get("invalid_reason"),
                "refine_invalid": t.get("refine_reason") if t.get("refine_valid") is False else None,
                "skipped": t.get("skipped"),
            })  # fmt: skip
            prev = iou
        delta = None if first is None or last is None else last - first
        if len(raw) < 2:
            change = "one"
        elif delta is None:
            change = None
        else:
            change = "improved" if delta > CHANGE_TOL else "worse" if delta < -CHANGE_TOL else "same"
        rows.append({
            "id": sid,
            "task": r.get("task"),
            "kind": r.get("kind"),
            "question": questions.get(sid),
            "reference": r.get("target"),
            "valid": bool(r.get("valid", True)),
            "reason": r.get("invalid_reason"),
            "turns": turns,
            "iou_first": first,
            "iou_last": last,
            "delta": delta,
            "change": change,
            "oracle": oracle,
            "refine_invalid": sum(1 for t in raw[1:] if t.get("refine_valid") is False) if raw else None,
            "answer": r.get("answer") if r.get("answer") is not None else r.get("prediction"),
            "png": pngs.get(sid),
            "skipped": skipped.get(sid),
        })  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------ markdown
_SEP = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
_NUM = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _md_cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in s.split("|")]


def _md_table(block: Sequence[str]) -> str:
    head = _md_cells(block[0])
    body = [_md_cells(x) for x in block[1:] if not _SEP.match(x.strip())]
    th = "".join(f"<th>{_e(c)}</th>" for c in head)
    trs = []
    for cells in body:
        tds = "".join(f'<td class="num">{_e(c)}</td>' if _NUM.match(c) or c == "–" else f"<td>{_e(c)}</td>" for c in cells)
        trs.append(f"<tr>{tds}</tr>")
    return f'<table class="summary"><thead><tr>{th}</tr></thead><tbody>{"".join(trs)}</tbody></table>'


def markdown_html(md: str, *, skip_title: bool = True, skip_lists: bool = False) -> str:
    """The small markdown of :func:`getok.eval.runner.summary_markdown` as HTML: headings, lists, tables,
    paragraphs (everything escaped; ``skip_title`` drops level-1 headings, the page has its own;
    ``skip_lists`` drops bullet lists, the run's settings the page shows as a table)."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i].rstrip())
                i += 1
            out.append(_md_table(block))
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_e(lines[i][2:].strip())}</li>")
                i += 1
            if not skip_lists:
                out.append(f"<ul>{''.join(items)}</ul>")
            continue
        m = re.match(r"^(#{1,5})\s+(.*)$", line)
        if m:
            level = len(m.group(1))
            if not (skip_title and level == 1):
                out.append(f"<h{level + 1}>{_e(m.group(2))}</h{level + 1}>")
        elif line.strip():
            out.append(f'<p class="note">{_e(line.strip())}</p>')
        i += 1
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ page
def _num_cell(v, *, signed: bool = False, extra: str = "") -> str:
    if v is None:
        return f'<td class="num" data-v="">–{extra}</td>'
    txt = f"{v:+.3f}" if signed else f"{v:.3f}"
    return f'<td class="num" data-v="{float(v)!r}">{txt}{extra}</td>'


def _answer_cell(t: dict | None) -> str:
    if t is None:
        return '<td data-v="" class="na">–</td>'
    notes = []
    if t["skipped"]:
        notes.append(f'<span class="tag">skipped: {_e(t["skipped"])}</span>')
    if not t["valid"]:
        notes.append(f'<span class="tag bad">invalid: {_e(t["reason"] or "?")}</span>')
    if t["refine_invalid"]:
        notes.append(f'<span class="tag bad">refinement invalid ({_e(t["refine_invalid"])}), kept</span>')
    ans = t["answer"]
    body = '<span class="na">(no answer)</span>' if ans is None else f'<code class="ans">{_e(ans)}</code>'
    return f'<td class="answer" data-v="{_e("" if ans is None else str(ans)[:200])}">{body}{"".join(notes)}</td>'


def _columns(n_turns: int, with_oracle: bool) -> list[tuple[str, str]]:
    cols = [("id", "sample"), ("task", "task"), ("question", "question")]
    if n_turns <= 1:
        cols += [("answer_1", "answer"), ("iou_1", "IoU")]
    else:
        for k in range(1, n_turns + 1):
            cols += [(f"answer_{k}", f"answer turn {k}"), (f"iou_{k}", f"IoU turn {k}")]
        cols.append(("delta", f"IoU change (turn {n_turns} vs 1)" if n_turns > 2 else "IoU change (turn 2 vs 1)"))
    if with_oracle:
        cols.append(("oracle", "oracle IoU"))
    cols += [("valid", "valid"), ("png", "overlay")]
    return cols


def _row_html(row: dict, cols: Sequence[tuple[str, str]]) -> str:
    cells = []
    by_k = {k + 1: t for k, t in enumerate(row["turns"])}
    for key, _ in cols:
        if key == "id":
            cells.append(f'<td data-v="{_e(row["id"])}"><code>{_e(row["id"])}</code></td>')
        elif key == "task":
            task, kind = row.get("task") or "", row.get("kind") or ""
            cells.append(f'<td data-v="{_e(task)}">{_e(task or "–")}<br><span class="kind">{_e(kind)}</span></td>')
        elif key == "question":
            q = row.get("question")
            ref = row.get("reference")
            refh = f'<details><summary>reference answer</summary><code class="ans">{_e(ref)}</code></details>' if ref else ""
            body = f'<span class="q">{_e(q)}</span>' if q else '<span class="na">(question not in the data)</span>'
            cells.append(f'<td data-v="{_e(q or "")}" class="question">{body}{refh}</td>')
        elif key.startswith("answer_"):
            cells.append(_answer_cell(by_k.get(int(key.split("_")[1]))))
        elif key.startswith("iou_"):
            t = by_k.get(int(key.split("_")[1]))
            if t is None:
                cells.append('<td class="num na" data-v="">–</td>')
            else:
                extra = f'<br><span class="kind">{t["delta"]:+.3f}</span>' if t["delta"] is not None and int(key.split("_")[1]) > 1 else ""
                cells.append(_num_cell(t["iou"], extra=extra))
        elif key == "delta":
            ch = row.get("change")
            if ch == "one":
                cells.append('<td class="num na" data-v="">one turn</td>')
            elif row["delta"] is None:
                cells.append('<td class="num na" data-v="">–</td>')
            else:
                cells.append(f'<td class="num ch-{_e(ch)}" data-v="{float(row["delta"])!r}">{row["delta"]:+.3f}<br>'
                             f'<span class="chg">{_e(ch)}</span></td>')  # fmt: skip
        elif key == "oracle":
            cells.append(_num_cell(row.get("oracle")))
        elif key == "valid":
            v = row["valid"]
            txt = "yes" if v else f"no ({_e(row.get('reason') or '')})"
            cells.append(f'<td data-v="{int(v)}">{txt}</td>')
        elif key == "png":
            src = row.get("png")
            if src:
                s = _e(src)
                alt = _e(f"Overlay of sample {row['id']} ({row.get('task')}): one panel per turn; "
                         "green = truth only, red = prediction only, yellow = both")  # fmt: skip
                cells.append(
                    f'<td class="ov" data-v="{s}"><a href="{s}" target="_blank" title="open the full-size image">'
                    f'<img class="overlay" src="{s}" alt="{alt}" loading="lazy"></a>'
                    f'<br><a href="{s}" target="_blank">full size</a></td>'
                )
            else:
                why = row.get("skipped")
                cells.append(f'<td data-v="" class="na">{"not rendered: " + _e(why) if why else "–"}</td>')
    search = " ".join(str(x) for x in (row["id"], row.get("task") or "", row.get("question") or "")).lower()
    return (f'<tr data-id="{_e(row["id"])}" data-task="{_e(row.get("task") or "")}" '
            f'data-change="{_e(row.get("change") or "")}" data-search="{_e(search)}">' + "".join(cells) + "</tr>")  # fmt: skip


_SCRIPT = r"""
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
    const nx = Number(x), ny = Number(y);
    const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  for (const r of rows) body.appendChild(r);
}
function filterParams() {
  const s = location.hash.length > 1 ? location.hash.slice(1) : location.search.slice(1);
  return new URLSearchParams(s);
}
function applyFilters(updateUrl) {
  const task = document.getElementById('f-task').value;
  const change = document.getElementById('f-change').value;
  const q = document.getElementById('f-text').value.trim().toLowerCase();
  let shown = 0;
  for (const r of document.getElementById('samples').tBodies[0].rows) {
    const ok = (!task || r.dataset.task === task) && (!change || r.dataset.change === change)
      && (!q || r.dataset.search.includes(q));
    r.hidden = !ok;
    if (ok) shown++;
  }
  document.getElementById('n-shown').textContent = String(shown);
  if (updateUrl) {
    const p = new URLSearchParams();
    if (task) p.set('task', task);
    if (change) p.set('change', change);
    if (q) p.set('q', q);
    const h = p.toString();
    try { history.replaceState(null, '', h ? '#' + h : location.pathname + location.search); }
    catch (e) { location.hash = h; }
  }
}
function setSelect(id, v) {
  const el = document.getElementById(id);
  if (v === null) { el.value = ''; return; }
  if (!Array.from(el.options).some(o => o.value === v)) {
    const o = document.createElement('option'); o.value = v; o.textContent = v + ' (0)'; el.appendChild(o);
  }
  el.value = v;
}
function filtersFromUrl() {
  const p = filterParams();
  setSelect('f-task', p.get('task'));
  setSelect('f-change', p.get('change'));
  document.getElementById('f-text').value = p.get('q') || '';
  applyFilters(false);
}
function init() {
  for (const id of ['f-task', 'f-change']) document.getElementById(id).addEventListener('change', () => applyFilters(true));
  document.getElementById('f-text').addEventListener('input', () => applyFilters(true));
  document.getElementById('f-reset').addEventListener('click', () => {
    setSelect('f-task', null); setSelect('f-change', null); document.getElementById('f-text').value = ''; applyFilters(true);
  });
  document.getElementById('f-large').addEventListener('change', e => document.body.classList.toggle('large', e.target.checked));
  window.addEventListener('hashchange', filtersFromUrl);
  filtersFromUrl();
  document.body.dataset.ready = '1';
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
"""

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1em 1.5em;color:#222;line-height:1.35}
h1{font-size:1.5em;margin:.2em 0 .4em}h2{font-size:1.2em;margin:1.2em 0 .4em}h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 .8em}
td,th{border:1px solid #ccc;padding:4px 7px;font-size:13px;vertical-align:top;text-align:left}
th{background:#eef1f4}
table.summary td.num,table.settings td{font-variant-numeric:tabular-nums}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.settings th{width:9em}
p.note{font-size:12px;color:#555;margin:.2em 0}
#samples th{cursor:pointer;position:sticky;top:0;z-index:1;white-space:nowrap}
#samples tbody tr:nth-child(even){background:#fafafa}
#samples tbody tr:hover{background:#f2f7ff}
td.question{min-width:16em;max-width:28em}td.answer{min-width:13em}
.q{font-size:14px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
code.ans{display:block;max-width:24em;max-height:9em;overflow:auto;white-space:pre-wrap;word-break:break-all;
  background:#f6f6f6;padding:2px 4px;border-radius:3px}
.kind,.chg{font-size:11px;color:#666}
.na{color:#999}
.tag{display:inline-block;font-size:11px;margin-top:3px;padding:0 4px;border-radius:3px;background:#eee}
.tag.bad{background:#fde2e2;color:#8a1f1f}
td.ch-improved{background:#e5f6e5}td.ch-worse{background:#fbe4e4}td.ch-same{background:#f1f1f1}
details summary{font-size:11px;color:#666;cursor:pointer}
img.overlay{display:block;width:auto;max-width:480px;height:auto;border:1px solid #ddd}
body.large img.overlay{max-width:none;width:auto}
td.ov{font-size:11px}
#filters{position:sticky;top:0;background:#fff;padding:.5em 0;z-index:2;border-bottom:1px solid #ddd;margin-bottom:.5em}
#filters label{margin-right:1.2em;font-size:13px}
.legend span{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin:0 .2em 0 .6em;border:1px solid #999}
"""


def index_html(rows: Sequence[dict], *, info: Mapping | None = None, summary_md: str | None = None, title: str = "getok eval",
               n_run: int | None = None) -> str:  # fmt: skip
    """The page (a string): settings, the summary tables, filter controls and the sortable sample table.

    ``n_run`` is the number of records of the run when ``rows`` are a selection of them.
    """
    n_turns = max([len(r["turns"]) for r in rows] + [1])
    cols = _columns(n_turns, any(r.get("oracle") is not None for r in rows))
    head = "".join(f'<th onclick="sortBy({k})" title="click to sort">{_e(label)}</th>' for k, (_, label) in enumerate(cols))
    body = "\n".join(_row_html(row, cols) for row in rows)
    settings = ""
    if info:
        keys = ("model", "data", "codec", "decoder", "turns", "constrained", "empty", "n_samples", "elapsed_s")
        keep = [(k, info.get(k)) for k in keys if k in info]
        trs = "".join(f"<tr><th>{_e(k)}</th><td>{_e('–' if v is None else v)}</td></tr>" for k, v in keep)
        settings = f'<h2>Run settings</h2>\n<table class="settings"><tbody>{trs}</tbody></table>'
    summ = f'<section id="summary">\n{markdown_html(summary_md, skip_lists=bool(info))}\n</section>' if summary_md else ""
    tasks = Counter(str(r.get("task") or "") for r in rows)
    task_opts = "".join(f'<option value="{_e(t)}">{_e(t or "(none)")} ({n})</option>' for t, n in sorted(tasks.items()))
    changes = Counter(r.get("change") or "" for r in rows)
    change_opts = "".join(f'<option value="{c}">{_CHANGE_LABELS[c]} ({changes.get(c, 0)})</option>' for c in CHANGES)
    of_run = f" of the run's {n_run}" if n_run is not None and n_run != len(rows) else ""
    filters = (
        '<div id="filters">'
        f'<label>task <select id="f-task"><option value="">all ({len(rows)})</option>{task_opts}</select></label>'
        f'<label>IoU change <select id="f-change"><option value="">all</option>{change_opts}</select></label>'
        '<label>search <input id="f-text" type="search" placeholder="id or question"></label>'
        '<button id="f-reset" type="button">show all</button> '
        '<label><input id="f-large" type="checkbox"> large overlays</label>'
        f'<span>showing <b id="n-shown">{len(rows)}</b> of {len(rows)} samples{of_run}</span></div>'
    )
    legend = (
        '<p class="legend">Overlays: one panel per turn;<span style="background:#26d933"></span>truth only'
        '<span style="background:#f22626"></span>prediction only<span style="background:#ffd900"></span>both; '
        "outlined squares: proposed cells, arrows: offsets, x: deleted points. Click an overlay for the full-size image. "
        "Click a column header to sort. The filter is kept in the address (e.g. <code>#change=improved</code>), "
        "so a filtered view can be linked.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n{settings}\n{summ}\n"
        f"<h2>Samples</h2>\n{legend}\n{filters}\n"
        f'<table id="samples"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def write_index(out_dir: str | Path, records: Sequence[Mapping], pngs: Mapping[str, str] | None = None, *,
                info: Mapping | None = None, summary: Mapping | None = None,
                questions: Mapping[str, str | None] | None = None, skipped: Mapping[str, str] | None = None,
                n_run: int | None = None) -> Path:  # fmt: skip
    """Write ``out_dir/index.html`` (atomically); ``pngs`` maps sample ids to paths relative to ``out_dir``,
    ``questions`` sample ids to their question, ``skipped`` sample ids to why no overlay was drawn."""
    summary_md = None
    if summary:
        summary_md = summary_markdown(dict(summary))
        if info is not None:  # the settings table also gives the summary's sample count and time
            info = {**info, **{k: v for k, v in (summary.get("run") or {}).items() if k in ("n_samples", "elapsed_s")}}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / INDEX_FILE
    rows = index_rows(records, pngs, questions=questions, skipped=skipped)
    atomic_write_text(path, index_html(rows, info=info, summary_md=summary_md, n_run=n_run))
    return path
