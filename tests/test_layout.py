"""The library's layout rules (issue 18), checked on the source: no file over 500 lines, and an import inside
a function only where it must be — to defer a heavy optional dependency (torch, transformers, …) — and no
import cycle (an in-function import that would close one is a layering error, not a fix)."""

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
        for block in ast.walk(tree):  # ``if TYPE_CHECKING:`` imports never run
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
                nested.update(id(n) for n in ast.walk(block))
        for n in ast.walk(tree):
            if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in nested:
                top[m].update(_targets(m, n))
    return top, inner


def _closure(top, m: str, loaded: frozenset[str] = frozenset()) -> set[str]:
    """Every module imported when ``m`` is (its packages' ``__init__`` included), ``loaded`` aside: the
    packages already in ``sys.modules`` (an importer's own ancestors), whose ``__init__`` does not run again."""
    seen, stack = set(loaded), [m]
    while stack:
        x = stack.pop()
        parts = x.split(".")
        for name in (".".join(parts[: i + 1]) for i in range(len(parts))):
            if name not in seen:
                seen.add(name)
                stack.extend(top.get(name, ()))
    return seen


def _ancestors(m: str) -> frozenset[str]:
    parts = m.split(".")
    return frozenset(".".join(parts[:i]) for i in range(1, len(parts)))


def _heavy(top, m: str) -> set[str]:
    return {x.split(".")[0] for x in _closure(top, m)} & HEAVY


def test_no_library_file_over_500_lines():
    long = {str(p.relative_to(PKG.parent)): n for p in MODS.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by idea: {long}"


def test_in_function_imports_only_defer_heavy_dependencies():
    top, inner = _imports()
    bad = []
    for m, node in inner:
        targets = _targets(m, node)
        root = targets[0].split(".")[0]
        if root in HEAVY or (root != "getok" and root not in sys.stdlib_module_names):
            continue  # a third-party import deferred for import time
        where = f"{MODS[m].relative_to(PKG.parent)}:{node.lineno} imports {targets[-1]}"
        if root != "getok":
            bad.append(f"{where} (standard library: import it at the top)")
        elif any(m in _closure(top, t, _ancestors(m)) for t in targets):
            bad.append(f"{where} (hides an import cycle: move the shared code down a layer)")
        elif not set().union(*(_heavy(top, t) for t in targets)) - _heavy(top, m):
            bad.append(f"{where} (defers nothing heavy: import it at the top)")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_at_module_level():
    """Following every module-level import from any module never comes back to it (packages already
    loading aside): the layers import one way."""
    top, _ = _imports()
    modules = [m for m, path in MODS.items() if path.name != "__init__.py"]  # a package may import its own parts
    cycles = [m for m in modules if any(m in _closure(top, t, _ancestors(m)) for t in top.get(m, ()) if t.startswith("getok"))]
    assert not cycles, cycles


def test_the_checker_resolves_imports_and_sees_heavy_closures():
    """The pieces of the rule above work (a check that cannot fail is no check)."""
    node = ast.parse("def f():\n    from ..errors import GetokError\n    from . import token_names\n").body[0].body
    assert _targets("getok.codecs.grid", node[0]) == ["getok.errors"]
    assert _targets("getok.codecs.grid", node[1]) == ["getok.codecs", "getok.codecs.token_names"]
    top = {"getok.a": {"torch.nn"}, "getok.b": {"getok.a"}, "getok.c": {"numpy"}}
    assert _heavy(top, "getok.b") == {"torch"} and _heavy(top, "getok.c") == set()
    assert "getok.a" in _closure(top, "getok.b") and "getok.b" not in _closure(top, "getok.a")


#: The layers, bottom up: a module imports only from its own layer or below (the README's Layout). The
#: command-line modules (``*.cli``, ``*.cli_builders``) are the top layer of their package.
LAYERS = (
    ("getok.conventions", "getok.errors", "getok.registry", "getok.io", "getok.provenance", "getok._version",
     "getok._lazy", "getok.config"),
    ("getok.ops", "getok.geometry", "getok.samples", "getok.records", "getok.answers"),
    ("getok.codecs",),
    ("getok.backends",),
    ("getok.data_builders", "getok.vocab"),
    ("getok.decoding",),
    ("getok.eval",),
    ("getok.train", "getok.rl"),
    ("getok.cli",),
)  # fmt: skip


def _layer(m: str) -> int | None:
    if m.split(".")[-1] in ("cli", "cli_builders") or m.startswith("getok.cli"):
        return len(LAYERS) - 1
    hits = [(len(p), i) for i, layer in enumerate(LAYERS) for p in layer if m == p or m.startswith(p + ".")]
    return max(hits)[1] if hits else None


def test_imports_go_down_the_layers():
    top, inner = _imports()
    edges = {(m, t) for m, ts in top.items() for t in ts} | {(m, _targets(m, n)[-1]) for m, n in inner}
    up = sorted((m, t) for m, t in edges if t.startswith("getok.") and MODS[m].name != "__init__.py"
                and None not in (_layer(m), _layer(t)) and _layer(t) > _layer(m))  # fmt: skip
    assert not up, f"upward imports (importer, imported): {up}"
    assert _layer("getok.eval.cli") == _layer("getok.cli.main") > _layer("getok.rl.grpo") > _layer("getok.codecs.grid")
