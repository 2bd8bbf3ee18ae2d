"""Atomic writes: a half-written file or directory never appears under its final name."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_dir", "json_default"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def json_default(o):
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as Python values, paths as strings.

    >>> import json, numpy as np
    >>> json.dumps({"a": np.float32(0.5), "b": np.arange(2), "p": Path("x")}, default=json_default)
    '{"a": 0.5, "b": [0, 1], "p": "x"}'
    """
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist") and hasattr(o, "dtype"):  # numpy arrays and scalars (numpy is not imported here)
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | Path, obj, **kwargs) -> Path:
    """JSON-dump ``obj`` atomically (``indent=1`` and :func:`json_default` unless given)."""
    kwargs.setdefault("indent", 1)
    kwargs.setdefault("default", json_default)
    return atomic_write_text(path, json.dumps(obj, **kwargs))


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False):
    """Build a directory under a temporary name and rename it to ``path`` only if the block succeeds.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_dir(root / "out") as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in (root / "out").iterdir())
    ['a.txt']
    """
    path = Path(path)
    if path.exists() and not overwrite:
        from .errors import DataError

        raise DataError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
