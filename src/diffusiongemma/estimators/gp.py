"""Bayesian Shapley: a Gaussian-process prior over the whole game, conditioned on the evaluated masks.

Any game on n units is a sum of parities, ``v(z) = Σ_T f_T χ_T(z)`` with ``χ_T(z) = Π_{i∈T} (2 z_i − 1)``, and
its Shapley values are linear in those coefficients: a parity of odd order |T| gives ``2 / |T|`` to each of its
units, one of even order gives nothing. Put an independent Gaussian prior on the coefficients,
``var f_T = σ² w_|T| Π_{i∈T} θ_i``: a weight per order (how much pair, triple … interaction there is) times a
relevance per unit (interactions among relevant units are the likely ones, as in the heredity principle of
experimental design). The game is then a Gaussian process on the hypercube with covariance
``K(z, z') = σ² Σ_k w_k e_k(θ_1 s_1 s'_1, …, θ_n s_n s'_n)`` (``s = 2z − 1``, ``e_k`` the elementary symmetric
polynomials), and the Shapley values are jointly Gaussian with it:
``cov(φ_i, v(z)) = σ² s_i θ_i Σ_{k odd} (2/k) w_k e_{k−1}(θ_j s_j, j ≠ i)``. Conditioned on the evaluated masks
(noise-free: the game is deterministic), the posterior mean of the Shapley values is this estimator's score and
the posterior standard deviation its standard error.

The prior is fitted to the evaluated values by maximising the marginal likelihood (type-II maximum likelihood,
L-BFGS through torch's autograd, on the first FIT_ROWS masks): orders 0..FREE_ORDERS get their own weight
(order 1 is the unit of scale, σ² is profiled out), higher orders decay geometrically from the last free one,
and each unit gets its relevance θ_i, under a log-normal hyperprior (``SHRINK``) that keeps few masks from
fitting extreme relevances. On B1's cached tables (23 prompts, 2 seeds) it cut the error at 128 masks by 8 % and
lifted the coverage of ±1.96 standard errors there from 0.84 to 0.92; 1 and 10 were within 2 % of 3. So the
data say how much interaction of each order the game has and among which units, instead of a fixed cut at
order 3 (``kadd``).

The masks are the regression estimator's (the same kernel-weighted complement pairs, the same enumerated
strata, the same seeds); only the fit differs. The posterior mean interpolates every evaluated mask, including
the full and the empty one, so ``Σ φ = v(all) − v(∅)`` holds (to the jitter).

Bias and error: a Bayesian estimate, not an unbiased one; its error is what the fitted prior cannot infer from
the masks seen. The standard error is the posterior's, calibrated only as far as the fitted prior fits the game
(tested on the real model; B1 reports coverage). Cost: one Cholesky of FIT_ROWS² per likelihood evaluation
(≤ MAX_ITER of them) and one of m², a few seconds on 2 cores for 12 units at 512 masks. It is used for
``3 ≤ n ≤ MAX_UNITS`` units (Shapley schedule), when the sizes are sampled (not all enumerated) and at least 3
masks per prior parameter (n + 6 of them) and at most ``MAX_ROWS`` masks were evaluated. (Fitted to 32 masks of
13 words, the prior misplaced a refusal keyword's share: 1.4 against 4.4 from kadd and from either at 64.) Otherwise it is exactly the ``kadd`` estimator (same masks, same numbers).

Examples:
    >>> import numpy as np
    >>> from diffusiongemma import run
    >>> from diffusiongemma.estimators.exact import ValueTable
    >>> z = (np.arange(256)[:, None] >> np.arange(8)) & 1  # every mask of 8 units, by its bits
    >>> game = ValueTable(8, 3.0 * z[:, 0] * z[:, 1] * z[:, 2] + z[:, 3] - z[:, 4] * z[:, 5])
    >>> exact = run(ValueTable(8, game.values), "exact").scores  # [1, 1, 1, 1, -0.5, -0.5, 0, 0]
    >>> r = run(game, "gp", budget=80, seed=0)  # 80 of the 256 masks
    >>> bool(np.abs(r.scores - exact).max() < 0.05), bool(abs(r.scores.sum() - 3.0) < 1e-6)
    (True, True)
"""

from __future__ import annotations

from math import comb

import numpy as np
import torch

from .base import register_estimator
from .fitting import minimize
from .kadd import MAX_UNITS, ThirdOrderEstimator

__all__ = ["GaussianProcessEstimator", "order_weights", "elementary", "MAX_ROWS", "FREE_ORDERS"]

MAX_ROWS = 2048  # evaluated masks; beyond that the m × m solves cost more than they gain (kadd is used)
FREE_ORDERS = 5  # orders 0..5 get their own prior weight; higher orders decay geometrically from order 5
FIT_ROWS = 512  # the prior is fitted on the first 512 masks evaluated (cost ∝ rows² · n²), used on all
MAX_ITER = 30  # L-BFGS iterations for the prior
ENUMERATE = 1.8  # on B1's cached tables (3 seeds) at 256 masks: error 0.049 -> 0.044 (10 words: sizes 2 and n-2
# enumerated, 0.043 -> 0.034; 12 words unchanged, 1.5 made them worse); at 128 and 512 the plan is the kernel's
SHRINK = 3.0  # log-normal hyperprior on the relevances (sd 0.58 in log); chosen on B1's tables (module docstring)
JITTER = 1e-9  # relative to the mean prior variance: the game is deterministic, this is only for Cholesky


