"""Engine contract tests: our configs, data, model directories and reward file driven through EasyR1's own code.

They run in a separate environment (``make test-engines``: ``.venv-engines`` with transformers < 5, omegaconf
2.3.0 and EasyR1's CPU-installable requirements, pinned in ``requirements/engines-lock.txt``) against the
pinned EasyR1 snapshot in ``../shared/third_party/EasyR1`` (or ``$GETOK_EASYR1``). In the main environment
(transformers 5) or without the snapshot every test here skips, saying why. The artefacts are built once per
session by getok in the main environment (``$GETOK_MAIN_PYTHON``, default ``.venv/bin/python``), as a
user would build them before a launch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._main_env import build_artefacts

REPO = Path(__file__).resolve().parents[2]


def engines_skip_reason() -> str | None:
    """Why the engine contract tests cannot run here (``None``: they can)."""
    try:
        import transformers
    except ImportError:
        return "transformers is not installed (run: make test-engines)"
    if int(transformers.__version__.split(".")[0]) >= 5:
        return (f"transformers {transformers.__version__} here; EasyR1 needs >=4.54,<5: these tests run in "
                ".venv-engines (make test-engines)")  # fmt: skip
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        return "omegaconf is not installed (run: make test-engines)"
    from getok.rl.easyr1 import find_easyr1

    if find_easyr1() is None:
        return ("EasyR1's source not found: ../shared/third_party/EasyR1 is absent (a clone outside the workspace) "
                "and $GETOK_EASYR1 is unset")  # fmt: skip
    return None


def require_engines() -> None:
    """Skip the calling test module (with the reason) where the engine environment is not available."""
    reason = engines_skip_reason()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def easyr1_root() -> Path:
    from getok.rl.easyr1 import _import_easyr1_config, find_easyr1

    root = find_easyr1()
    _import_easyr1_config(root)  # verl importable (rollout / reward entered through their config modules if needed)
    return root


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory) -> Path:
    """The tiny model, its EasyR1 export and stage-1 / stage-2 rows, built by getok in the main environment."""
    return build_artefacts(Path(__file__).with_name("_build_artefacts.py"), tmp_path_factory.mktemp("engines"))
