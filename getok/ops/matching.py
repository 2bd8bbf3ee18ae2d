"""Hungarian assignment of predictions to targets on a similarity matrix: the one implementation, used by the
rewards' instance matching (:mod:`getok.rl.matching`) and the self-correction evaluation
(:func:`getok.eval.selfcorrect.match_targets`).

>>> match(np.array([[0.1, 0.9], [0.8, 0.2]])).pairs.tolist()
[[0, 1], [1, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["Matching", "match"]


@dataclass(frozen=True)
class Matching:
    """Result of the assignment.

    Attributes
    ----------
    pairs : (M, 2) int
        ``(prediction index, target index)`` of each match, sorted by prediction index.
    n_pred, n_gt : int
    sim : (n_pred, n_gt) float
        The similarity matrix the assignment was made on.
    """

    pairs: np.ndarray
    n_pred: int
    n_gt: int
    sim: np.ndarray

    @property
    def denominator(self) -> int:
        """``max(n_pred, n_gt)``: what instance rewards are averaged over (0 for no pred, no target)."""
        return max(self.n_pred, self.n_gt)

    @property
    def unmatched_pred(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_pred), self.pairs[:, 0])

    @property
    def unmatched_gt(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_gt), self.pairs[:, 1])

    def target_of(self) -> dict[int, int]:
        """``{prediction index: target index}``."""
        return {int(i): int(j) for i, j in self.pairs}


def match(sim) -> Matching:
    """Hungarian assignment maximising total similarity on a ``(P, G)`` matrix.

    Every prediction / target is matched while both remain (``min(P, G)`` pairs); which ones are left
    unmatched follows from the similarity.
    """
    s = np.asarray(sim, dtype=np.float64)
    if s.ndim != 2:
        raise ConfigError(f"similarity must be a (P, G) matrix, got shape {s.shape}")
    n_pred, n_gt = s.shape
    if n_pred == 0 or n_gt == 0:
        return Matching(np.zeros((0, 2), dtype=np.int64), n_pred, n_gt, s)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-np.where(np.isnan(s), 0.0, s))
    pairs = np.stack([rows, cols], axis=1).astype(np.int64)
    return Matching(pairs[np.argsort(pairs[:, 0], kind="stable")], n_pred, n_gt, s)
