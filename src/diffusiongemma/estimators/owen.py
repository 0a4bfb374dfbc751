"""Noise-level regression: the Shapley value as the integral of the slope along the masking schedule.

Made for long inputs, where the budget is below the number of units. Owen (1972): ``φ_i = ∫_0^1 ∂_i g(t) dt``, g
the multilinear extension, ``∂_i g(t) = E_{z ~ Bernoulli(t)} [v(z with i) − v(z without i)]``. At one noise level t
the units of a mask are independent Bernoulli(t), so the least-squares slope of v(z) on z is exactly ``∂_i g(t)``
for every unit at once: one evaluation informs all n units (Banzhaf's maximum-sample-reuse at t = ½, here at every
level). The masks are drawn at K levels ``t_k`` (Gauss–Legendre nodes of [0, 1]; each mask at t paired with its
complement at 1 − t; within a level each unit's draws are stratified, Latin hypercube, so that no unit is left out
of every mask of a level however few they are), and one slope vector β shared by all levels is fitted with an
intercept per level, each mask
weighted so that level k counts with its quadrature weight ``w_k``: ``β → Σ_k w_k ∂g(t_k) ≈ φ``. K grows with the
budget (``LEVELS``), so the estimate tends to the Shapley values; ``schedule="banzhaf"`` is the single level ½. With
fewer masks than units the fit is ruled by its variance, not by the quadrature's bias: K is 1 (the midpoint rule,
t = ½, where one mask tells the most about every slope) and the masks are not paired with their complements (a
complement adds no new direction to the slopes). On B7's 12 role-play jailbreaks of 84–202 words (the refusal score,
200 held-out masks each) LDS rose from 0.21 to 0.32 at 32 evaluations and from 0.42 to 0.44 at 64 (ContextCite's Lasso
on the same games: 0.31 and 0.38).

Fewer masks than units leave β underdetermined, so a prior fills the gap: ``β_i ~ N(0, σ² ρ θ_i)``, a scale ρ and a
relevance θ_i per unit under a log-normal hyperprior (``SHRINK``; automatic relevance determination: a few units
carry a decision, the others shrink to zero), and noise ``σ² / ω_j`` for the part of the game no line explains. ρ and
θ maximise the restricted marginal likelihood (the level intercepts integrated out, σ² profiled; a unit's prior
variance bounded at ``MAX_LOG_RHO``), on the first ``FIT_ROWS`` masks; σ² is then estimated from the masks and the
efficiency observation together, so a total the masks leave unexplained widens the error bars. Efficiency ``Σ φ = v(all) − v(∅)`` is imposed exactly by conditioning the posterior on it.
Score: the posterior mean; standard error: the posterior sd. Scores stay within the game's range whatever n and
the budget: where the masks say nothing about a unit, its score is near zero and its standard error is its prior's.

Bias and error: the prior's shrinkage (fading as masks accumulate) and the quadrature's (falling fast with K); the
standard error covers the first as far as the fitted prior fits the game, not the second. Cost: the fit works on
the masks' m × m kernel (m ≤ n) or the units' n × n precision (m > n), so 4,000 units at 256 masks cost little.

Examples:
    >>> import numpy as np
    >>> from diffusiongemma import run
    >>> w = np.zeros(200); w[[3, 50, 120]] = [2.0, -1.5, 1.0]
    >>> class Sparse:  # 200 units, three of them matter, and a pair interaction
    ...     n = 200
    ...     def __call__(self, z): z = np.asarray(z, float); return z @ w + 1.0 * z[:, 7] * z[:, 8]
    >>> r = run(Sparse(), "owen", budget=128, seed=0)
    >>> sorted(np.argsort(-np.abs(r.scores))[:5].tolist())
    [3, 7, 8, 50, 120]
    >>> bool(abs(r.scores.sum() - (w.sum() + 1.0)) < 1e-6)
    True
"""

from __future__ import annotations

from math import lgamma

import numpy as np
import torch

from ..errors import InputError
from ..schedules import Fixed, Schedule, Uniform
from .base import Estimator, register_estimator
from .fitting import minimize

__all__ = ["NoiseLevelEstimator", "noise_levels", "underdetermined", "kernel_weights", "LEVELS", "SHRINK", "FIT_ROWS"]

