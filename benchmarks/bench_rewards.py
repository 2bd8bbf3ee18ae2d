"""Reward benchmark: writes ``benchmarks/results/rewards.json``.

    .venv/bin/python benchmarks/bench_rewards.py                 # defaults: 200 groups, SAM on 2 groups
    .venv/bin/python benchmarks/bench_rewards.py --no-sam        # the weight-free decoder only

Same as ``getok bench rewards --out benchmarks/results/rewards.json`` (options: ``--help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from getok_lab.bench.rewards import main

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "rewards.json"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(OUT)]
    if "--sam-groups" not in argv:
        argv += ["--sam-groups", "2"]
    sys.exit(main(argv))
