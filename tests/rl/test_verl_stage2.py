"""verl stage 2 without verl: the proposal rule, the row export, the reward function and the config files' own
checks (verl's code drives the same pieces in tests/engines_verl, `make test-verl`)."""

from __future__ import annotations

import json
from collections import UserDict
from pathlib import Path

import pytest

from getok.errors import ConfigError, DataError
from getok.rl.verl_stage2 import AGENT_NAME, export_verl_stage2, resolve_proposal

REPO = Path(__file__).resolve().parents[2]
SPEC = "grid_offset:n=8,r=1,step=0.5"

pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    from getok.cli.main import main

    out = tmp_path_factory.mktemp("verl") / "tasks"
    rc = main(["build", "tasks", "--scenes", "3", "--codec", SPEC, "--tasks", "text>mask,point>mask,multi>mask",
               "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def exported(tasks_dir, tmp_path_factory):
    from getok.rl.cli import main

    out = tmp_path_factory.mktemp("verl") / "v2"
    assert main(["rl", "export-verl", "--data", str(tasks_dir), "--out", str(out), "--quiet"]) == 0
    import datasets

    return out, list(datasets.Dataset.from_parquet(str(out / "train.parquet")))


def _by_id(tasks_dir):
    from getok.data_builders.dataset import read_dataset

    return {s.sample_id: s for s in read_dataset(tasks_dir)}


def test_resolve_proposal_keeps_a_refinable_answer_and_replaces_the_rest():
    kw = dict(codec=SPEC, size=(64, 64), fallback="<g8_r1_c1><g8_r1_c2>", max_cells=4)
    p = resolve_proposal("<think>t</think><answer><g8_r0_c0><g8_r0_c1></answer><|im_end|>", **kw)
    assert (p.text, p.answer, p.source, p.reason) == ("<think>t</think><answer><g8_r0_c0><g8_r0_c1></answer>",
                                                      "<g8_r0_c0><g8_r0_c1>", "policy", "")  # fmt: skip
    assert p.extra_fields() == {"proposal": "<g8_r0_c0><g8_r0_c1>", "proposal_source": "policy", "proposal_reason": ""}
    for text, reason in (("none", "none"), ("<g8_r9", "invalid:"), ("<g8_r0_c0>" * 5, "too_long"), (None, "invalid:")):
        q = resolve_proposal(text, **kw)
        assert (q.text, q.answer, q.source) == (kw["fallback"], kw["fallback"], "fallback") and q.reason.startswith(
            reason
        )
    assert resolve_proposal("<g8_r0_c0>", closed=False, **kw).reason == "truncated"
    assert resolve_proposal("<g8_r0_c0>", reason="prompt_too_long", **kw).source == "fallback"
    assert resolve_proposal("none", **{**kw, "on_invalid": "mask"}).source == "masked"
    with pytest.raises(ConfigError):
        resolve_proposal("none", **{**kw, "on_invalid": "skip"})
    with pytest.raises(DataError, match="fallback"):
        resolve_proposal("none", **{**kw, "fallback": ""})


def test_export_rows_are_the_stage1_questions_with_truth_and_fallback(tasks_dir, exported):
    from getok.data_builders.export import engine_prompt
    from getok.rl.stage2 import fallback_proposal
    from getok.rl.truth import unpack_truth

    out, rows = exported
    samples = _by_id(tasks_dir)
    man = json.loads((out / "manifest.json").read_text())
    assert man["export"]["format"] == "verl" and man["export"]["rows"] == len(rows) > 0
    assert man["export"]["counts"]["wrong_task"] == sum(s.task == "multi>mask" for s in samples.values())
    assert (out / "getok_layout.json").is_file() and not (out / "easyr1").exists()
    for i, r in enumerate(rows):
        s = samples[r["extra_info"]["sample_id"]]
        assert s.task in ("text>mask", "point>mask")
        assert r["prompt"] == [{"role": "user", "content": engine_prompt(s.turns[0].user)}]
        assert r["agent_name"] == AGENT_NAME and r["data_source"] == "getok/stage2" and r["extra_info"]["index"] == i
        assert len(r["images"]) == 1 and r["images"][0].size == (s.size[1], s.size[0])  # embedded, decoded by datasets
        ikw = r["extra_info"]["interaction_kwargs"]
        assert ikw == {"name": AGENT_NAME, "codec": SPEC, "size": list(s.size),
                       "fallback": fallback_proposal(s, SPEC, k=6, seed=0)}  # fmt: skip
        t = unpack_truth(r["reward_model"]["ground_truth"])
        assert (t.task, t.codec, t.n_targets, t.proposal) == ("stage2", SPEC, 1, None)


def test_export_refuses_data_without_refinable_questions(tasks_dir, tmp_path):
    with pytest.raises(DataError, match="no single-target"):
        export_verl_stage2(tasks_dir, tmp_path / "x", tasks=("box>mask",))
    with pytest.raises(ConfigError, match="stage-2 tasks"):
        export_verl_stage2(tasks_dir, tmp_path / "y", tasks=("multi>mask",))


def test_reward_equals_the_stage2_scorer_against_the_rollouts_proposal(tasks_dir, exported):
    from getok.rl.rewards_decoding import DecoderSession
    from getok.rl.rewards_stage2 import Stage2Config, score_stage2
    from getok.rl.stage2 import oracle_refinement_answer, truth_masks
    from getok.rl.truth import unpack_truth
    from getok.rl.verl_reward import REWARD_KEYS, compute_score

    _, rows = exported
    r = rows[0]
    s = _by_id(tasks_dir)[r["extra_info"]["sample_id"]]
    proposal = r["extra_info"]["interaction_kwargs"]["fallback"]
    answer = oracle_refinement_answer(proposal, truth_masks(s), SPEC, s.size)
    gt = r["reward_model"]["ground_truth"]
    info = {**r["extra_info"], "proposal": proposal, "proposal_source": "fallback", "proposal_reason": "none"}
    # verl hands reward_kwargs over as OmegaConf containers: a Mapping that is not a dict
    kw = {"decoder": "raster", "config": UserDict({"stage2": UserDict({"envelope": "any"})})}
    got = compute_score("getok/stage2", answer, gt, info, **kw)
    want = score_stage2(
        answer, unpack_truth(gt), DecoderSession("raster"), Stage2Config(envelope="any"), proposal=proposal
    )
    assert tuple(got) == REWARD_KEYS and all(isinstance(v, float) for v in got.values())
    assert got["score"] == pytest.approx(want["overall"]) and got["score"] > 0.5
    assert (got["invalid"], got["proposal_fallback"], got["proposal_policy"]) == (0.0, 1.0, 0.0)
    bad = compute_score("getok/stage2", "<off_9_9>oops", gt, info, **kw)
    assert tuple(bad) == REWARD_KEYS and (bad["score"], bad["invalid"]) == (0.0, 1.0)
    masked = compute_score("getok/stage2", answer, gt, {**info, "proposal_source": "masked"}, **kw)
    assert (masked["score"], masked["invalid"], masked["proposal_masked"]) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="agent loop"):  # a run without getok's loop stops instead of scoring 0
        compute_score("getok/stage2", answer, gt, dict(r["extra_info"]), **kw)


def test_agent_loop_module_imports_without_verl():
    import importlib.util

    import getok.rl.verl_agent as va

    assert set(va.AGENT_LOOP_KWARGS) == {"on_invalid", "max_cells", "proposal_max_tokens", "refine_prompt"}
    if importlib.util.find_spec("verl") is None:
        with pytest.raises(ImportError, match="requirements/verl.txt"):
            va.GetokRefineAgentLoop  # noqa: B018


def test_shipped_verl_configs_pass_getoks_own_checks():
    """What runs without verl: the agent-loop YAML names our class with known settings, and the reward kwargs'
    config is a valid getok RewardConfig (verl's own checks: make test-verl)."""
    import yaml

    from getok.rl.rewards import RewardConfig
    from getok.rl.verl_agent import AGENT_LOOP_KWARGS
    from getok.rl.verl_stage2 import AGENT_TARGET, REWARD_PATHS

    entries = yaml.safe_load((REPO / "configs" / "verl" / "agent_loop.yaml").read_text())
    (entry,) = [e for e in entries if e["name"] == AGENT_NAME]
    assert entry["_target_"] == AGENT_TARGET and set(entry) - {"name", "_target_"} <= set(AGENT_LOOP_KWARGS)
    cfg = yaml.safe_load((REPO / "configs" / "verl" / "qwen2_5_vl_7b-stage2.yaml").read_text())
    crf = cfg["reward"]["custom_reward_function"]
    assert crf["path"] in REWARD_PATHS and crf["name"] == "compute_score"
    assert RewardConfig.from_dict(crf["reward_kwargs"]["config"]).stage2.envelope == "think"
    assert cfg["actor_rollout_ref"]["rollout"]["agent"]["default_agent_loop"] == AGENT_NAME
    assert entry["max_cells"] < cfg["data"]["max_response_length"]
    script = (REPO / "configs" / "verl" / "run_stage2.sh").read_text()
    assert "rl export-verl" in script and "rl check-verl" in script and "verl.trainer.main_ppo" in script
