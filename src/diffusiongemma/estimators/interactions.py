"""Pairwise interactions from the regression estimator's own samples (no extra evaluations).

The order-2 Faithful Shapley Interaction index (Faith-Shap, Tsai, Yeh & Ravikumar 2023) is the weighted
least-squares fit of ``v(z) − v(∅) ≈ Σ a_i z_i + Σ b_ij z_i z_j`` under the Shapley kernel with
``v(all) − v(∅)`` matched exactly; ``b_ij`` is the interaction of units i and j (positive: together they
do more than apart; negative: redundant, either one suffices). The regression estimator's masks already
follow that kernel (enumerated extreme sizes, kernel-sampled pairs), so refitting them with pair terms gives
the index for the candidate pairs at no model cost. Restricted to pairs among the strongest units, it is the
Faith-Shap fit of that reduced model (exact for a game that has no other interactions).

Examples:
    >>> import numpy as np
    >>> from diffusiongemma.estimators.base import masks_of_sizes
    >>> z = masks_of_sizes(3, [0, 1, 2, 3])
    >>> v = z @ np.array([1.0, 2.0, 0.0]) + 3.0 * z[:, 0] * z[:, 1]  # a planted pair (0, 1)
    >>> [(i, j, round(b, 6)) for i, j, b in pair_interactions(z, v, np.ones(len(z)), 0.0, 6.0, [0, 1, 2])][:1]
    [(0, 1, 3.0)]
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .regression import constrained_solve

__all__ = ["pair_interactions"]


def pair_interactions(masks: np.ndarray, values: np.ndarray, weights: np.ndarray, v_empty: float, total: float,
                      candidates: list[int]) -> list[tuple[int, int, float]]:
    """Faith-Shap pair indices ``(i, j, b_ij)`` for all pairs of ``candidates``, strongest first.

    ``masks [m, n]`` with ``values [m]`` and kernel ``weights [m]``; ``total`` is v(all) − v(∅).
    """
    pairs = list(combinations(sorted(candidates), 2))
    if not pairs:
        return []
    z = np.asarray(masks, dtype=float)  # [m, n]
    n = z.shape[1]
    idx = np.array(pairs)  # [p, 2]
    features = np.concatenate([z, z[:, idx[:, 0]] * z[:, idx[:, 1]]], axis=1)  # [m, n + p]
    w = np.asarray(weights, dtype=float)
    A = features.T @ (w[:, None] * features)  # [n + p, n + p]
    b = features.T @ (w * (np.asarray(values, dtype=float) - v_empty))
    coef = constrained_solve(A, b, total)  # Σ a + Σ b = v(all) − v(∅)
    out = [(int(i), int(j), float(c)) for (i, j), c in zip(pairs, coef[n:])]
    return sorted(out, key=lambda t: -abs(t[2]))
