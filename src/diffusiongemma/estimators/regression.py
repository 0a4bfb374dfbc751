"""Diffusion-weighted regression: every evaluation informs all n units.

* Shapley schedule: KernelSHAP with the efficiency constraint ``Σ φ = v(all kept) − v(all removed)``
  enforced exactly (Lundberg & Lee 2017; Covert & Lee 2021). The Shapley kernel puts most weight on masks
  with few or many units kept, so those size strata are enumerated completely while the budget affords
  them (as the SHAP library does); the other sizes are sampled from the kernel as complement pairs, so the
  least-squares weights are uniform.
* Banzhaf schedule (t = 0.5): maximum-sample-reuse least squares: with masks m ~ Bernoulli(1/2) paired with
  1 - m, ``φ_i`` is the mean of ``(v(m) − v(1−m))·(2 m_i − 1)`` — unbiased, one evaluation pair for all units.

Standard errors: jackknife over groups of sampled pairs (KernelSHAP; enumerated strata have none), the
CLT (Banzhaf).

Examples:
    >>> import numpy as np
    >>> from diffusiongemma.estimators.regression import constrained_solve, plan_enumeration
    >>> constrained_solve(np.eye(2), np.array([1.0, 0.0]), 3.0)
    array([2., 1.])
    >>> plan_enumeration(10, 512)  # sizes 1, 9, 2, 8 enumerated (110 masks) with 512 to spend
    [1, 9, 2, 8]
"""

from __future__ import annotations

from math import comb

import numpy as np

from ..errors import InputError
from ..schedules import Fixed, Schedule, Uniform
from .base import Estimator, jackknife_stderr, masks_of_sizes, mean_and_stderr, register_estimator

__all__ = ["RegressionEstimator", "constrained_solve", "shapley_kernel", "plan_enumeration"]

_GROUPS = 32
_BLOCK = 32  # complement pairs drawn at a time


def constrained_solve(A: np.ndarray, b: np.ndarray, total: float) -> np.ndarray:
    """argmin φᵀAφ − 2bᵀφ subject to Σφ = total, for ``A [..., n, n]``, ``b [..., n]``.

    Examples:
        >>> constrained_solve(np.eye(2), np.array([1.0, 0.0]), total=3.0).tolist()  # (1, 0) moved onto φ₁ + φ₂ = 3
        [2.0, 1.0]
    """
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


def shapley_kernel(n: int) -> np.ndarray:
    """Probability of each mask size 1..n-1 under the Shapley kernel: ∝ (n-1) / (s (n-s)); ``[n-1]``.

    Examples:
        >>> shapley_kernel(4).round(3).tolist()  # sizes 1, 2, 3
        [0.364, 0.273, 0.364]
    """
    sizes = np.arange(1, n)
    k = 1.0 / (sizes * (n - sizes))
    return k / k.sum()


