"""``getok.rl``'s public entry points: named in one place, importable without pulling torch."""

import pytest

from tests.conftest import fresh_python


def test_public_names_resolve_to_their_implementations_and_the_package_import_is_light():
    code = (
        "import sys, getok.rl as rl; light = 'torch' not in sys.modules;"
        "from getok.rl.rewards import score_stage1; from getok.rl.grpo_config import load_grpo_config;"
        "print(light, rl.score_stage1 is score_stage1, rl.load_grpo_config is load_grpo_config)"
    )
    assert fresh_python(code) == ["True", "True", "True"]


def test_every_public_name_exists():
    import getok.rl as rl

    for name in rl.__all__:
        assert getattr(rl, name) is not None
    assert callable(rl.run_grpo) and rl.load_grpo_config(None, []).rl.stage in (1, 2)
    with pytest.raises(AttributeError, match="no attribute 'train'"):
        rl.train  # noqa: B018
