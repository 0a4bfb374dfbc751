"""Paired (antithetic) sampling: forward-only, unbiased, the reference sampling estimator.

* Shapley schedule: stratified antithetic permutation chains. The Shapley value is the mean over coalition
  sizes s = 0..n-1 of the unit's expected marginal contribution at size s. The two outer strata are computed
  exactly (v of each unit alone and of all but each unit: 2n evaluations). The inner strata are sampled by
  chains: a random order of the units unmasked one at a time (the reverse process) gives one marginal of
  every unit, each in the stratum of its rank; the pair of a chain is the reversed order, whose masks are the
  complements. A chain costs n-3 new evaluations. Stratum means are combined with equal weights
  (post-stratification; an unsampled stratum takes the unit's pooled inner mean).
* Other schedules: Owen sampling along the schedule: a level t (stratified), a mask m ~ Bernoulli(1 - t),
  and ``v(m)``, ``v(m ⊕ e_i)`` for every unit (n + 1 evaluations), paired with the complement 1 - m where
  the schedule is symmetric.

Standard errors: jackknife over groups of chain pairs (Shapley); the spread of the pair means over √pairs
(Owen).

Example:
    >>> from diffusiongemma.estimators.paired import PairedEstimator
    >>> from diffusiongemma.schedules import Uniform, Fixed
    >>> PairedEstimator().cost_per_pair(10, Uniform()), PairedEstimator().cost_per_pair(10, Fixed(0.5))
    (14, 22)
"""

from __future__ import annotations

import numpy as np

from ..schedules import Schedule, Uniform
from .base import Estimator, register_estimator

__all__ = ["PairedEstimator"]

_GROUPS = 32  # jackknife groups of chain pairs


