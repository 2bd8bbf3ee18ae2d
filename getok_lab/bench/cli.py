"""``getok bench ...``: the benchmarks behind the numbers in the README (results under benchmarks/results)."""

from __future__ import annotations

import importlib

#: Modules exposing ``register_bench(subparsers)``.
BENCH_MODULES = ["getok_lab.bench.codecs", "getok_lab.bench.builders", "getok_lab.bench.decoders", "getok_lab.bench.rewards"]


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmarks: codecs, builders, decoders, rewards")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for mod in BENCH_MODULES:
        importlib.import_module(mod).register_bench(sub)
