"""The per-sample page of ``render_run`` opened in a real browser (headless Chromium).

A two-turn run of procedural scenes with scripted answers (no model): one mask sample whose refinement
deletes a false cell (improved), one whose refinement deletes true cells (worse), one that keeps every
cell (same), and one-turn box / point samples, one answering with HTML. The page is rendered, loaded in
headless Chromium after its JavaScript ran (``--dump-dom``), and the test checks the DOM Chromium built:
the summary tables are ``<table>`` elements with the run's rows, every sample row shows its question,
the filter controls exist, a filter given in the URL fragment hides the other rows, and the HTML answer
stays text. Skipped (with a message) only where no Chromium / Chrome binary is found (CI installs
Debian's ``chromium``, see ``.ci/run``); ``GETOK_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from getok.data_builders.dataset import read_dataset
from getok.eval.report import question_text
from getok.eval.runner import evaluate
from getok.eval.viz import render_run

from .conftest import ScriptedModel

EVIL = '<b id="evil">bold</b><script>document.title = "pwned"</script> & "quoted"'


def _chromium() -> str | None:
    for name in (os.environ.get("GETOK_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and (path := shutil.which(name)):
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary found (install Debian's chromium: apt-get install chromium, or set GETOK_CHROMIUM)",
)


class _Dom(HTMLParser):
    """Tables (id / class, rows of ``(tr attributes, cell texts)``), elements by id, tags seen in ``#samples``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.ids: dict[str, tuple[str, dict]] = {}
        self.sample_tags: set[str] = set()
        self.title = ""
        self._table = self._row = self._cell = None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = (tag, a)
        if self._table is not None and self._table["attrs"].get("id") == "samples":
            self.sample_tags.add(tag)
        if tag == "title":
            self._in_title = True
        elif tag == "table":
            self._table = {"attrs": a, "rows": []}
            self.tables.append(self._table)
        elif tag == "tr" and self._table is not None:
            self._row = (a, [])
            self._table["rows"].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row[1].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "table":
            self._table = self._row = self._cell = None
        elif tag == "tr":
            self._row = self._cell = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table: dict) -> list[tuple[dict, list[str]]]:
        return [(a, [" ".join(" ".join(c).split()) for c in cells]) for a, cells in table["rows"]]


def _dom(page: Path, fragment: str = "") -> _Dom:
    url = page.resolve().as_uri() + fragment
    prof = page.parent / ".chromium-profile"
    res = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={prof}", "--virtual-time-budget=3000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert res.returncode == 0 and "<html" in res.stdout, res.stderr[-2000:]
    d = _Dom()
    d.raw = res.stdout
    d.feed(res.stdout)
    return d


def _cells(answer: str) -> list[str]:
    return re.findall(r"<g16_r\d+_c\d+>", answer)


@pytest.fixture(scope="module")
def page(scene_dataset, tmp_path_factory):
    ds = read_dataset(scene_dataset)
    masks = [s for s in ds.samples if s.task == "text>mask" and len(_cells(s.answer)) >= 3 and "\n" not in s.answer][:3]
    box = next(s for s in ds.samples if s.task == "text>box")
    point = next(s for s in ds.samples if s.task == "text>point")
    assert len(masks) == 3
    up, down, same = masks
    answers = {}
    extra = next(t for t in ("<g16_r15_c15>", "<g16_r15_c00>", "<g16_r00_c15>") if t not in up.answer)
    answers[(up.sample_id, 1)] = up.answer + extra  # a false cell far from the object …
    answers[(up.sample_id, 2)] = "<off_0_0>" * len(_cells(up.answer)) + "<DELETE>"  # … deleted: improved
    answers[(down.sample_id, 1)] = down.answer
    answers[(down.sample_id, 2)] = "<off_0_0>" + "<DELETE>" * (len(_cells(down.answer)) - 1)  # true cells deleted: worse
    answers[(same.sample_id, 1)] = same.answer
    answers[(same.sample_id, 2)] = "<off_0_0>" * len(_cells(same.answer))  # every cell kept: same IoU
    answers[(box.sample_id, 1)] = box.answer
    answers[(point.sample_id, 1)] = EVIL  # invalid, and HTML: must stay text
    chosen = [up, down, same, box, point]
    root = tmp_path_factory.mktemp("browser")
    run = root / "run"
    evaluate(None, None, chosen, image_root=scene_dataset, generate_fn=ScriptedModel(answers), out_dir=run, turns=2, progress=False)
    res = render_run(run, root / "viz", progress=False)
    assert len(res["pngs"]) == len(chosen) and not res["skipped"]
    expect = {"improved": {up.sample_id}, "worse": {down.sample_id}, "same": {same.sample_id},
              "one": {box.sample_id, point.sample_id}}  # fmt: skip
    return Path(res["index"]), chosen, expect


