"""The static HTML index: rows, escaping, sorting and filtering hooks, summary tables as HTML."""

from __future__ import annotations

from getok.eval.report import index_html, index_rows, markdown_html, write_index


def _rec(i, first, last, valid=True, **kw):
    return {"id": i, "task": "text>mask", "kind": "mask", "valid": valid, "iou": last,
            "turns": [{"turn": 1, "iou": first, "prediction": kw.get("said1", "<g16_r01_c01>")},
                      {"turn": 2, "iou": last, "refine_valid": kw.get("refine_valid", True), "prediction": kw.get("answer", "<g16_r01_c01>")}],
            "answer": kw.get("answer", "<g16_r01_c01>"), "invalid_reason": None if valid else "stray_text"}  # fmt: skip


def test_rows_carry_iou_change_and_oracle():
    recs = [_rec("a", 0.5, 0.75), _rec("b", 0.5, 0.25, refine_valid=False), {"id": "c", "iou": 0.9, "task": "text>box"},
            _rec("d", 0.5, 0.5)]  # fmt: skip
    recs[0]["oracle"] = [{"iou": 0.8}]
    rows = index_rows(recs, {"a": "samples/a.png"}, questions={"a": "Where is the cat?"}, skipped={"c": "no image"})
    assert rows[0]["delta"] == 0.25 and rows[0]["oracle"] == 0.8 and rows[0]["png"] == "samples/a.png"
    assert rows[1]["delta"] == -0.25 and rows[1]["refine_invalid"] == 1
    assert rows[2]["iou_first"] == rows[2]["iou_last"] == 0.9 and rows[2]["delta"] == 0.0 and rows[2]["png"] is None
    assert [r["change"] for r in rows] == ["improved", "worse", "one", "same"]
    assert rows[0]["question"] == "Where is the cat?" and rows[2]["skipped"] == "no image"
    assert [t["iou"] for t in rows[0]["turns"]] == [0.5, 0.75] and rows[0]["turns"][1]["delta"] == 0.25
    assert len(rows[2]["turns"]) == 1 and rows[2]["turns"][0]["iou"] == 0.9


def test_html_escapes_and_sorts(tmp_path):
    recs = [_rec("<script>x</script>", 0.1, 0.2, answer="<g16_r01_c01>&", said1='"><img src=x onerror=alert(1)>'),
            _rec("b", 0.3, 0.1, valid=False)]  # fmt: skip
    html = index_html(index_rows(recs, questions={"b": 'Is "it" <b>bold</b> & \'quoted\'?'}))
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "&lt;g16_r01_c01&gt;&amp;" in html
    assert "<img src=x" not in html and "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html and "Is &quot;it&quot; &lt;b&gt;bold&lt;/b&gt; &amp; &#x27;quoted&#x27;?" in html
    # every column sortable: sample, task, question, answer + IoU of turns 1 and 2, IoU change, valid, overlay
    assert html.count('onclick="sortBy(') == 10 and 'data-v="0.1"' in html
    assert "no (stray_text)" in html
    assert 'data-change="improved"' in html and 'data-change="worse"' in html and 'data-task="text&gt;mask"' in html
    assert 'id="f-task"' in html and 'id="f-change"' in html and "<pre" not in html
    path = write_index(tmp_path, recs, summary=None, info={"model": "m", "turns": 2})
    assert path.read_text().startswith("<!DOCTYPE html>") and "<tr><th>turns</th><td>2</td></tr>" in path.read_text()


def test_summary_markdown_becomes_tables():
    md = "# getok eval\n\n- model: m\n\n## Metrics\n\n| run | n | gIoU (%) |\n|---|---|---|\n| text>mask | 4 | 50.19 |\n| all | 4 | – |\n\nEmpty targets: <x>\n"
    out = markdown_html(md)
    assert "<h3>Metrics</h3>" in out and "getok eval" not in out and "<li>model: m</li>" in out
    assert "<th>gIoU (%)</th>" in out and "<td>text&gt;mask</td>" in out and '<td class="num">50.19</td>' in out
    assert out.count("<tr>") == 3 and "---" not in out and "Empty targets: &lt;x&gt;" in out
    assert "<li>" not in markdown_html(md, skip_lists=True)
