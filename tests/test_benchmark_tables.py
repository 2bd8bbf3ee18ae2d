"""benchmarks/tables.py: the committed benchmarks/README.md is what the committed results render to."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("benchmark_tables", REPO / "benchmarks" / "tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_readme_is_current(tables):
    readme = REPO / "benchmarks" / "README.md"
    assert readme.read_text(encoding="utf-8") == tables.render(REPO / "benchmarks" / "results"), (
        "benchmarks/README.md is stale: run python benchmarks/tables.py"
    )
    assert tables.main(["--check"]) == 0


def test_generic_and_study_sections(tables, tmp_path):
    res = tmp_path / "results"
    (res / "studies").mkdir(parents=True)
    (res / "future.json").write_text(
        json.dumps(
            {
                "benchmark": "future",
                "speed_per_s": 12.5,
                "note": "a | pipe",
                "nested": {"target_per_s": 100, "meets_target": False},
                "rows": [{"name": "a", "iou": 0.5}, {"name": "b", "extra": None}],
            }
        )
    )
    (res / "odd.json").write_text("[1, 2, 3]")
    (res / "studies" / "toy.json").write_text(json.dumps({"provenance": {"environment": {"cpu_count": 2}}}))
    (res / "studies" / "toy.md").write_text("# Toy study\n\n| a |\n|---|\n| 1 |\n")
    text = tables.render(res)
    assert "## future (generic)" in text
    assert "| speed_per_s | 12.5 |" in text
    assert "a \\| pipe" in text  # pipes escaped inside cells
    assert "| b | – | – |" in text  # row table over the union of keys
    assert "- future.json: nested" in text  # listed among the missed targets
    assert "nested › meets_target: **missed**" in text
    assert "## odd (generic)" in text and "not an object" in text
    assert "### Toy study" in text and "Machine: cpu_count 2." in text

    readme = tmp_path / "README.md"
    assert tables.main(["--check", "--results", str(res), "--readme", str(readme)]) == 1
    assert tables.main(["--results", str(res), "--readme", str(readme)]) == 0
    assert tables.main(["--check", "--results", str(res), "--readme", str(readme)]) == 0


def test_known_file_with_changed_layout_is_a_clear_error(tables, tmp_path):
    (tmp_path / "rewards.json").write_text(json.dumps({"benchmark": "rewards"}))
    with pytest.raises(ValueError, match="rewards.json: layout not what"):
        tables.render(tmp_path)
