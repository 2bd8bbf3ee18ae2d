"""Responses scored through EasyR1's own reward manager (``verl/workers/reward/function.py``) with our reward
file, exactly as a run does: ``RewardConfig`` post-initialised from ``path:compute_score``, the module loaded
by ``AutoRewardManager`` (``REWARD_TYPE`` / ``REWARD_NAME``), responses decoded from token ids with
``skip_special_tokens=True`` by the exported model's tokenizer, rewards placed at each response's last token."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import REPO, require_engines

require_engines()


def _manager(tokenizer, **kwargs):
    from verl.workers.reward import AutoRewardManager, RewardConfig

    cfg = RewardConfig(reward_function=f"{REPO}/getok/rl/easyr1_reward.py:compute_score",
                       reward_function_kwargs={"decoder": "raster", **kwargs})  # fmt: skip
    cfg.post_init()
    return AutoRewardManager(cfg, tokenizer)


def _batch(tokenizer, responses: list[str], truths: list[str]):
    """A DataProto as the rollout hands it over: right-padded response ids, a response mask, the truths."""
    import torch
    from verl.protocol import DataProto

    ids = [tokenizer.encode(r + tokenizer.eos_token, add_special_tokens=False) for r in responses]
    width = max(len(x) for x in ids)
    resp = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        resp[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return DataProto.from_dict(tensors={"responses": resp, "response_mask": mask},
                               non_tensors={"ground_truth": np.array(truths, dtype=object)}), ids  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(artefacts, easyr1_root):
    from verl.utils.tokenizer import get_tokenizer

    return get_tokenizer(str(artefacts / "easyr1-model"), use_fast=True)


@pytest.mark.parametrize("stage", [1, 2])
def test_reward_manager_scores_good_answers_and_counts_malformed_ones_invalid(stage, artefacts, tokenizer, capsys):
    import datasets

    from getok.answers import wrap_response

    manager = _manager(tokenizer)
    assert "Reward name: getok, reward type: batch" in capsys.readouterr().out  # from the module, not the YAML
    rows = list(datasets.Dataset.from_parquet(str(artefacts / f"e{stage}" / "train.parquet")))
    truths = [r["answer"] for r in rows]
    targets = [json.loads(t)["target"] for t in truths]
    good = [wrap_response(t, "I look at the image.") for t in targets]
    malformed = ["no idea", "<think>hmm</think><answer><g8_r0", "<answer></answer>", "<think>x</think>"]
    bad = [malformed[i % len(malformed)] for i in range(len(rows))]
    data, ids = _batch(tokenizer, good + bad, truths + truths)
    rewards, metrics = manager.compute_reward(data)
    n = len(rows)
    last = [float(rewards[i, len(x) - 1]) for i, x in enumerate(ids)]
    assert all(v > 0 for v in last[:n]), last[:n]  # the reference answers score above 0 ...
    assert all(v == 0.0 for v in last[n:])  # ... malformed ones 0, and are counted invalid (no crash)
    assert metrics["invalid"][:n] == [0.0] * n and metrics["invalid"][n:] == [1.0] * n
    assert float(rewards.sum()) == pytest.approx(sum(last))  # one reward per response, at its last token
    assert set(metrics) >= {"overall", "invalid"} and all(len(v) == 2 * n for v in metrics.values())
