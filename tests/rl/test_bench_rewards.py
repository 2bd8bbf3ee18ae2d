import argparse
import json

import numpy as np

from getok.rl.rewards import RewardScorer
from getok_lab.bench.rewards import main, register_bench, stage1_group, stage2_group


def test_synthetic_groups_score_sensibly():
    rng = np.random.default_rng(0)
    truth, responses = stage1_group(rng, size=(96, 128), rollouts=8)
    scores = RewardScorer().score_batch([{"response": r, "truth": truth} for r in responses])
    assert len(scores) == 8 and any(s["invalid"] == 0.0 and s["mask_iou"] > 0.5 for s in scores)
    truth2, responses2 = stage2_group(rng, size=(96, 128), rollouts=8)
    scores2 = RewardScorer().score_batch([{"response": r, "truth": truth2} for r in responses2])
    assert any(s["invalid"] == 0.0 for s in scores2)


def test_cli_writes_results(tmp_path):
    parser = argparse.ArgumentParser()
    register_bench(parser.add_subparsers())
    out = tmp_path / "rewards.json"
    rc = main(
        [
            "--out",
            str(out),
            "--groups",
            "2",
            "--sam-groups",
            "1",
            "--sam-img-size",
            "256",
            "--height",
            "96",
            "--width",
            "128",
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    for style in ("dense", "sparse"):
        assert res[f"stage1_raster_{style}"]["rollouts"] == 16 and res[f"stage1_raster_{style}"]["rollouts_per_s"] > 0
        assert res[f"stage2_raster_{style}"]["rollouts"] == 16
    assert res["stage1_raster_dense"]["tokens_per_rollout"] > res["stage1_raster_sparse"]["tokens_per_rollout"]
    for mode in ("joint", "union"):
        sam = res[f"stage1_sam_{mode}"]
        assert sam["rollouts"] == 8 and sam["embeddings_per_group"] == 1.0 and sam["invalid_rate"] < 1.0
