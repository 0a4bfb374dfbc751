"""Diffusion-weighted regression: every evaluation informs all n units.

* Shapley schedule: KernelSHAP with paired (complement) masks and the efficiency constraint
  ``Σ φ = v(all kept) − v(all removed)`` enforced exactly (Lundberg & Lee 2017; Covert & Lee 2021). Mask sizes
  are drawn from the Shapley kernel, so the least-squares weights are uniform.
* Banzhaf schedule (t = 0.5): maximum-sample-reuse least squares: with masks m ~ Bernoulli(1/2) paired with
  1 - m, ``φ_i`` is the mean of ``(v(m) − v(1−m))·(2 m_i − 1)`` — unbiased, one evaluation pair for all units.

Standard errors: jackknife over groups of pairs (KernelSHAP), the CLT (Banzhaf).

Example:
    >>> import numpy as np
    >>> from diffusiongemma.estimators.regression import constrained_solve
    >>> constrained_solve(np.eye(2), np.array([1.0, 0.0]), 3.0)
    array([2., 1.])
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..schedules import Fixed, Uniform
from .base import Estimator, register_estimator

__all__ = ["RegressionEstimator", "constrained_solve"]

_GROUPS = 32


def constrained_solve(A: np.ndarray, b: np.ndarray, total: float) -> np.ndarray:
    """argmin φᵀAφ − 2bᵀφ subject to Σφ = total, for ``A [..., n, n]``, ``b [..., n]``."""
    n = A.shape[-1]
    ones = np.ones(n)
    rhs = np.stack([b, np.broadcast_to(ones, b.shape)], axis=-1)  # [..., n, 2]
    try:
        sol = np.linalg.solve(A, rhs)
    except np.linalg.LinAlgError:
        sol = np.linalg.pinv(A) @ rhs
    a_inv_b, a_inv_1 = sol[..., 0], sol[..., 1]  # [..., n]
    lam = (a_inv_b.sum(-1) - total) / a_inv_1.sum(-1)  # [...]
    return a_inv_b - lam[..., None] * a_inv_1


@register_estimator
class RegressionEstimator(Estimator):
    """Paired regression estimator for the Shapley and Banzhaf schedules."""

    name = "regression"

    def start(self, n, schedule, rng, v_full, v_empty) -> None:
        super().start(n, schedule, rng, v_full, v_empty)
        if isinstance(schedule, Uniform):
            self.banzhaf = False
        elif isinstance(schedule, Fixed) and schedule.t == 0.5:
            self.banzhaf = True
        else:
            raise InputError("the regression estimator supports the shapley and banzhaf schedules; use "
                             "method='paired' or 'exact' for other schedules")
        sizes = np.arange(1, n)
        kernel = 1.0 / (sizes * (n - sizes)) if n > 1 else np.zeros(0)
        self.size_p = kernel / kernel.sum() if n > 1 else kernel
        self.pairs = 0
        self.group_A = np.zeros((_GROUPS, n, n))  # sums of z zᵀ per jackknife group
        self.group_b = np.zeros((_GROUPS, n))  # sums of z (v(z) - v_empty)
        self.group_n = np.zeros(_GROUPS)
        self.msr: list[np.ndarray] = []

    def min_budget(self, n: int) -> int:
        return 4 if n > 1 else 0

    def propose(self, max_evals: int) -> np.ndarray:
        k = max_evals // 2
        if k == 0 or self.n == 1:
            return np.zeros((0, self.n), dtype=np.int8)
        if self.banzhaf:
            z = (self.rng.random((k, self.n)) < 0.5).astype(np.int8)
        else:
            s = self.rng.choice(np.arange(1, self.n), size=k, p=self.size_p)  # [k] sizes
            rank = self.rng.random((k, self.n)).argsort(1).argsort(1)  # a random permutation per row
            z = (rank < s[:, None]).astype(np.int8)  # [k, n], exactly s kept
        return np.stack([z, 1 - z], axis=1).reshape(-1, self.n)  # pairs adjacent

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        z = masks.reshape(-1, 2, self.n).astype(float)  # [k, 2, n]
        v = values.reshape(-1, 2)  # [k, 2]
        if self.banzhaf:
            self.msr.extend((v[:, :1] - v[:, 1:]) * (2 * z[:, 0] - 1))
            return
        y = v - self.v_empty  # [k, 2]
        A = np.einsum("kpi,kpj->kij", z, z) / 2  # [k, n, n]
        b = np.einsum("kpi,kp->ki", z, y) / 2  # [k, n]
        groups = (self.pairs + np.arange(len(z))) % _GROUPS
        np.add.at(self.group_A, groups, A)
        np.add.at(self.group_b, groups, b)
        np.add.at(self.group_n, groups, 1)
        self.pairs += len(z)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        total = self.v_full - self.v_empty
        if self.n == 1:
            return np.array([total]), np.zeros(1)
        if self.banzhaf:
            s = np.asarray(self.msr)
            if len(s) < 2:
                return (s.mean(0) if len(s) else np.zeros(self.n)), np.full(self.n, np.inf)
            return s.mean(0), s.std(0, ddof=1) / np.sqrt(len(s))
        if self.pairs == 0:
            return np.full(self.n, total / self.n), np.full(self.n, np.inf)
        phi = constrained_solve(self.group_A.sum(0) / self.pairs, self.group_b.sum(0) / self.pairs, total)
        used = self.group_n > 0
        g = int(used.sum())
        if g < 2:
            return phi, np.full(self.n, np.inf)
        rest_n = (self.pairs - self.group_n[used])[:, None]  # [g, 1]
        A_loo = (self.group_A.sum(0) - self.group_A[used]) / rest_n[:, :, None]  # [g, n, n]
        b_loo = (self.group_b.sum(0) - self.group_b[used]) / rest_n  # [g, n]
        phi_loo = constrained_solve(A_loo, b_loo, total)  # [g, n]
        var = (g - 1) / g * ((phi_loo - phi_loo.mean(0)) ** 2).sum(0)
        return phi, np.sqrt(var)