LEVELS = ((64, 2), (256, 4), (1024, 8), (4096, 16))  # (budget below, levels K); 32 levels above
SHRINK = 0.2  # log-normal hyperprior on the relevances: sd 2.2 in log (few strong units); on two real role-play
# jailbreaks (72 and 203 words, refusal score) LDS at 32/64/128 evaluations 0.79/0.87/0.92 and 0.72/0.74/0.79, against
# 0.79/0.87/0.92 and 0.63/0.73/0.75 with 0.5 (tuned on those two prompts: B7 draws others)
FIT_ROWS = 384  # the prior is fitted on the first masks (cost ∝ rows² · n per likelihood evaluation)
MAX_ITER = 30
MAX_LOG_RHO = float(np.log(1e4))  # a unit's prior variance at most 10^4 times the noise's (see _bounded)
_BLOCK = 32  # rows of uniforms drawn at a time: the masks never depend on how the engine cuts its rounds


def underdetermined(schedule: Schedule, budget: int, n: int) -> bool:
    """Whether the masks will be fewer than the units under the Shapley schedule: then one level (½) and no
    complement pairs, the fit's variance ruling its error, not the quadrature's bias.

    Examples:
        >>> underdetermined(Uniform(), 62, 140), underdetermined(Uniform(), 254, 140)
        (True, False)
    """
    return isinstance(schedule, Uniform) and budget < n