def plan_enumeration(n: int, budget: int) -> list[int]:
    """Sizes to enumerate completely: the pairs (s, n-s) from the outside in, while the kernel share of the
    remaining budget covers all their masks.

    Examples:
        >>> plan_enumeration(4, 14), plan_enumeration(10, 30)  # 14 pays for sizes 1, 3 (8 masks) and 2 (6)
        ([1, 3, 2], [])
    """
    p = shapley_kernel(n) if n > 1 else np.zeros(0)
    left, mass, sizes = float(budget), 1.0, []
    for s in range(1, n // 2 + 1):
        pair = [s] if s == n - s else [s, n - s]
        count = sum(comb(n, k) for k in pair)
        share = sum(p[k - 1] for k in pair)
        if mass <= 0 or left * share / mass < count:
            break
        sizes += pair
        left -= count
        mass -= share
    return sizes


@register_estimator
class RegressionEstimator(Estimator):
    """Paired regression estimator for the Shapley and Banzhaf schedules."""

    name = "regression"
    gives_interactions = True
    round_invariant = True

    def start(self, n, schedule, rng, v_full, v_empty, budget) -> None:
        super().start(n, schedule, rng, v_full, v_empty, budget)
        if isinstance(schedule, Uniform):
            self.banzhaf = False
        elif isinstance(schedule, Fixed) and schedule.t == 0.5:
            self.banzhaf = True
        else:
            raise InputError("the regression estimator supports the shapley and banzhaf schedules; use "
                             "method='paired' or 'exact' for other schedules")
        self.msr: list[np.ndarray] = []
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []  # every (masks, values), for interactions
        self.pairs = 0
        self.evaluated = 0  # masks evaluated so far (enumerated and sampled)
        self.p = self.width(n, budget)  # regression features: the n units (+ interaction terms in kadd.py)
        self.group_A = np.zeros((_GROUPS, self.p, self.p))  # sums of f(z) f(z)ᵀ per jackknife group (sampled pairs)
        self.group_b = np.zeros((_GROUPS, self.p))  # sums of f(z) (v(z) - v_empty)
        self.group_n = np.zeros(_GROUPS)
        self._pool = np.zeros((0, n), dtype=np.int8)  # drawn masks not yet proposed
        self.todo = np.zeros((0, n), dtype=np.int8)
        if self.banzhaf or n < 2:
            return
        kernel = shapley_kernel(n)
        self.enum_sizes = self.plan(n, budget)
        self.todo = masks_of_sizes(n, self.enum_sizes)
        self.enum_A = np.zeros((self.p, self.p))  # Σ over enumerated sizes of p(s) · mean f(z) f(z)ᵀ
        self.enum_b = np.zeros(self.p)
        self.enum_weight = np.array([kernel[s - 1] / comb(n, s) if s in self.enum_sizes else 0.0
                                     for s in range(n + 1)])  # weight of one mask of each size
        rest = np.array([0.0 if s in self.enum_sizes else kernel[s - 1] for s in range(1, n)])
        self.rest_mass = rest.sum()
        self.rest_p = rest / self.rest_mass if self.rest_mass > 0 else rest

    def plan(self, n: int, budget: int) -> list[int]:
        """Mask sizes to enumerate completely (see :func:`plan_enumeration`)."""
        return plan_enumeration(n, budget)

    def width(self, n: int, budget: int) -> int:
        """Number of regression features ``p`` (here the n units themselves)."""
        return n

    def features(self, z: np.ndarray) -> np.ndarray:
        """Regression features ``[k, p]`` of masks ``[k, n]`` (here the masks themselves)."""
        return z

    def scores(self, coef: np.ndarray) -> np.ndarray:
        """Shapley values ``[..., n]`` of the fitted surrogate with coefficients ``[..., p]``."""
        return coef

    def penalty(self, A: np.ndarray) -> np.ndarray:
        """Ridge penalty ``[p]`` added to the diagonal of the sampled fit's normal matrix ``A [p, p]`` (here
        none; an exact, fully enumerated fit is never penalised)."""
        return np.zeros(len(A))

    def min_budget(self, n: int, schedule: Schedule) -> int:
        return 4 if n > 1 else 0

    def propose(self, max_evals: int) -> np.ndarray:
        if self.n == 1:
            return np.zeros((0, self.n), dtype=np.int8)
        if self.banzhaf:
            return self._pairs(max_evals // 2)
        chunk, self.todo = self.todo[:max_evals], self.todo[max_evals:]  # enumerated strata first
        k = (max_evals - len(chunk)) // 2
        if k == 0 or self.rest_mass <= 0:
            return chunk
        return np.concatenate([chunk, self._pairs(k)])  # [len(chunk) + 2k, n]

    def _pairs(self, k: int) -> np.ndarray:
        """``k`` complement pairs ``[2k, n]`` (adjacent), drawn in fixed blocks so that the sequence of masks
        never depends on how the engine cuts its rounds (the same seed gives the same masks on any device)."""
        while len(self._pool) < k:
            if self.banzhaf:
                z = (self.rng.random((_BLOCK, self.n)) < 0.5).astype(np.int8)
            else:
                s = self.rng.choice(np.arange(1, self.n), size=_BLOCK, p=self.rest_p)  # [block] sizes
                rank = self.rng.random((_BLOCK, self.n)).argsort(1).argsort(1)  # a random permutation per row
                z = (rank < s[:, None]).astype(np.int8)  # [block, n], exactly s kept
            self._pool = np.concatenate([self._pool, z])
        z, self._pool = self._pool[:k], self._pool[k:]
        return np.stack([z, 1 - z], axis=1).reshape(-1, self.n)  # pairs adjacent

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        self.seen.append((masks, values))
        self.evaluated += len(masks)
        if self.banzhaf:
            z = masks.reshape(-1, 2, self.n).astype(float)
            v = values.reshape(-1, 2)
            self.msr.extend((v[:, :1] - v[:, 1:]) * (2 * z[:, 0] - 1))
            return
        sizes = masks.sum(1)
        enumerated = self.enum_weight[sizes] > 0  # the enumerated rows come first, then sampled pairs
        if enumerated.any():
            f, y = self.features(masks[enumerated].astype(float)), values[enumerated] - self.v_empty  # [b, p], [b]
            w = self.enum_weight[sizes[enumerated]]  # [b]
            self.enum_A += f.T @ (w[:, None] * f)
            self.enum_b += f.T @ (w * y)
            masks, values = masks[~enumerated], values[~enumerated]
            if not len(masks):
                return
        f = self.features(masks.astype(float))  # [2k, p], complement pairs adjacent
        y = values - self.v_empty  # [2k]
        k = len(f) // 2
        groups = (self.pairs + np.arange(k)) % _GROUPS  # [k], one group per pair
        rows = np.repeat(groups, 2)  # [2k]
        for g in np.unique(groups):
            fg, yg = f[rows == g], y[rows == g]
            self.group_A[g] += fg.T @ fg / 2
            self.group_b[g] += fg.T @ yg / 2
        np.add.at(self.group_n, groups, 1)
        self.pairs += k

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        total = self.v_full - self.v_empty
        if self.n == 1:
            return np.array([total]), np.zeros(1)
        if self.banzhaf:
            return mean_and_stderr(self.msr, self.n)
        if len(self.todo) or (self.rest_mass > 0 and self.pairs == 0):
            return np.full(self.n, total / self.n), np.full(self.n, np.inf)
        if self.rest_mass <= 0:  # every size enumerated: exact
            return self.scores(constrained_solve(self.enum_A, self.enum_b, total)), np.zeros(self.n)
        A = self.enum_A + self.rest_mass * self.group_A.sum(0) / self.pairs
        b = self.enum_b + self.rest_mass * self.group_b.sum(0) / self.pairs
        ridge = np.diag(self.penalty(A))  # [p, p], the same for every leave-one-out fit
        phi = self.scores(constrained_solve(A + ridge, b, total))
        used = self.group_n > 0
        g = int(used.sum())
        if g < 2:
            return phi, np.full(self.n, np.inf)
        rest_n = (self.pairs - self.group_n[used])[:, None]  # [g, 1]
        A_loo = self.enum_A + ridge + self.rest_mass * (self.group_A.sum(0) - self.group_A[used]) / rest_n[:, :, None]
        b_loo = self.enum_b + self.rest_mass * (self.group_b.sum(0) - self.group_b[used]) / rest_n
        return phi, jackknife_stderr(self.scores(constrained_solve(A_loo, b_loo, total)))  # leave-one-out [g, n]

    def interactions(self, top: int) -> list[tuple[int, int, float]]:
        """Faith-Shap pair interactions among the ``top`` units of largest |score|, from the samples already
        evaluated (see :mod:`~diffusiongemma.estimators.interactions`); Shapley schedule only."""
        from .interactions import pair_interactions

        if self.banzhaf:
            raise InputError("interactions come with the shapley schedule (method='shapley')")
        if not self.seen or self.n < 2:
            return []
        masks = np.concatenate([m for m, _ in self.seen])
        values = np.concatenate([v for _, v in self.seen])
        sizes = masks.sum(1)
        enumerated = self.enum_weight[sizes] > 0
        weights = np.where(enumerated, self.enum_weight[sizes],
                           self.rest_mass / max(int((~enumerated).sum()), 1))  # each sampled mask alike
        scores = self.estimate()[0]
        candidates = list(np.argsort(-np.abs(scores), kind="stable")[: max(top, 0)])
        return pair_interactions(masks, values, weights, self.v_empty, self.v_full - self.v_empty, candidates)