def order_weights(params: torch.Tensor, n: int) -> torch.Tensor:
    """Prior variance ``[n + 1]`` of one parity coefficient of each order, from the log-parameters
    ``[FREE_ORDERS + 1]``: log w_0, log w_2 … log w_F, log of the geometric decay beyond F (w_1 = 1).

    Examples:
        >>> order_weights(torch.zeros(6, dtype=torch.float64), 7).tolist()  # all free weights 1, decay 1
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    free = min(FREE_ORDERS, n)
    head = torch.cat([params[:1].exp(), params.new_ones(1), params[1:free].exp()])  # w_0 … w_free
    steps = torch.arange(1, n - free + 1, dtype=params.dtype)
    tail = head[-1] * torch.exp(params[-1] * steps)  # [n − free]
    return torch.cat([head, tail])[: n + 1]


def elementary(x: torch.Tensor, top: int, dim: int = -1) -> torch.Tensor:
    """Elementary symmetric polynomials ``[..., top + 1]`` of order 0..top of the values along ``dim`` of ``x``
    (that axis removed, the orders last).

    Examples:
        >>> elementary(torch.tensor([1.0, 2.0, 3.0]), 3).tolist()  # 1, 1+2+3, 1·2+1·3+2·3, 1·2·3
        [1.0, 6.0, 11.0, 6.0]
    """
    units = x.unbind(dim)  # one view per unit (unbind's backward is one stack, not n full-size scatters)
    e = [torch.ones_like(units[0])] + [torch.zeros_like(units[0]) for _ in range(top)]
    for xi in units:
        for k in range(min(top, len(units)), 0, -1):
            e[k] = e[k] + xi * e[k - 1]
    return torch.stack(e, dim=-1)


@register_estimator
class GaussianProcessEstimator(ThirdOrderEstimator):
    """Posterior mean (and standard deviation) of the Shapley values under a fitted parity prior."""

    name = "gp"

    def __init__(self, prior: torch.Tensor | None = None) -> None:
        self.prior = prior  # log-parameters of the prior; None: fitted to each game's values

    def sibling(self) -> "GaussianProcessEstimator":
        """An estimator with this one's fitted prior: with the prior fixed the posterior mean is linear in the
        values, so per-token maps (trace) add up to the whole output's map."""
        return GaussianProcessEstimator(prior=self.params)

    def start(self, n, schedule, rng, v_full, v_empty, budget) -> None:
        super().start(n, schedule, rng, v_full, v_empty, budget)
        self._cache: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None
        self.fitted: dict[str, np.ndarray] = {}  # the prior after the last fit: order weights, unit relevances
        self.params: torch.Tensor | None = self.prior  # its log-parameters

    def plan(self, n: int, budget: int) -> list[int]:
        """The regression plan, then more strata (s, n − s) from the outside in while all the enumerated masks
        together stay within 1/ENUMERATE of the budget: the posterior learns more from every pair of units
        seen alone and together than the kernel's share of them suggests."""
        sizes = super().plan(n, budget)
        if not 3 <= n <= MAX_UNITS:
            return sizes
        for s in range(1, n // 2 + 1):
            pair = [s] if s == n - s else [s, n - s]
            if set(pair) <= set(sizes):
                continue
            if ENUMERATE * sum(comb(n, k) for k in sizes + pair) > budget:
                break
            sizes = sizes + pair
        return sizes

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        masks, values = self._data()
        parameters = self.n + min(FREE_ORDERS, self.n) + 1  # of the prior
        usable = (not self.banzhaf and 3 <= self.n <= MAX_UNITS and not len(self.todo) and self.pairs > 0
                  and self.rest_mass > 0 and 3 * parameters <= len(masks) <= MAX_ROWS)
        if not usable:
            return super().estimate()
        if self._cache is None or self._cache[0] != self.evaluated:
            self._cache = (self.evaluated, self._posterior(masks, values))
        return self._cache[1]

    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct evaluated masks ``[m, n]`` in the order first evaluated (the full and the empty one
        first) and their values ``[m]``."""
        ends = np.stack([np.ones(self.n, dtype=np.int8), np.zeros(self.n, dtype=np.int8)])
        masks = np.concatenate([ends, *[m.astype(np.int8) for m, _ in self.seen]])
        values = np.concatenate([[self.v_full, self.v_empty], *[v for _, v in self.seen]])
        _, first = np.unique(masks, axis=0, return_index=True)
        first = np.sort(first)
        return masks[first], values[first].astype(float)

    def kernel(self, params: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Prior covariance ``[m_a, m_b]`` (per unit σ²) of the game at ±1 masks ``a [m_a, n]``, ``b [m_b, n]``."""
        w, theta = self._prior(params)
        free = min(FREE_ORDERS, self.n)
        x = a.T[:, :, None] * b.T[:, None, :] * theta[:, None, None]  # [n, m_a, m_b], units first: contiguous
        e = elementary(x, free, dim=0)  # [m_a, m_b, free + 1]
        K = e @ w[: free + 1]
        if free == self.n:
            return K
        # orders above `free` have weights w_free · ρ^(k − free), and Σ_k ρ^k e_k(x) = Π_i (1 + ρ x_i): the tail in
        # closed form (its cancellation error, ~1e-16 of the head, sits far below JITTER)
        rho = torch.exp(params[free])
        low = e @ rho ** torch.arange(free + 1, dtype=x.dtype)  # [m_a, m_b]
        return K + w[free] * rho ** -free * (torch.prod(1 + rho * x, dim=0) - low)

    def _prior(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Order weights ``[n + 1]`` and unit relevances ``[n]`` (geometric mean 1) from the log-parameters."""
        free = min(FREE_ORDERS, self.n)
        u = params[free + 1:]
        return order_weights(params[: free + 1], self.n), torch.exp(u - u.mean())

    def initial_params(self) -> torch.Tensor:
        """Where the fit starts: w_0 = 1, w_k = 0.3^(k−1), decay 0.3, every unit equally relevant."""
        free = min(FREE_ORDERS, self.n)
        return torch.tensor([0.0, *(np.log(0.3) * np.arange(1, free)), np.log(0.3), *np.zeros(self.n)],
                            dtype=torch.float64, requires_grad=True)

    def _posterior(self, masks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        s = torch.as_tensor(2 * masks.astype(float) - 1, dtype=torch.float64)  # [m, n] in ±1
        y = torch.as_tensor(values - self.v_empty, dtype=torch.float64)  # [m]

        def factor(params: torch.Tensor, rows: slice) -> torch.Tensor:
            K = self.kernel(params, s[rows], s[rows])  # [r, r]
            return torch.linalg.cholesky(K + JITTER * K.diagonal().mean() * torch.eye(len(K), dtype=K.dtype))

        def nll(params: torch.Tensor) -> torch.Tensor:  # on the first FIT_ROWS masks; σ² profiled out
            L = factor(params, slice(0, FIT_ROWS))
            a = torch.linalg.solve_triangular(L, y[:FIT_ROWS, None], upper=False)[:, 0]
            u = params[min(FREE_ORDERS, n) + 1:]
            shrink = 0.5 * SHRINK * ((u - u.mean()) ** 2).sum()  # log-normal hyperprior on the relevances
            return 0.5 * len(a) * torch.log(a @ a / len(a)) + torch.log(torch.diagonal(L)).sum() + shrink

        best = minimize(nll, self.initial_params(), MAX_ITER) if self.prior is None else self.prior
        self.params = best
        with torch.no_grad():
            L = factor(best, slice(None))
            alpha = torch.cholesky_solve(y[:, None], L)[:, 0]  # [m]
            sigma2 = float(y @ alpha) / len(y)
            w, theta = self._prior(best)
            C = self.cross(s, w, theta)  # [m, n]: cov(v(z), φ_i) / σ²
            phi = (C.T @ alpha).numpy()  # [n]
            V = torch.linalg.solve_triangular(L, C, upper=False)  # [m, n]
            var = sigma2 * np.maximum(self.prior_variance(w, theta).numpy() - (V ** 2).sum(0).numpy(), 0.0)
        # Σ φ = v(all) − v(∅) holds up to the jitter; the rest goes where the posterior is least sure
        gap = (self.v_full - self.v_empty) - phi.sum()
        phi = phi + gap * (var / var.sum() if var.sum() > 0 else np.full(n, 1.0 / n))
        self.fitted = {"order_weights": w.numpy(), "relevance": theta.numpy(), "sigma2": np.array(sigma2)}
        return phi, np.sqrt(var)

    def prior_variance(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``[n]``: var(φ_i) / σ² = θ_i Σ_{k odd} (2/k)² w_k e_{k−1}(θ_j, j ≠ i): ``cross`` at the all-kept mask,
        with each order's weight times its share 2/k once more."""
        k = torch.arange(self.n + 1, dtype=w.dtype)
        share = torch.where(k > 0, 2.0 / k.clamp(min=1), torch.zeros_like(k))  # [n + 1]
        return self.cross(torch.ones(1, self.n, dtype=w.dtype), w * share, theta)[0]

    def cross(self, s: torch.Tensor, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``[m, n]``: cov(v(z), φ_i) / σ² = s_i θ_i Σ_{k odd} (2/k) w_k e_{k−1}(θ_j s_j, j ≠ i)."""
        n = self.n
        k = torch.arange(1, n + 1, dtype=w.dtype)
        odd = torch.where(k % 2 == 1, 2.0 / k * w[1:], torch.zeros_like(w[1:]))  # [n], weight of e_{k−1}
        out = torch.empty_like(s)
        for i in range(n):
            others = torch.cat([s[:, :i] * theta[:i], s[:, i + 1:] * theta[i + 1:]], dim=1)  # [m, n − 1]
            out[:, i] = s[:, i] * theta[i] * (elementary(others, n - 1) @ odd)
        return out
