"""Paired statistics: the sign test's p-values, bootstrap coverage, and what counts as significant."""

from __future__ import annotations

import math

import numpy as np
import pytest

from getok.eval.stats import bootstrap_mean, paired_comparison, sign_test


def _binom_two_sided(k: int, n: int) -> float:
    probs = [math.comb(n, i) / 2**n for i in range(n + 1)]
    return min(1.0, sum(p for p in probs if p <= probs[k] * (1 + 1e-7)))


@pytest.mark.parametrize("k, w", [(0, 0), (1, 0), (5, 5), (25, 12), (12, 25), (40, 2), (0, 9)])
def test_sign_test_is_the_exact_two_sided_binomial(k, w):
    expect = 1.0 if k + w == 0 else _binom_two_sided(k, k + w)
    assert sign_test(k, w) == pytest.approx(expect, rel=1e-9)


def test_bootstrap_interval_covers_the_mean_about_as_often_as_it_says():
    rng = np.random.default_rng(0)
    hits = 0
    for s in range(200):
        x = rng.random(60) < 0.3
        r = bootstrap_mean(x, n_boot=2000, seed=s)
        hits += r["lo"] <= 0.3 <= r["hi"]
    assert 0.88 <= hits / 200 <= 0.99


def test_clustered_bootstrap_is_wider_when_clusters_differ():
    values = [0.0] * 50 + [1.0] * 50
    clusters = [0] * 50 + [1] * 50
    plain, clustered = bootstrap_mean(values), bootstrap_mean(values, clusters=clusters)
    assert (clustered["hi"] - clustered["lo"]) > 2 * (plain["hi"] - plain["lo"])


def test_paired_comparison_counts_and_significance():
    same = paired_comparison([0.5] * 40, [0.5] * 40)
    assert same["diff"] == 0 and same["improved"] == same["worse"] == 0 and same["p"] == 1 and not same["significant"]
    noisy = paired_comparison([0, 1] * 20, [1, 0] * 20)  # 20 up, 20 down: no effect
    assert noisy["improved"] == noisy["worse"] == 20 and not noisy["significant"]
    worse = paired_comparison([1] * 30 + [0] * 10, [0] * 30 + [0] * 10)
    assert worse["diff"] == pytest.approx(-0.75) and worse["significant"] and worse["hi"] < 0
    with pytest.raises(ValueError, match="length"):
        paired_comparison([0, 1], [0])


def test_bootstrap_crossed_counts_seed_variation_and_pairs():
    from getok.eval.stats import bootstrap_crossed, bootstrap_mean

    rng = np.random.default_rng(0)
    q = 300
    # five seeds whose models differ systematically (offsets), same questions
    base = rng.random(q)
    m = np.clip(base[None, :] + np.array([-0.2, -0.1, 0.0, 0.1, 0.2])[:, None], 0, 1)
    crossed = bootstrap_crossed(m, n_boot=3000)
    pooled = bootstrap_mean(m.ravel(), n_boot=3000)  # treats the 1500 cells as independent
    assert crossed["lo"] <= crossed["mean"] <= crossed["hi"] and crossed["n_seeds"] == 5
    assert crossed["hi"] - crossed["lo"] > 1.5 * (pooled["hi"] - pooled["lo"])  # the seeds' spread counts
    # a paired interval: the same arm against itself is exactly 0
    z = bootstrap_crossed(m - m, n_boot=500)
    assert z["mean"] == z["lo"] == z["hi"] == 0.0
    # unscored cells are left out, a vector is one seed, a cube is refused
    m2 = m.copy()
    m2[0, :100] = np.nan
    assert bootstrap_crossed(m2, n_boot=500)["mean"] == pytest.approx(np.nanmean(m2))
    assert bootstrap_crossed(base, n_boot=500)["n_seeds"] == 1
    with pytest.raises(ValueError, match="seeds, questions"):
        bootstrap_crossed(np.zeros((2, 2, 2)))