@register_estimator
class PairedEstimator(Estimator):
    """Antithetic permutation chains (Shapley) or antithetic Owen sampling (any schedule)."""

    name = "paired"

    def start(self, n, schedule, rng, v_full, v_empty, budget) -> None:
        super().start(n, schedule, rng, v_full, v_empty, budget)
        self.chains = isinstance(schedule, Uniform)
        self.antithetic = schedule.symmetric
        self.samples: list[np.ndarray] = []  # per pair: marginals [n]
        if self.chains:
            self._start_chains()

    @staticmethod
    def cost_per_pair(n: int, schedule: Schedule) -> int:
        """Evaluations of one antithetic pair."""
        if isinstance(schedule, Uniform):
            return 2 * max(n - 3, 0)
        return (n + 1) * (2 if schedule.symmetric else 1)

    def min_budget(self, n: int, schedule: Schedule) -> int:
        if isinstance(schedule, Uniform):
            return 2 * n + 2 * self.cost_per_pair(n, schedule)  # outer strata, then two chain pairs
        return 2 * self.cost_per_pair(n, schedule)  # two pairs for a standard error

    # -- Shapley: stratified permutation chains ---------------------------------------------------------
    def _start_chains(self) -> None:
        n = self.n
        eye = np.eye(n, dtype=np.int8)
        self.todo = np.concatenate([eye, 1 - eye]) if n > 1 else np.zeros((0, n), dtype=np.int8)
        self.outer_values: list[float] = []
        self.outer: np.ndarray | None = None  # [n]: marginal at size 0 plus marginal at size n-1
        self.single = np.zeros(n)  # v({i})
        self.all_but = np.zeros(n)  # v(N \ i)
        self.chain_pairs = 0
        self.strata_sum = np.zeros((_GROUPS, n, n))  # [group, unit, rank]
        self.strata_cnt = np.zeros((_GROUPS, n, n))

    def _propose_chains(self, max_evals: int) -> np.ndarray:
        if len(self.todo):  # the outer strata first
            masks, self.todo = self.todo[:max_evals], self.todo[max_evals:]
            return masks
        k = max_evals // max(self.cost_per_pair(self.n, self.schedule), 1)
        if self.n <= 3 or k == 0:
            return np.zeros((0, self.n), dtype=np.int8)  # no inner stratum to sample, or no room
        rank = self.rng.random((k, self.n)).argsort(1).argsort(1)  # [k, n] position of each unit in its order
        self._pending = np.stack([rank, self.n - 1 - rank], axis=1).reshape(-1, self.n)  # [2k, n] with reverses
        sizes = np.arange(2, self.n - 1)[None, :, None]  # [1, n-3, 1] inner sizes (1 and n-1 are known)
        return (self._pending[:, None, :] < sizes).reshape(-1, self.n).astype(np.int8)  # first j of each order

    def _update_chains(self, masks: np.ndarray, values: np.ndarray) -> None:
        n = self.n
        if self.outer is None:
            self.outer_values.extend(values)
            if len(self.outer_values) == 2 * n:
                self.single, self.all_but = np.array(self.outer_values[:n]), np.array(self.outer_values[n:])
                self.outer = (self.single - self.v_empty) + (self.v_full - self.all_but)  # strata 0 and n-1
            return
        rank, v = self._pending, values.reshape(-1, n - 3)  # [chains, n], [chains, n-3]
        by_rank = rank.argsort(1)  # [chains, n]: the unit at each rank
        path = np.concatenate([np.full((len(v), 1), self.v_empty), self.single[by_rank[:, :1]], v,
                               self.all_but[by_rank[:, -1:]], np.full((len(v), 1), self.v_full)], axis=1)
        marginal = np.take_along_axis(path, rank + 1, 1) - np.take_along_axis(path, rank, 1)  # [chains, n]
        pairs = len(v) // 2
        groups = np.repeat((self.chain_pairs + np.arange(pairs)) % _GROUPS, 2)[:, None]  # a pair stays together
        units = np.arange(n)[None, :].repeat(len(v), 0)
        np.add.at(self.strata_sum, (groups.repeat(n, 1), units, rank), marginal)
        np.add.at(self.strata_cnt, (groups.repeat(n, 1), units, rank), 1)
        self.chain_pairs += pairs

    def _stratified(self, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """φ from stratum sums/counts ``[..., n, n]`` (unit, rank): equal-weight mean over the n strata."""
        inner = slice(1, self.n - 1)
        pooled = sums[..., inner].sum(-1) / np.maximum(counts[..., inner].sum(-1), 1)  # [..., n]
        means = np.where(counts > 0, sums / np.maximum(counts, 1), pooled[..., None])[..., inner]
        return (self.outer + means.sum(-1)) / self.n

    def _estimate_chains(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        if n == 1:
            return np.array([self.v_full - self.v_empty]), np.zeros(1)
        if self.outer is None:
            return np.zeros(n), np.full(n, np.inf)
        if n <= 3:  # every stratum is an outer one, or (n = 3) the middle one follows from efficiency
            phi = self.outer / n
            if n == 3:  # marginal at size 1 = v({i, j}) - v({j}) averaged over j ≠ i
                mid = np.array([np.mean([self.all_but[k] - self.single[j] for j in range(3) if j != i
                                         for k in range(3) if k not in (i, j)]) for i in range(3)])
                phi = (self.outer + mid) / n
            return phi, np.zeros(n)
        phi = self._stratified(self.strata_sum.sum(0), self.strata_cnt.sum(0))
        used = self.strata_cnt.sum((1, 2)) > 0
        g = int(used.sum())
        if g < 2:
            return phi, np.full(n, np.inf)
        loo = self._stratified(self.strata_sum.sum(0) - self.strata_sum[used],
                               self.strata_cnt.sum(0) - self.strata_cnt[used])  # [g, n]
        return phi, np.sqrt((g - 1) / g * ((loo - loo.mean(0)) ** 2).sum(0))

    # -- any schedule: Owen sampling --------------------------------------------------------------------
    def _propose_owen(self, k: int) -> np.ndarray:
        base = self.schedule.sample_masks(self.rng, k, self.n)  # [k, n]
        if self.antithetic:
            base = np.stack([base, 1 - base], axis=1).reshape(-1, self.n)  # [2k, n], pairs adjacent
        flips = base[:, None, :].repeat(self.n, axis=1)  # [rows, n, n]
        eye = np.eye(self.n, dtype=bool)
        flips[:, eye] = 1 - flips[:, eye]
        return np.concatenate([base[:, None, :], flips], axis=1).reshape(-1, self.n)  # [rows * (n+1), n]

    def _update_owen(self, masks: np.ndarray, values: np.ndarray) -> None:
        blocks = masks.reshape(-1, self.n + 1, self.n)
        vals = values.reshape(-1, self.n + 1)  # [rows, n+1]: v(m), v(m ⊕ e_i)
        kept = blocks[:, 0, :].astype(bool)  # [rows, n]
        diff = vals[:, :1] - vals[:, 1:]  # v(m) - v(m ⊕ e_i)
        marginal = np.where(kept, diff, -diff)  # v(m ∪ i) - v(m \ i)
        if self.antithetic:
            marginal = marginal.reshape(-1, 2, self.n).mean(1)
        self.samples.extend(marginal)

    def propose(self, max_evals: int) -> np.ndarray:
        if self.chains:
            return self._propose_chains(max_evals)
        k = max_evals // self.cost_per_pair(self.n, self.schedule)  # antithetic pairs (or single samples)
        return self._propose_owen(k) if k else np.zeros((0, self.n), dtype=np.int8)

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        (self._update_chains if self.chains else self._update_owen)(masks, values)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        if self.chains:
            return self._estimate_chains()
        s = np.asarray(self.samples)  # [K, n]
        if len(s) < 2:
            return (s.mean(0) if len(s) else np.zeros(self.n)), np.full(self.n, np.inf)
        return s.mean(0), s.std(0, ddof=1) / np.sqrt(len(s))
