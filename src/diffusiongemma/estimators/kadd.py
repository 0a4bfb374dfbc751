"""Third-order regression: KernelSHAP's masks, refitted with pair and triple terms (a 3-additive surrogate).

The regression estimator fits ``v(z) − v(∅) ≈ Σ a_i z_i`` under the Shapley kernel. With complement pairs
that fit already gives the exact Shapley values of any game whose interactions are at most pairwise (a pair
term refitted on the same paired samples changes nothing, measured to 1e-15), so its error comes from
interactions among three or more units. This estimator fits
``Σ a_i z_i + Σ b_ij z_i z_j + Σ c_ijk z_i z_j z_k`` to the very same masks and values (same kernel, same
enumerated strata, ``Σ a + Σ b + Σ c = v(all) − v(∅)`` enforced) and returns the Shapley values of that
surrogate, ``φ_i = a_i + ½ Σ b_ij + ⅓ Σ c_ijk`` (kADD-SHAP with k = 3, Pelegrina et al. 2023). The
n(n−1)(n−2)/6 triple terms are shrunk by a ridge penalty ``RIDGE · (triples / evaluations)`` × the mean
diagonal of the normal matrix, which fades as evaluations grow, so the estimate tends to the unpenalised fit.

Bias and error: like KernelSHAP it is a ratio estimator, consistent, with an O(1/m) bias, plus the ridge's,
which also fades as 1/m; fitted on every mask (the budget enumerates all sizes) it is unpenalised and exact for
any game. Standard errors: the regression estimator's jackknife over groups of sampled pairs, each
leave-one-out fit with the same penalty.

It is used while the triples stay affordable: ``3 ≤ n ≤ MAX_UNITS``, Shapley schedule. Otherwise it is exactly
the regression estimator (same masks, same numbers).

Examples:
    >>> import numpy as np
    >>> from diffusiongemma import run
    >>> from diffusiongemma.estimators.exact import ValueTable
    >>> z = (np.arange(32)[:, None] >> np.arange(5)) & 1  # every mask of 5 units, by its bits
    >>> game = ValueTable(5, z[:, 0] * z[:, 1] * z[:, 2] * z[:, 3] + z[:, 4])  # a four-way AND and a lone unit
    >>> np.round(run(game, "kadd", budget=64).scores, 6)  # all masks enumerated: exact Shapley
    array([0.25, 0.25, 0.25, 0.25, 1.  ])
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .base import register_estimator
from .regression import RegressionEstimator

__all__ = ["ThirdOrderEstimator", "MAX_UNITS", "RIDGE"]

MAX_UNITS = 14  # 469 features (14 + 91 + 364); beyond that the regression estimator is used
RIDGE = 0.2  # chosen on B1's exact tables (10 and 12 words): 0.05 and 0.6 were within a few % of it


@register_estimator
class ThirdOrderEstimator(RegressionEstimator):
    """Regression on units, pairs and triples; Shapley values of the fitted third-order surrogate."""

    name = "kadd"

    def width(self, n: int, budget: int) -> int:
        use = not self.banzhaf and 3 <= n <= MAX_UNITS
        self.terms = [np.array(list(combinations(range(n), k)), dtype=int).reshape(-1, k) if use
                      else np.zeros((0, k), dtype=int) for k in (2, 3)]  # [q2, 2], [q3, 3]
        q2, q3 = len(self.terms[0]), len(self.terms[1])
        self.split = np.zeros((q2 + q3, n))  # [q, n]: a term's coefficient goes in equal shares to its units
        for offset, t in ((0, self.terms[0]), (q2, self.terms[1])):
            np.put_along_axis(self.split[offset: offset + len(t)], t, 1.0 / t.shape[1], axis=1)
        return n + q2 + q3

    def features(self, z: np.ndarray) -> np.ndarray:
        products = [np.prod(z[:, t], axis=2) for t in self.terms]  # [k, q2], [k, q3]
        return np.concatenate([z, *products], axis=1)  # [k, p]

    def scores(self, coef: np.ndarray) -> np.ndarray:
        return coef[..., : self.n] + coef[..., self.n:] @ self.split  # [..., n]

    def penalty(self, A: np.ndarray) -> np.ndarray:
        q3 = len(self.terms[1])
        out = np.zeros(len(A))
        if q3:
            out[-q3:] = RIDGE * q3 / max(self.evaluated, 1) * float(np.mean(np.diag(A)))
        return out
