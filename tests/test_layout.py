"""The library's layout rules (issue 18), checked on the source: no file over 500 lines, and an import inside
a function only where it must be — to defer a heavy optional dependency (torch, transformers, …) from a
module that is light without it, or to break one of the listed package-level cycles."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "getok"
MAX_LINES = 500
#: Optional dependencies that cost seconds to import (the extras of setup.cfg): a light module imports
#: them, or a getok module that imports them, inside the function that needs them.
HEAVY = {"torch", "torchvision", "transformers", "tokenizers", "safetensors", "accelerate", "peft", "trl",
         "datasets", "segment_anything", "sam2", "sam3", "matplotlib", "jinja2", "verl", "ray", "hydra", "omegaconf"}  # fmt: skip
#: In-function imports that would close an import cycle at module level, (importer, imported) — each a
#: known debt; an entry that no longer occurs fails the test, so the list only shrinks. Most close through a
#: package ``__init__`` that re-exports its submodules eagerly (``getok.eval``, ``getok.data_builders``).
CYCLES: set[tuple[str, str]] = {
    ("getok.backends._engine", "getok.decoding._common"),
    ("getok.codecs.grid_offset", "getok.codecs.base"),
    ("getok.codecs.polygon", "getok.codecs._shapes"),
    ("getok.codecs.polygon", "getok.codecs.token_names"),
    ("getok.data_builders.dataset", "getok.data_builders.scenes"),
    ("getok.data_builders.greedy", "getok.data_builders.cache"),
    ("getok.data_builders.greedy", "getok.data_builders.proposers.exact"),
    ("getok.data_builders.greedy", "getok.data_builders.proposers.registry"),
    ("getok.data_builders.offset_bands", "getok.data_builders.proposers.base"),
    ("getok.data_builders.proposers.exact", "getok.data_builders.scenes"),
    ("getok.data_builders.scenes", "getok.data_builders.dataset"),
    ("getok.data_builders.scenes", "getok.data_builders.sample_list"),
    ("getok.data_builders.scenes", "getok.data_builders.sources.manifest"),
    ("getok.data_builders.sources.manifest", "getok.data_builders.dataset"),
    ("getok.data_builders.sources.manifest", "getok.data_builders.tasks"),
    ("getok.decoding.proposals", "getok.decoding.scenes"),
    ("getok.decoding.scenes", "getok.decoding._common"),
    ("getok.decoding.scenes", "getok.decoding.proposals"),
    ("getok.eval.generate", "getok.eval.constrained"),
    ("getok.eval.generate", "getok.eval.grammar_logits"),
    ("getok.eval.run_records", "getok.eval.selfcorrect_summary"),
    ("getok.eval.runner", "getok.eval.constrained"),
    ("getok.eval.runner", "getok.eval.generate"),
    ("getok.eval.runner", "getok.eval.selfcorrect"),
    ("getok.geometry", "getok.ops.grid"),
    ("getok.rl.verl_stage2", "getok.rl.verl_agent"),
}


def _modname(p: Path) -> str:
    parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODS = {_modname(p): p for p in PKG.rglob("*.py")}


def _targets(cur: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = cur.split(".") if MODS[cur].name == "__init__.py" else cur.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [mod] + [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODS]


def _imports():
    """``(module-level graph, [(module, in-function import node, its function)])``."""
    top, inner = defaultdict(set), []
    for m, p in MODS.items():
        tree = ast.parse(p.read_text())
        nested = set()
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(f):
                    if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in nested:
                        nested.add(id(n))
                        inner.append((m, n))
        for n in ast.walk(tree):
            if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in nested:
                top[m].update(_targets(m, n))
    return top, inner


def _closure(top, m: str) -> set[str]:
    """Every module imported when ``m`` is (its packages' ``__init__`` included)."""
    seen, stack = set(), [m]
    while stack:
        x = stack.pop()
        parts = x.split(".")
        for name in (".".join(parts[: i + 1]) for i in range(len(parts))):
            if name not in seen:
                seen.add(name)
                stack.extend(top.get(name, ()))
    return seen


def _heavy(top, m: str) -> set[str]:
    return {x.split(".")[0] for x in _closure(top, m)} & HEAVY


def test_no_library_file_over_500_lines():
    long = {str(p.relative_to(PKG.parent)): n for p in MODS.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by idea: {long}"


def test_in_function_imports_only_defer_heavy_dependencies_or_listed_cycles():
    top, inner = _imports()
    bad, seen_cycles = [], set()
    for m, node in inner:
        targets = _targets(m, node)
        root = targets[0].split(".")[0]
        if root in HEAVY or (root != "getok" and root not in sys.stdlib_module_names):
            continue  # a third-party import deferred for import time
        where = f"{MODS[m].relative_to(PKG.parent)}:{node.lineno} imports {targets[-1]}"
        if root != "getok":
            bad.append(f"{where} (standard library: import it at the top)")
        elif any(m in _closure(top, t) for t in targets):
            seen_cycles.add((m, targets[-1]))
            if (m, targets[-1]) not in CYCLES:
                bad.append(f"{where} (closes a cycle: move the shared code down a layer, or list it in CYCLES)")
        elif not set().union(*(_heavy(top, t) for t in targets)) - _heavy(top, m):
            bad.append(f"{where} (defers nothing heavy: import it at the top)")
    assert not bad, "\n".join(bad)
    assert not CYCLES - seen_cycles, f"no longer occur, remove from CYCLES: {sorted(CYCLES - seen_cycles)}"


def test_the_checker_resolves_imports_and_sees_heavy_closures():
    """The pieces of the rule above work (a check that cannot fail is no check)."""
    node = ast.parse("def f():\n    from ..errors import GetokError\n    from . import tokens\n").body[0].body
    assert _targets("getok.codecs.grid", node[0]) == ["getok.errors"]
    assert _targets("getok.codecs.grid", node[1]) == ["getok.codecs", "getok.codecs.token_names"]
    top = {"getok.a": {"torch.nn"}, "getok.b": {"getok.a"}, "getok.c": {"numpy"}}
    assert _heavy(top, "getok.b") == {"torch"} and _heavy(top, "getok.c") == set()
    assert "getok.a" in _closure(top, "getok.b") and "getok.b" not in _closure(top, "getok.a")