def noise_levels(schedule: Schedule, budget: int, n: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise levels ``t [K]`` and quadrature weights ``w [K]`` (summing to 1) for a schedule, a budget and the
    number of units ``n``: the single level ½ while the budget is below ``n``, else K from ``LEVELS``.

    Examples:
        >>> t, w = noise_levels(Uniform(), 128)
        >>> np.round(t, 3).tolist(), np.round(w, 3).tolist()
        ([0.069, 0.33, 0.67, 0.931], [0.174, 0.326, 0.326, 0.174])
        >>> noise_levels(Uniform(), 62, n=140)  # fewer masks than units: the midpoint rule
        (array([0.5]), array([1.]))
    """
    if isinstance(schedule, Fixed) and schedule.t == 0.5:
        return np.array([0.5]), np.array([1.0])
    if not isinstance(schedule, Uniform):
        raise InputError("the noise-level estimator supports the shapley and banzhaf schedules")
    if underdetermined(schedule, budget, n):
        return np.array([0.5]), np.array([1.0])
    k = next((levels for below, levels in LEVELS if budget < below), 32)
    x, w = np.polynomial.legendre.leggauss(k)
    return (x + 1) / 2, w / 2


def kernel_weights(sizes: np.ndarray, n: int, levels: np.ndarray) -> np.ndarray:
    """Importance weights ``[m]`` that turn masks drawn at noise levels into Shapley-kernel samples: the kernel's
    probability of a mask of each size (``(n−1) / (C(n, s) s (n−s))``, none for the empty and the full mask) over
    the probability of drawing it, a mixture of Bernoulli(t) over the levels ``levels [m]`` the masks were drawn at.
    Scaled to mean 1.

    Examples:
        >>> w = kernel_weights(np.array([1, 2, 3]), 4, np.array([0.5, 0.5, 0.5]))
        >>> np.round(w / w[1], 3).tolist()  # at t = ½ every mask is equally likely: the kernel's own ratio
        [2.0, 1.0, 2.0]
    """
    s = np.asarray(sizes, dtype=float)
    inside = (s > 0) & (s < n)
    safe = np.clip(s, 1, n - 1)
    log_comb = np.array([lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) for k in range(n + 1)])  # [n + 1]
    log_kernel = np.log(n - 1) - log_comb[safe.astype(int)] - np.log(safe * (n - safe))  # [m]
    t = np.unique(levels)  # [L]
    share = np.array([np.mean(levels == x) for x in t])  # [L]
    log_draw = np.log(share)[None, :] + s[:, None] * np.log(t)[None, :] + (n - s[:, None]) * np.log1p(-t)[None, :]
    log_w = np.where(inside, log_kernel - np.logaddexp.reduce(log_draw, axis=1), -np.inf)
    w = np.exp(log_w - log_w[inside].max()) if inside.any() else np.zeros(len(s))
    return w / w.mean() if w.sum() > 0 else w


def _interleave(counts: np.ndarray) -> np.ndarray:
    """A sequence in which item k appears ``counts[k]`` times, spread evenly (stride scheduling).

    Examples:
        >>> _interleave(np.array([1, 3])).tolist()
        [1, 0, 1, 1]
    """
    keys = [((j + 0.5) / c, k) for k, c in enumerate(counts) for j in range(int(c))]
    return np.array([k for _, k in sorted(keys)], dtype=int)


def _restricted(X: np.ndarray, y: np.ndarray, level: np.ndarray,
                omega: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data with the level intercepts integrated out (flat prior): ``Qᵀ X [r, n]``, ``Qᵀ y [r]`` and the noise
    ``Qᵀ W⁻¹ Q [r, r]`` (per σ²), Q an orthonormal basis of what the level indicators do not span."""
    used = np.unique(level)
    D = (level[:, None] == used[None, :]).astype(float)  # [m, L]
    Q = np.linalg.qr(D, mode="complete")[0][:, len(used):]  # [m, r], r = m − L
    return Q.T @ X, Q.T @ y, Q.T @ (Q / omega[:, None])


@register_estimator
class NoiseLevelEstimator(Estimator):
    """Posterior mean of ``Σ_k w_k ∂g(t_k)`` under a relevance prior, from masks at K noise levels."""

    name = "owen"
    gives_interactions = True
    round_invariant = True

    def __init__(self, prior: np.ndarray | None = None) -> None:
        self.prior = prior  # log-parameters (log ρ, log θ); None: fitted to each game's values

    def sibling(self) -> "NoiseLevelEstimator":
        """One with this one's fitted prior: then the posterior mean is linear in the values (trace's rows add up)."""
        return NoiseLevelEstimator(prior=self.params)

    def min_budget(self, n: int, schedule: Schedule) -> int:
        return 4 if n > 1 else 0

    def start(self, n, schedule, rng, v_full, v_empty, budget) -> None:
        super().start(n, schedule, rng, v_full, v_empty, budget)
        self.t, self.w = noise_levels(schedule, budget, n)
        K = len(self.t)
        # fewer masks than units: independent masks, each a new direction (a complement adds none to the slopes)
        self.paired = not underdetermined(schedule, budget, n)
        first = np.arange((K + 1) // 2)  # a pair: a mask at level k (t ≤ ½), its complement at K − 1 − k
        share = self.w[first] / np.sqrt(self.t[first] * (1 - self.t[first]))
        pairs = max(budget // 2 if self.paired else budget, 1)
        raw = pairs * share / share.sum()
        counts = np.floor(raw).astype(int)
        counts[np.argsort(counts - raw)[: pairs - counts.sum()]] += 1  # largest remainders
        self.sequence = _interleave(np.maximum(counts, 1 if pairs >= len(counts) else 0))
        self.cursor = 0
        self._per_level = np.bincount(self.sequence, minlength=K)  # masks drawn at each level (the first of each pair when paired)
        self._pool: list[np.ndarray] = [np.zeros((0, n)) for _ in range(K)]
        self._pending: list[int] = []
        self.masks: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.levels: list[int] = []
        self.params: np.ndarray | None = self.prior
        self._cache: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def propose(self, max_evals: int) -> np.ndarray:
        k = max_evals // 2 if self.paired else max_evals
        if self.n == 1 or k == 0:
            return np.zeros((0, self.n), dtype=np.int8)
        lv = self.sequence[(self.cursor + np.arange(k)) % len(self.sequence)]  # [k] levels of the first masks
        self.cursor += k
        u = np.stack([self._uniform(int(level)) for level in lv])  # [k, n]
        z = (u < self.t[lv][:, None]).astype(np.int8)  # [k, n], each unit kept with probability t
        if not self.paired:
            self._pending = lv.tolist()
            return z
        self._pending = np.stack([lv, len(self.t) - 1 - lv], axis=1).reshape(-1).tolist()
        return np.stack([z, 1 - z], axis=1).reshape(-1, self.n)  # complement pairs adjacent

    def _uniform(self, level: int) -> np.ndarray:
        """The next row ``[n]`` of uniforms for a mask at ``level``. Rows come in blocks of B (the level's count, at
        most ``_BLOCK``) stratified per unit (Latin hypercube: in a block, unit i's uniforms fall one in each of the B
        strata of [0, 1], in random order, independently of the other units), so every mask is still Bernoulli(t) unit
        by unit and the units independent, but over a block each unit is kept in ⌊Bt⌋ or ⌈Bt⌉ masks: none is left
        out of every mask of a level (it could not be told from the level's intercept), however few the masks."""
        if len(self._pool[level]) == 0:
            b = int(min(max(self._per_level[level], 1), _BLOCK))
            strata = np.argsort(self.rng.random((b, self.n)), axis=0)  # [b, n], a permutation per unit
            self._pool[level] = (strata + self.rng.random((b, self.n))) / b
        row, self._pool[level] = self._pool[level][0], self._pool[level][1:]
        return row

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        self.masks.append(np.asarray(masks, dtype=np.int8))
        self.values.append(np.asarray(values, dtype=float))
        self.levels += self._pending[: len(masks)]

    def _data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centred masks ``z − t [m, n]``, values ``[m]``, levels ``[m]`` and weights ``ω [m]`` (mean 1)."""
        z = np.concatenate(self.masks).astype(float)
        level = np.asarray(self.levels)
        count = np.bincount(level, minlength=len(self.t))
        t = self.t[level]
        omega = self.w[level] / (count[level] * t * (1 - t))  # level k weighs w_k in the pooled slope
        return z - t[:, None], np.concatenate(self.values), level, omega / omega.mean()

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        total = self.v_full - self.v_empty
        if self.n == 1:
            return np.array([total]), np.zeros(1)
        m = sum(len(v) for v in self.values)
        if m < 2 or m - len(set(self.levels)) < 1:
            return np.full(self.n, total / self.n), np.full(self.n, np.inf)
        if self._cache is None or self._cache[0] != m:
            self._cache = (m, self._posterior(*self._data(), total))
        return self._cache[1]

    def interactions(self, top: int) -> list[tuple[int, int, float]]:
        """Faith-Shap pair interactions among the ``top`` units of largest |score|, from the masks already evaluated.

        The masks were drawn at noise levels, not from the Shapley kernel, so each is weighted by the kernel's
        probability of it over the probability of drawing it (:func:`kernel_weights`); then the fit is the
        regression estimator's (:func:`~diffusiongemma.estimators.interactions.pair_interactions`).
        """
        from .interactions import pair_interactions

        if not isinstance(self.schedule, Uniform):
            raise InputError("interactions come with the shapley schedule (method='shapley')")
        if not self.masks or self.n < 2:
            return []
        masks = np.concatenate(self.masks)
        values = np.concatenate(self.values)
        weights = kernel_weights(masks.sum(1), self.n, self.t[np.asarray(self.levels)])
        scores = self.estimate()[0]
        candidates = list(np.argsort(-np.abs(scores), kind="stable")[: max(top, 0)])
        return pair_interactions(masks, values, weights, self.v_empty, self.v_full - self.v_empty, candidates)

    def _fit(self, X: np.ndarray, y: np.ndarray, level: np.ndarray, omega: np.ndarray) -> np.ndarray:
        """Log-parameters ``[1 + n]`` (log ρ, then log θ centred) maximising the restricted likelihood."""
        start = np.concatenate([[np.log(4.0 / self.n)], np.zeros(self.n)])
        Xr, yr, N = (torch.as_tensor(a) for a in _restricted(X, y, level, omega))
        if len(yr) < 2 or float(yr @ yr) <= 1e-24:
            return start

        def nll(p: torch.Tensor) -> torch.Tensor:
            u = p[1:] - p[1:].mean()
            K = (Xr * torch.exp(_bounded(p[0] + u))) @ Xr.T + N  # [r, r]
            L = torch.linalg.cholesky(K)
            a = torch.linalg.solve_triangular(L, yr[:, None], upper=False)[:, 0]
            return (0.5 * len(a) * torch.log(a @ a / len(a)) + torch.log(torch.diagonal(L)).sum()
                    + 0.5 * SHRINK * (u ** 2).sum())

        p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        return minimize(nll, p, MAX_ITER).numpy()

    def _posterior(self, X: np.ndarray, y: np.ndarray, level: np.ndarray, omega: np.ndarray,
                   total: float) -> tuple[np.ndarray, np.ndarray]:
        if self.params is None:
            rows = slice(0, FIT_ROWS)
            self.params = self._fit(X[rows], y[rows], level[rows], omega[rows])
        u = self.params[1:] - self.params[1:].mean()
        prior = np.exp(_bounded(torch.as_tensor(self.params[0] + u)).numpy())  # [n] prior variances per σ²
        if len(y) - len(np.unique(level)) <= self.n:
            return _dual(*_restricted(X, y, level, omega), prior, total)
        return _primal(X, y, level, omega, prior, total)


def _bounded(log_rho: torch.Tensor) -> torch.Tensor:
    """A unit's prior log-variance log ρθ_i kept below ``MAX_LOG_RHO`` smoothly: on values no line leaves a residual to (an exactly additive game),
    the likelihood grows without bound with ρ, and an unbounded step makes the kernel numerically singular, the fit
    then falling back to its starting point (the strongest shrinkage) exactly where the data are the most precise.

    Examples:
        >>> round(float(_bounded(torch.tensor(-5.0))), 3), round(float(_bounded(torch.tensor(100.0))), 3)
        (-5.0, 9.21)
    """
    return MAX_LOG_RHO - torch.nn.functional.softplus(MAX_LOG_RHO - log_rho)


def _dual(Xr: np.ndarray, yr: np.ndarray, N: np.ndarray, prior: np.ndarray,
          total: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and sd ``[n]`` in the masks' space (r ≤ n): the efficiency constraint is one more row, exact."""
    A = np.vstack([Xr, np.ones(len(prior))])  # [r + 1, n]
    M = (A * prior) @ A.T  # [r + 1, r + 1]
    M[:-1, :-1] += N
    rhs = np.concatenate([yr, [total]])
    C = np.linalg.cholesky(M)
    a = np.linalg.solve(C, rhs)
    sigma2 = max(float(a @ a) / len(rhs), 0.0)  # profiled noise scale (REML), the efficiency observation too
    alpha = np.linalg.solve(C.T, np.linalg.solve(C, rhs))
    B = np.linalg.solve(C, A)  # [r + 1, n]
    mean = prior * (A.T @ alpha)
    var = sigma2 * np.maximum(prior - prior ** 2 * (B ** 2).sum(0), 0.0)
    return mean, np.sqrt(var)


def _primal(X: np.ndarray, y: np.ndarray, level: np.ndarray, omega: np.ndarray, prior: np.ndarray,
            total: float) -> tuple[np.ndarray, np.ndarray]:
    """The same posterior in the units' space (more masks than units): the intercepts integrated out by centring
    within each level (the weights are equal within a level), then conditioned on the efficiency constraint."""
    used, inverse = np.unique(level, return_inverse=True)
    count = np.bincount(inverse)
    Xc = X - (np.add.reduceat(X[np.argsort(inverse, kind="stable")], np.r_[0, np.cumsum(count)[:-1]])
              / count[:, None])[inverse]  # [m, n]
    yc = y - (np.bincount(inverse, weights=y) / count)[inverse]  # [m]
    A = Xc.T @ (omega[:, None] * Xc) + np.diag(1.0 / prior)  # posterior precision per σ² [n, n]
    b = Xc.T @ (omega * yc)
    S = np.linalg.inv(A)
    mu = S @ b
    s1 = S.sum(1)  # S 1
    # profiled noise scale (REML) over the masks and the efficiency observation (its residual given the masks)
    sigma2 = max(float(yc @ (omega * yc) - b @ mu + (total - mu.sum()) ** 2 / s1.sum()), 0.0) / (
        len(y) - len(used) + 1)
    mean = mu + s1 * (total - mu.sum()) / s1.sum()
    var = sigma2 * np.maximum(np.diag(S) - s1 ** 2 / s1.sum(), 0.0)
    return mean, np.sqrt(var)
