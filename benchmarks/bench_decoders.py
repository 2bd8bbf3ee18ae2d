"""Decoder benchmark on the real-dev set: writes ``benchmarks/results/decoders.json``.

    .venv/bin/python benchmarks/bench_decoders.py            # real-dev (../shared/data/real-dev)
    .venv/bin/python benchmarks/bench_decoders.py --scenes 40  # procedural scenes where real-dev is absent

Same as ``getok bench decoders --data ../shared/data/real-dev --out benchmarks/results/decoders.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from getok_lab.bench.decoders import main

REPO = Path(__file__).resolve().parents[1]
REAL_DEV = (REPO / ".." / "shared" / "data" / "real-dev").resolve()
OUT = REPO / "benchmarks" / "results" / "decoders.json"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--data" not in argv and "--scenes" not in argv:
        if not (REAL_DEV / "manifest.json").is_file():
            sys.exit(f"real-dev not found at {REAL_DEV}; pass --scenes N to use procedural scenes")
        argv += ["--data", str(REAL_DEV)]
    if "--out" not in argv:
        argv += ["--out", str(OUT)]
    sys.exit(main(argv))
