"""The trivial baselines (getok.eval.baselines): what they answer, and that random_object is a fair draw."""

from __future__ import annotations

import pytest

from getok.data_builders.scenes import SceneConfig, generate_scenes
from getok.data_builders.tasks import TaskConfig, build_tasks
from getok.errors import ConfigError
from getok.eval.baselines import BASELINES, BaselineGenerator, baseline_answer


@pytest.fixture(scope="module")
def samples():
    scenes = generate_scenes(60, 10_000, SceneConfig(min_objects=1, max_objects=3))
    return build_tasks(scenes, "grid_offset:n=8,r=1,step=0.5", TaskConfig(tasks=("text>mask", "point>mask")))


def test_random_object_answers_an_object_of_the_same_image_and_task(samples):
    gen = BaselineGenerator("random_object", samples=samples, seed=0)
    answers = gen(samples)
    by_image = {}
    for s in samples:
        by_image.setdefault((s.image, s.task), []).append(s)
    own = 0
    for s, a in zip(samples, answers):
        peers = by_image[(s.image, s.task)]
        assert a in {p.answer for p in peers}
        if len(peers) == 1:
            assert a == s.answer
        own += a == s.answer
    # a fair draw: the share of samples answered with their own object is near E[1 / objects]
    expect = sum(1 / len(by_image[(s.image, s.task)]) for s in samples)
    assert abs(own - expect) < 4 * expect**0.5
    multi = [s for s in samples if len(by_image[(s.image, s.task)]) > 1]
    assert multi and sum(a != s.answer for s, a in zip(samples, answers) if s in multi) > 0


def test_random_object_is_fixed_by_the_seed_not_the_order(samples):
    a = dict(zip((s.sample_id for s in samples), BaselineGenerator("random_object", samples=samples, seed=3)(samples)))
    rev = list(reversed(samples))
    b = dict(zip((s.sample_id for s in rev), BaselineGenerator("random_object", samples=rev, seed=3)(rev)))
    assert a == b
    c = dict(zip((s.sample_id for s in samples), BaselineGenerator("random_object", samples=samples, seed=4)(samples)))
    assert c != a


def test_centre_query_reference(samples):
    for s in samples[:20]:
        assert baseline_answer("centre", s) == "<g8_r4_c4>"
        assert baseline_answer("reference", s) == s.answer
        if s.task == "point>mask":
            x, y = s.truth["query"]["point"]
            assert baseline_answer("query", s) == f"<g8_r{int(y // 14)}_c{int(x // 14)}>"
    assert set(BASELINES) == {"centre", "query", "random_object", "reference"}
    with pytest.raises(ConfigError, match="unknown baseline"):
        BaselineGenerator("oracle")
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline_answer("oracle", samples[0])
