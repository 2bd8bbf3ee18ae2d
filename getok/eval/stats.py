"""Statistics that hold for bounded per-question scores: paired comparisons and bootstrap intervals.

Every learned number getok reports is a mean of per-question scores in [0, 1] (IoU, hit), most of them 0 or
1. Comparing two models (or two turns) on the *same* questions is a paired comparison:

* :func:`paired_comparison` — mean difference with a percentile bootstrap interval over questions, the
  improved / worse / tied counts and a two-sided exact sign test on them (the p-value a reader can redo
  from the counts);
* :func:`bootstrap_mean` — a percentile interval for one mean (optionally clustered, e.g. by seed), never a
  Student-t interval on a handful of bounded values;
* :func:`bootstrap_crossed` — the interval of a mean over seeds x questions (every seed's model answered the
  same questions): seeds and questions are resampled together, so both sources of variation count; for two
  arms on the same seeds and questions, pass the difference matrix (a paired interval).

All resampling is seeded and vectorised (numpy), so a report is reproducible to the digit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "CHANGE_TOL", "bootstrap_mean", "bootstrap_crossed", "paired_comparison", "sign_test", "format_diff", "format_p",
]  # fmt: skip


#: A per-question score change larger than this counts as better / worse (the same rule for the paired
#: tests, the self-correction turn deltas and the per-sample page).
CHANGE_TOL = 1e-9


def sign_test(improved: int, worse: int) -> float:
    """Two-sided exact binomial sign test of ``improved`` vs ``worse`` (ties dropped); 1.0 with no change.

    >>> round(sign_test(25, 12), 3)
    0.047
    >>> sign_test(0, 0)
    1.0
    """
    from scipy.stats import binomtest

    n = int(improved) + int(worse)
    if n == 0:
        return 1.0
    return float(binomtest(int(improved), n, 0.5, alternative="two-sided").pvalue)


def bootstrap_mean(
    values: Sequence[float], *, clusters: Sequence | None = None, n_boot: int = 10_000, level: float = 0.95,
    seed: int = 0,
) -> dict:  # fmt: skip
    """Mean of ``values`` with a percentile bootstrap interval.

    ``clusters`` (one label per value, e.g. the seed that produced it) resamples whole clusters, then values
    within them, so an interval over several seeds counts both sources of variation.

    Returns ``{"mean", "lo", "hi", "n"}``.

    >>> r = bootstrap_mean([0, 1] * 50)
    >>> r["mean"], r["lo"] < 0.5 < r["hi"], r["n"]
    (0.5, True, 100)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    if clusters is None:
        idx = rng.integers(0, x.size, size=(n_boot, x.size))
        means = x[idx].mean(axis=1)
    else:
        labels = np.asarray(clusters)
        groups = [x[labels == g] for g in np.unique(labels)]
        means = np.empty(n_boot)
        pick = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        for b in range(n_boot):
            parts = [groups[g][rng.integers(0, groups[g].size, groups[g].size)] for g in pick[b]]
            means[b] = np.concatenate(parts).mean()
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": int(x.size)}


def bootstrap_crossed(
    scores, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0, max_cells: int = 20_000_000,
) -> dict:  # fmt: skip
    """Mean of a ``(seeds, questions)`` score matrix with a percentile interval from resampling seeds and
    questions together (a crossed design: each replicate draws seeds and questions with replacement and
    averages the selected cells).

    ``nan`` cells (a question a seed's run did not score) are left out of every mean. With one seed only the
    questions vary. Returns ``{"mean", "lo", "hi", "n_seeds", "n_questions"}``.

    >>> import numpy as np
    >>> m = np.array([[0.2, 0.4, 0.6], [0.3, 0.5, 0.7]])
    >>> r = bootstrap_crossed(m, n_boot=2000)
    >>> round(r["mean"], 3), r["lo"] <= r["mean"] <= r["hi"], r["n_seeds"], r["n_questions"]
    (0.45, True, 2, 3)
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"scores must be a (seeds, questions) matrix, got shape {x.shape}")
    s, q = x.shape
    ok = ~np.isnan(x)
    if not ok.any():
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n_seeds": s, "n_questions": q}
    v = np.where(ok, x, 0.0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, int(max_cells // max(1, s * q)))
    for b0 in range(0, n_boot, chunk):
        b = min(chunk, n_boot - b0)
        si = rng.integers(0, s, size=(b, s))
        qi = rng.integers(0, q, size=(b, q))
        cells = (si[:, :, None], qi[:, None, :])  # (b, s, q): the drawn seeds x the drawn questions
        num = v[cells].sum(axis=(1, 2))
        den = ok[cells].sum(axis=(1, 2))
        means[b0 : b0 + b] = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    a = (1 - level) / 2
    lo, hi = np.nanquantile(means, [a, 1 - a])
    return {"mean": float(v.sum() / ok.sum()), "lo": float(lo), "hi": float(hi), "n_seeds": s, "n_questions": q}


def paired_comparison(
    before: Sequence[float], after: Sequence[float], *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0,
    eps: float = CHANGE_TOL,
) -> dict:  # fmt: skip
    """``after`` vs ``before`` on the same questions (same order).

    Returns
    -------
    dict
        ``n``, ``before`` / ``after`` (means), ``diff`` (mean of ``after - before``) with its bootstrap
        interval ``lo`` / ``hi``, ``improved`` / ``worse`` / ``same`` (per-question changes larger than
        ``eps``), ``p`` (two-sided sign test on improved vs worse) and ``significant`` (``p < 1 - level``
        and the interval excludes 0).

    >>> r = paired_comparison([0, 0, 0, 1] * 25, [1, 0, 0, 1] * 25)
    >>> r["diff"], r["improved"], r["worse"], r["p"] < 1e-6, r["significant"]
    (0.25, 25, 0, True, True)
    """
    a = np.asarray(before, dtype=float)
    b = np.asarray(after, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.shape} vs {b.shape}")
    d = b - a
    improved, worse = int((d > eps).sum()), int((d < -eps).sum())
    ci = bootstrap_mean(d, n_boot=n_boot, level=level, seed=seed)
    p = sign_test(improved, worse)
    return {
        "n": int(d.size),
        "before": float(a.mean()) if a.size else float("nan"),
        "after": float(b.mean()) if b.size else float("nan"),
        "diff": ci["mean"],
        "lo": ci["lo"],
        "hi": ci["hi"],
        "improved": improved,
        "worse": worse,
        "same": int(d.size - improved - worse),
        "p": p,
        "significant": bool(p < 1 - level and (ci["lo"] > 0 or ci["hi"] < 0)),
    }


def format_diff(c: dict, nd: int = 3) -> str:
    """A :func:`paired_comparison`'s difference with its interval, as reports print it.

    >>> format_diff({"diff": 0.25, "lo": 0.1, "hi": 0.4})
    '+0.250 [+0.100, +0.400]'
    """
    return f"{c['diff']:+.{nd}f} [{c['lo']:+.{nd}f}, {c['hi']:+.{nd}f}]"


def format_p(p: float, eq: bool = False) -> str:
    """A p-value as a reader wants it: ``< 0.0001`` rather than a rounded 0 (``eq``: ``= 0.03`` in prose).

    >>> format_p(3e-7), format_p(0.0312), format_p(0.0312, eq=True)
    ('< 0.0001', '0.031', '= 0.031')
    """
    if p < 1e-4:
        return "< 0.0001"
    return ("= " if eq else "") + f"{p:.2g}"
