"""Names a package exports but imports on first use (PEP 562), so that importing the package stays light."""

from __future__ import annotations

import importlib


def lazy_attributes(package: str, names: dict[str, str], namespace: dict):
    """``__getattr__`` and ``__dir__`` for ``package`` whose ``names`` (public name → submodule, relative to
    the package) load on first use; a loaded name is kept in ``namespace`` (the package's ``globals()``).

    >>> ga, _ = lazy_attributes("getok", {"get_decoder": "decoding"}, {})
    >>> ga("get_decoder").__module__
    'getok.decoding.base'
    """

    def __getattr__(name: str):
        mod = names.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{mod}", package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
