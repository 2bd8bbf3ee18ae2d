"""Codec benchmark on real-dev: every codec setting, encode → decode → raster, IoU vs tokens per object.

Writes ``benchmarks/results/codecs_real_dev.json`` (and a scenes variant). Same as::

    getok bench codecs --data ../shared/data/real-dev --out benchmarks/results/codecs_real_dev.json
    getok bench codecs --scenes 200 --out benchmarks/results/codecs_scenes.json
"""

from __future__ import annotations

import sys
from pathlib import Path

from getok.cli.main import main

HERE = Path(__file__).resolve().parent
REAL_DEV = HERE.parent.parent / "shared" / "data" / "real-dev"

if __name__ == "__main__":
    rc = 0
    if (REAL_DEV / "manifest.json").is_file():
        rc |= main(["bench", "codecs", "--data", str(REAL_DEV), "--out", str(HERE / "results" / "codecs_real_dev.json")])
    else:
        print(f"real-dev not found at {REAL_DEV}; running on procedural scenes only", file=sys.stderr)
    rc |= main(["bench", "codecs", "--scenes", "200", "--out", str(HERE / "results" / "codecs_scenes.json")])
    sys.exit(rc)
