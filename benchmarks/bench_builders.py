"""Data-builder benchmark: writes ``benchmarks/results/builders.json``.

    .venv/bin/python benchmarks/bench_builders.py              # real-dev (../shared/data/real-dev) + 20 scenes
    .venv/bin/python benchmarks/bench_builders.py --scenes 40  # more procedural scenes

Same as ``getok bench builders --data ../shared/data/real-dev --out benchmarks/results/builders.json``.
Where real-dev is absent, only procedural scenes are measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

from getok_lab.bench.builders import main

REPO = Path(__file__).resolve().parents[1]
REAL_DEV = (REPO / ".." / "shared" / "data" / "real-dev").resolve()
OUT = REPO / "benchmarks" / "results" / "builders.json"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--data" not in argv:
        if (REAL_DEV / "manifest.json").is_file():
            argv += ["--data", str(REAL_DEV)]
        else:
            print(f"real-dev not found at {REAL_DEV}: procedural scenes only", file=sys.stderr)
    if "--out" not in argv:
        argv += ["--out", str(OUT)]
    sys.exit(main(argv))