def _sample_rows(d: _Dom):
    t = next(t for t in d.tables if t["attrs"].get("id") == "samples")
    rows = d.rows(t)
    return rows[0][1], rows[1:]


def test_page_in_chromium_tables_rows_questions(page):
    index, chosen, expect = page
    d = _dom(index)
    assert d.title == "getok eval"  # the answer's <script> did not run
    # the summary: real tables with the run's rows, no markdown left
    summaries = [d.rows(t) for t in d.tables if "summary" in t["attrs"].get("class", "")]
    metrics = next(r for r in summaries if r[0][1][:3] == ["run", "n", "gIoU (%)"])
    assert [r[1][0] for r in metrics[1:]] == ["text>box", "text>mask", "text>point", "all"]
    assert [r[1][1] for r in metrics[1:]] == ["1", "3", "1", "5"]
    sc = next(r for r in summaries if r[0][1][0] == "run" and "improved" in r[0][1])
    col = sc[0][1].index("improved")
    turn2 = next(r[1] for r in sc if r[1][0] == "turn 2")
    assert turn2[col : col + 3] == ["1", "1", "1"]  # improved, worse, same
    settings = next(t for t in d.tables if t["attrs"].get("class") == "settings")
    assert ["turns", "2"] in [c for _, c in d.rows(settings)]
    # one row per sample with its question, both turns' answers and IoUs, the change and the overlay
    head, rows = _sample_rows(d)
    assert head[:3] == ["sample", "task", "question"] and {"answer turn 2", "IoU turn 2"} <= set(head)
    assert len(rows) == len(chosen) and not any("hidden" in a for a, _ in rows)
    by_id = {a["data-id"]: (a, cells) for a, cells in rows}
    for s in chosen:
        a, cells = by_id[s.sample_id]
        q = question_text(s)
        assert q and " ".join(q.split()) in cells[head.index("question")]
        assert a["data-task"] == s.task
    for change, ids in expect.items():
        assert {i for i, (a, _) in by_id.items() if a["data-change"] == change} == ids
    up = next(iter(expect["improved"]))
    cells = by_id[up][1]
    i1, i2 = float(cells[head.index("IoU turn 1")]), float(cells[head.index("IoU turn 2")].split()[0])
    assert i2 > i1 and "<DELETE>" in cells[head.index("answer turn 2")] and "improved" in cells[head.index("IoU change (turn 2 vs 1)")]
    evil = by_id[chosen[-1].sample_id][1]
    assert EVIL in evil[head.index("answer turn 1")] and "invalid" in evil[head.index("answer turn 1")]
    assert "b" not in d.sample_tags and "script" not in d.sample_tags and "evil" not in d.ids  # escaped, not markup
    assert {"img", "a"} <= d.sample_tags
    # the filter controls
    assert d.ids["f-task"][0] == "select" and d.ids["f-change"][0] == "select" and d.ids["f-text"][0] == "input"
    assert d.ids["n-shown"][0] == "b" and re.search(r'id="n-shown">(\d+)<', d.raw).group(1) == str(len(chosen))


@pytest.mark.parametrize("fragment, key", [("task=text>mask", "task"), ("change=improved", "improved"),
                                           ("change=one", "one"), ("q=" + quote("the"), None)])  # fmt: skip
def test_page_in_chromium_filters_from_url(page, fragment, key):
    index, chosen, expect = page
    d = _dom(index, "#" + fragment)
    _, rows = _sample_rows(d)
    shown = {a["data-id"] for a, _ in rows if "hidden" not in a}
    if key == "task":
        want = {s.sample_id for s in chosen if s.task == "text>mask"}
    elif key is None:
        want = {s.sample_id for s in chosen if "the" in (question_text(s) or "").lower() + s.sample_id.lower()}
    else:
        want = expect[key]
    assert want and shown == want and len(rows) == len(chosen)  # the others are in the DOM, hidden by the page's JS
    assert re.search(r'id="n-shown">(\d+)<', d.raw).group(1) == str(len(want))


def test_page_in_chromium_screenshot(page, tmp_path):
    index, _, _ = page
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
         "--hide-scrollbars", "--window-size=1600,1200", f"--screenshot={shot}", index.resolve().as_uri()],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1600, 1200)
        assert len(im.convert("L").resize((64, 48)).getcolors()) > 8  # a page was drawn, not a blank
