"""Where a result came from — the one implementation of each: content hashes of images, fingerprints of
configs, CPU / wall time, package versions, the machine and the checkout.

* :func:`image_hash` — sha256 of an image's shape, dtype and pixels: the identity of an image in every cache
  (on disk: point-mask caches; in memory: decoder embeddings, reward sessions).
* :func:`fingerprint` — a short sha256 of any JSON-able object (sorted keys): what a resumed run checks
  its settings against.
* :func:`cpu_seconds`, :class:`Clock` — CPU time of this process **and its finished children** (data
  loader workers), user + system, beside wall time: the same measure in SFT, GRPO, the demo and the studies.
* :func:`versions`, :func:`machine`, :func:`git_commit`, :func:`environment` — what every result file records.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import numpy as np

from ._version import __version__

__all__ = [
    "image_hash",
    "fingerprint",
    "cpu_seconds",
    "Clock",
    "PACKAGES",
    "versions",
    "cpu_model",
    "machine",
    "git_commit",
    "environment",
]

#: The packages whose versions results record.
PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "numpy", "matplotlib")


def image_hash(image) -> str:
    """sha256 (hex) of an image's pixels, shape and dtype — the identity of an image in every cache.

    >>> image_hash(np.zeros((2, 2, 3), np.uint8))[:12]
    '26a9605fb992'
    """
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def fingerprint(obj, length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of ``obj`` as JSON (sorted keys; other values by ``str``).

    >>> fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (data loader workers), user + system, seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Clock:
    """Wall and CPU seconds (:func:`cpu_seconds`) since creation: ``with Clock() as c: ...; c.wall, c.cpu``,
    or ``c.stop()`` → ``{"wall_s", "cpu_s"}`` (to the millisecond: a short step must not read as 0); ``c.elapsed()`` reads without stopping.

    ``split()`` reads the same dictionary without stopping (a phase inside a longer run); ``prefix`` names the
    keys (``c.stop("total_")`` → ``{"total_wall_s", "total_cpu_s"}``) and ``digits`` rounds them (summaries that
    report to the tenth of a second: ``digits=1``).

    >>> sorted(Clock().split("setup_"))
    ['setup_cpu_s', 'setup_wall_s']
    """

    def __init__(self) -> None:
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()
        self.wall = self.cpu = 0.0

    def elapsed(self) -> tuple[float, float]:
        """``(wall, cpu)`` seconds so far."""
        return time.perf_counter() - self.t0, cpu_seconds() - self.c0

    @staticmethod
    def _seconds(wall: float, cpu: float, prefix: str, digits: int) -> dict:
        return {f"{prefix}wall_s": round(wall, digits), f"{prefix}cpu_s": round(cpu, digits)}

    def split(self, prefix: str = "", digits: int = 3) -> dict:
        """``{prefix + "wall_s", prefix + "cpu_s"}`` so far, rounded to ``digits``; the clock runs on."""
        return self._seconds(*self.elapsed(), prefix, digits)

    def stop(self, prefix: str = "", digits: int = 3) -> dict:
        """Stop: ``wall`` / ``cpu`` keep the seconds; returns them as :meth:`split` does."""
        self.wall, self.cpu = self.elapsed()
        return self._seconds(self.wall, self.cpu, prefix, digits)

    def __enter__(self) -> Clock:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def versions(packages: Iterable[str] = PACKAGES) -> dict:
    """``{"getok", "python", package: version or None}``."""

    out = {"getok": __version__, "python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def cpu_model() -> dict:
    """The CPU's model name and, when torch is loaded, the vector instruction set its kernels use
    (``AVX2``, ``AVX512``, ...): float results of the same run can differ between CPUs that differ here."""
    name = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    torch = sys.modules.get("torch")
    cap = None
    if torch is not None:
        try:
            cap = torch.backends.cpu.get_cpu_capability()
        except (AttributeError, RuntimeError):
            cap = None
    return {"cpu_model": name, "torch_cpu_capability": cap}


def machine() -> dict:
    """Platform, CPU count and model (:func:`cpu_model`) and the load average now (``None`` where the OS has
    none)."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"platform": platform.platform(), "cpus": os.cpu_count(), **cpu_model(), "load_average": load}


def git_commit(root: str | Path | None = None) -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes); ``None`` outside a git checkout."""

    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def environment() -> dict:
    """:func:`versions`, the platform, CPU count and load average at start, and the git commit."""
    m = machine()
    return {
        **versions(),
        "platform": m["platform"],
        "git_commit": git_commit(),
        "cpu_count": m["cpus"],
        "load_average_at_start": m["load_average"],
    }
