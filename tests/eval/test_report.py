"""The static HTML index: rows, escaping, sorting hooks."""

from __future__ import annotations

from getok.eval.report import index_html, index_rows, write_index


def _rec(i, first, last, valid=True, **kw):
    return {"id": i, "task": "text>mask", "kind": "mask", "valid": valid, "iou": last,
            "turns": [{"turn": 1, "iou": first}, {"turn": 2, "iou": last, "refine_valid": kw.get("refine_valid", True)}],
            "answer": kw.get("answer", "<g16_r01_c01>"), "invalid_reason": None if valid else "stray_text"}  # fmt: skip


def test_rows_carry_iou_change_and_oracle():
    recs = [_rec("a", 0.5, 0.75), _rec("b", 0.5, 0.25, refine_valid=False), {"id": "c", "iou": 0.9, "task": "text>box"}]
    recs[0]["oracle"] = [{"iou": 0.8}]
    rows = index_rows(recs, {"a": "samples/a.png"})
    assert rows[0]["delta"] == 0.25 and rows[0]["oracle"] == 0.8 and rows[0]["png"] == "samples/a.png"
    assert rows[1]["delta"] == -0.25 and rows[1]["refine_invalid"] == 1
    assert rows[2]["iou_first"] == rows[2]["iou_last"] == 0.9 and rows[2]["delta"] == 0.0 and rows[2]["png"] is None


def test_html_escapes_and_sorts(tmp_path):
    recs = [_rec("<script>x</script>", 0.1, 0.2, answer="<g16_r01_c01>&"), _rec("b", 0.3, 0.1, valid=False)]
    html = index_html(index_rows(recs))
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "&lt;g16_r01_c01&gt;&amp;" in html
    assert html.count('onclick="sortBy(') == 11 and 'data-v="0.1"' in html
    assert "no (stray_text)" in html
    path = write_index(tmp_path, recs, summary=None, info={"model": "m", "turns": 2})
    assert path.read_text().startswith("<!DOCTYPE html>") and "&quot;turns&quot;: 2" in path.read_text()
