"""Atomic writes: a half-written file or directory never appears under its final name."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import DataError

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_dir", "clean_stale_temp_dirs", "json_default"]

log = logging.getLogger(__name__)


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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's live process (or a platform without signals)
        return True
    return True


def _temp_dir_pattern(path: Path) -> re.Pattern:
    # ``.{name}.{pid}-{8 chars}.tmp`` (this module's names) or ``.{name}.{8 chars}.tmp`` (older getok
    # versions: no pid); tempfile's random part is 8 of [a-z0-9_], so ``.out.v2.*.tmp`` (another target) never
    # matches ``out``
    return re.compile(re.escape(f".{path.name}.") + r"(?:(\d+)-)?[a-z0-9_]{8}\.tmp")


def clean_stale_temp_dirs(path: str | Path) -> list[Path]:
    """Remove the temporary directories that killed builds of ``path`` left beside it; returns them.

    :func:`atomic_dir` builds ``out`` as ``.out.{pid}-XXXXXXXX.tmp`` next to it; a build that is killed
    (SIGKILL, out of memory, a power cut) cannot remove it, and nothing else would. Only directories of this
    very target are touched, and only those whose process is gone (a name without a pid, from an older
    version, counts as stale): a build of the same target still running keeps its directory.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = _temp_dir_pattern(path)
    removed = []
    for entry in path.parent.iterdir():
        m = pattern.fullmatch(entry.name)
        if not m or not entry.is_dir() or entry.is_symlink():
            continue
        if m.group(1) is not None and _pid_alive(int(m.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        log.info("removed %d stale temporary director%s of %s", len(removed), "y" if len(removed) == 1 else "ies", path)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False):
    """Build a directory under a temporary name and rename it to ``path`` only if the block succeeds.

    The temporary name is ``.{name}.{pid}-XXXXXXXX.tmp`` beside ``path``; those a killed earlier build of
    the same target left behind are removed first (:func:`clean_stale_temp_dirs`).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_dir(root / "out") as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in (root / "out").iterdir())
    ['a.txt']
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_dirs(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
    else:
        os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)  # also the one a build killed between the two renames left
