"""EasyR1 end to end without EasyR1: build → ``getok rl export-easyr1`` → the reward file loaded as EasyR1
loads it (``path.py:fn``, importlib from the file path, the exact input dict) scores the exported rows;
``getok rl make-stage2-data`` for stage 2; the launch guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from getok.answers import wrap_response
from getok.errors import ConfigError, DataError
from getok.rl.easyr1 import REWARD_FILE, check_easyr1, check_spatial_tokens

from .test_easyr1_reward import check_scores, load_like_easyr1

REPO = Path(__file__).resolve().parents[2]
SPEC = "grid_offset:n=8,r=1,step=0.5"

pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A getok checkpoint of the tiny model with the grid_offset vocabulary (untrained)."""
    from getok.train.callbacks import write_checkpoint_info
    from getok.vocab import add_spatial_tokens, build_tiny_model, load_model_and_processor, save_with_layout

    root = tmp_path_factory.mktemp("ckpt")
    base = build_tiny_model(root / "base")
    model, processor = load_model_and_processor(base)
    layout = add_spatial_tokens(processor, model, [SPEC])
    out = save_with_layout(model, processor, layout, root / "ckpt")
    write_checkpoint_info(out, layout, "", {"tuning": "merged"})
    return out


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    from getok.cli.main import main

    out = tmp_path_factory.mktemp("data") / "tasks"
    rc = main(["build", "tasks", "--scenes", "4", "--codec", SPEC, "--tasks", "text>mask,point>mask,multi>mask,none>mask",
               "--think", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    return out


def _rows(export_dir: Path) -> list[dict]:
    import datasets

    return list(datasets.Dataset.from_parquet(str(export_dir / "train.parquet")))


def _rl(*argv) -> int:
    from getok.rl.cli import main

    return main(["rl", *argv])


def _easyr1_content(prompt: str) -> list[dict]:
    """EasyR1's RLHFDataset._build_messages for an image row (split at <image>, keep non-empty text as is)."""
    out = []
    for i, part in enumerate(prompt.split("<image>")):
        if i:
            out.append({"type": "image"})
        if part:
            out.append({"type": "text", "text": part})
    return out


def _same_prompt_as_sft(tasks_dir, rows) -> None:
    """The user content EasyR1 builds from ``problem`` is SFT's (trl_messages), image and text alike."""
    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.export import trl_messages

    by_id = {s.sample_id: s for s in read_dataset(tasks_dir)}
    for r in rows:
        sft = trl_messages(by_id[r["sample_id"]])[0]["content"]
        sft = [{"type": "image"} if c["type"] == "image" else c for c in sft]
        assert _easyr1_content(r["problem"]) == sft


def test_stage1_rows_scored_by_the_reward_file_as_easyr1_calls_it(tasks_dir, tiny_ckpt, tmp_path):
    out = tmp_path / "e1"
    assert _rl("export-easyr1", "--stage", "1", "--data", str(tasks_dir), "--out", str(out), "--model", str(tiny_ckpt),
               "--quiet") == 0  # fmt: skip
    rows = _rows(out)
    assert rows and set(rows[0]) >= {"problem", "answer", "images"}
    assert rows[0]["problem"].startswith("<image>") and not rows[0]["problem"].startswith("<image>\n")
    _same_prompt_as_sft(tasks_dir, rows)
    import yaml

    data_yaml = yaml.safe_load((out / "easyr1_data.yaml").read_text())
    assert set(data_yaml) == {"data"} and data_yaml["data"]["train_files"].endswith("train.parquet")  # nested keys
    module, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score", decoder="raster")
    assert module.REWARD_TYPE == "batch" and module.REWARD_NAME == "getok"
    truths = [json.loads(r["answer"]) for r in rows]
    good = [wrap_response(t["target"], "I find it.") for t in truths]
    inputs = [{"response": g, "response_length": len(g), "ground_truth": r["answer"]} for g, r in zip(good, rows)]
    inputs += [{"response": "no idea", "response_length": 2, "ground_truth": r["answer"]} for r in rows]
    scores = fn(inputs)
    check_scores(scores, len(inputs))
    n = len(rows)
    assert all(s["invalid"] == 0.0 for s in scores[:n])  # the builder's answers are valid under the codec
    assert all(s["invalid"] == 1.0 and s["overall"] == 0.0 for s in scores[n:])
    none_rows = [i for i, t in enumerate(truths) if t["target"] == "none"]
    assert none_rows and all(scores[i]["overall"] == 1.0 for i in none_rows)  # correct no-target answer
    # raster-decoded cell answers on 112-px scenes: well above answers scored against another sample's truth
    own = sum(s["mask_iou"] for s in scores[:n]) / n
    other = fn([{**x, "ground_truth": rows[(i + 1) % n]["answer"]} for i, x in enumerate(inputs[:n])])
    assert own > 0.3 and own > 2 * sum(s["mask_iou"] for s in other) / n


def test_stage2_data_export_and_reward(tasks_dir, tiny_ckpt, tmp_path):
    s2, out = tmp_path / "s2", tmp_path / "e2"
    assert _rl("make-stage2-data", "--model", str(tiny_ckpt), "--data", str(tasks_dir), "--out", str(s2),
               "--max-new-tokens", "8", "--quiet") == 0  # fmt: skip
    man = json.loads((s2 / "manifest.json").read_text())
    counts = man["builder"]["counts"]
    assert counts.get("policy", 0) + counts.get("fallback", 0) > 0 and counts["wrong_task"] > 0  # multi / none left out
    with pytest.raises(DataError, match="stage1"):  # stage-2 samples are not stage-1 rows
        from getok.rl.easyr1 import export_easyr1_stage

        export_easyr1_stage(s2, tmp_path / "bad", stage=1)
    assert _rl("export-easyr1", "--stage", "2", "--data", str(s2), "--out", str(out), "--quiet") == 0
    rows = _rows(out)
    truths = [json.loads(r["answer"]) for r in rows]
    assert all(t["task"] == "stage2" and t["proposal"] for t in truths)
    assert all("Previous answer: " + t["proposal"] in r["problem"] for t, r in zip(truths, rows))
    _, fn = load_like_easyr1(f"{REWARD_FILE}:compute_score", decoder="raster")
    oracle = [{"response": wrap_response(t["target"], "refine"), "response_length": 9, "ground_truth": r["answer"]}
              for t, r in zip(truths, rows)]  # fmt: skip
    keep = [{"response": wrap_response("<off_0_0>" * len(t["target"].split("><")), "keep"), "response_length": 9,
             "ground_truth": r["answer"]} for t, r in zip(truths, rows)]  # fmt: skip
    so, sk = fn(oracle), fn(keep)
    check_scores(so, len(rows))
    assert all(s["invalid"] == 0.0 for s in so)
    assert sum(s["point_refine"] for s in so) > sum(s["point_refine"] for s in sk)
    assert all(s["mask_gain"] == 0.0 or s["iou_init"] == 1.0 for s in sk if not s["invalid"])


def test_guards_special_tokens_lora_and_reward_path(tiny_ckpt, tmp_path, monkeypatch):
    import yaml
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    assert check_spatial_tokens(tiny_ckpt, [SPEC])[0].startswith("ok")
    tok = AutoTokenizer.from_pretrained(str(tiny_ckpt))
    tok.add_tokens([AddedToken(f"<g2_r{r}_c{c}>", special=True, normalized=False) for r in range(2) for c in range(2)])
    with pytest.raises(ConfigError, match="special"):
        check_spatial_tokens(tok, ["grid:n=2"])
    assert "skip_special_tokens=false" in check_spatial_tokens(tok, ["grid:n=2"], skip_special_tokens=False)[0]

    monkeypatch.chdir(REPO)
    for name, stage in [(n, s) for n in ("qwen2_5_vl_7b", "qwen3_vl_8b") for s in (1, 2)]:
        lines = check_easyr1(config=REPO / f"configs/easyr1/{name}-stage{stage}.yaml", model=tiny_ckpt)
        assert any("compute_score" in x for x in lines)
        # EasyR1's own schema runs where its source and omegaconf import (tests/engines); else the report says so
        assert any("EasyR1's own schema" in x for x in lines)
    cfg = yaml.safe_load((REPO / "configs/easyr1/qwen2_5_vl_7b-stage1.yaml").read_text())
    cfg["worker"]["actor"]["model"]["lora"]["rank"] = 64
    p = tmp_path / "lora.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert any("frozen" in x for x in check_easyr1(config=p, model=tiny_ckpt))  # merged SFT rows: a warning
    info = json.loads((tiny_ckpt / "getok_checkpoint.json").read_text())
    other = tmp_path / "unmerged"
    import shutil

    shutil.copytree(tiny_ckpt, other)
    (other / "getok_checkpoint.json").write_text(json.dumps({**info, "tuning": "lora"}))
    with pytest.raises(ConfigError, match="full fine-tuning"):
        check_easyr1(config=p, model=other)
    cfg["worker"]["reward"]["reward_function"] = "examples/reward_function/math.py:compute_score"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="easyr1_reward.py"):
        check_easyr1(config=p)


def test_own_checks_catch_the_known_easyr1_mismatches_and_say_the_schema_was_not_checked(tmp_path, monkeypatch):
    """Without EasyR1's source (here: hidden) the report says its schema was not checked, and our own checks
    still refuse what EasyR1 refuses or trips over: worker.reward.reward_type (not a RewardConfig key), flat
    dotted keys (a config file merges nested), rollout.n > 1 with validation but no val_override_config.n: 1."""
    import yaml

    import getok.rl.easyr1_guards as e  # check_easyr1 looks find_easyr1 up there

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(e, "find_easyr1", lambda path=None: None)
    src = REPO / "configs/easyr1/qwen2_5_vl_7b-stage1.yaml"
    lines = check_easyr1(config=src)
    assert any("EasyR1's own schema NOT checked" in x for x in lines)
    assert any("validation with n 1" in x for x in lines)
    cfg = yaml.safe_load(src.read_text())
    p = tmp_path / "c.yaml"

    bad = json.loads(json.dumps(cfg))
    bad["worker"]["reward"]["reward_type"] = "batch"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="reward_type is not an EasyR1 key"):
        check_easyr1(config=p)

    bad = json.loads(json.dumps(cfg))
    del bad["worker"]["rollout"]["val_override_config"]
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="val_override_config"):
        check_easyr1(config=p)
    with pytest.raises(ConfigError, match="val_override_config"):  # overrides are applied as the launch applies them
        check_easyr1(config=src, overrides=["worker.rollout.val_override_config.n=8"])
    assert check_easyr1(config=p, overrides=["trainer.val_before_train=false", "trainer.val_freq=-1"])

    p.write_text(yaml.safe_dump({**cfg, "data.train_files": "x.parquet"}))
    with pytest.raises(ConfigError, match="flat dotted keys"):
        check_easyr1(config=p)
    assert any("disabled" in x for x in check_easyr1(config=src, easyr1=False))
