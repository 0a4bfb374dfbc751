"""Paired (antithetic) sampling: forward-only, unbiased, the reference sampling estimator.

* Shapley schedule: stratified antithetic permutation chains. The Shapley value is the mean over coalition
  sizes s = 0..n-1 of the unit's expected marginal contribution at size s. The two outer strata are computed
  exactly (v of each unit alone and of all but each unit: 2n evaluations), and more outer strata while the
  budget affords them (the sizes the regression estimator enumerates). The inner strata are sampled by
  chains: a random order of the units unmasked one at a time (the reverse process) gives one marginal of
  every unit, each in the stratum of its rank; the pair of a chain is the reversed order, whose masks are the
  complements. A chain costs n-2K-1 new evaluations when sizes 1..K and n-K..n-1 are enumerated. Stratum
  means are combined with equal weights (post-stratification; an unsampled stratum takes the unit's pooled
  inner mean).
* Other schedules: Owen sampling along the schedule: a level t (stratified), a mask m ~ Bernoulli(1 - t),
  and ``v(m)``, ``v(m ⊕ e_i)`` for every unit (n + 1 evaluations), paired with the complement 1 - m where
  the schedule is symmetric.

Standard errors: jackknife over groups of chain pairs (Shapley); the spread of the pair means over √pairs
(Owen).

Examples:
    >>> from diffusiongemma.estimators.paired import PairedEstimator
    >>> from diffusiongemma.schedules import Uniform, Fixed
    >>> PairedEstimator().cost_per_pair(10, Uniform()), PairedEstimator().cost_per_pair(10, Fixed(0.5))
    (14, 22)
"""

from __future__ import annotations

import numpy as np

from ..schedules import Schedule, Uniform
from .base import Estimator, jackknife_stderr, masks_of_sizes, mean_and_stderr, register_estimator
from .regression import plan_enumeration

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
    def cost_per_pair(n: int, schedule: Schedule, K: int = 1) -> int:
        """Evaluations of one antithetic pair (chains: sizes 1..K and n-K..n-1 are enumerated)."""
        if isinstance(schedule, Uniform):
            return 2 * max(n - 2 * K - 1, 0)
        return (n + 1) * (2 if schedule.symmetric else 1)

    def min_budget(self, n: int, schedule: Schedule) -> int:
        if isinstance(schedule, Uniform):
            return 2 * n + 2 * self.cost_per_pair(n, schedule)  # outer strata, then two chain pairs
        return 2 * self.cost_per_pair(n, schedule)  # two pairs for a standard error

    # -- Shapley: stratified permutation chains ---------------------------------------------------------
    def _start_chains(self) -> None:
        n = self.n
        planned = [s for s in plan_enumeration(n, self.budget) if s <= n // 2]
        self.K = max(planned + [1]) if n > 1 else 0  # mask sizes 1..K and n-K..n-1 are enumerated
        sizes = sorted({s for k in range(1, self.K + 1) for s in (k, n - k)} - {0, n})
        self.todo = masks_of_sizes(n, sizes)
        self.enum_masks = [np.zeros((1, n), np.int8), np.ones((1, n), np.int8)]  # every enumerated mask
        self.enum_values = [np.array([self.v_empty]), np.array([self.v_full])]
        self.table: dict[bytes, float] = {}  # enumerated mask (packed bits) -> value, for chain lookups
        self.exact_sum: np.ndarray | None = None  # [n]: sum of the exactly computed strata
        self.chain_pairs = 0
        self.strata_sum = np.zeros((_GROUPS, n, n))  # [group, unit, rank]
        self.strata_cnt = np.zeros((_GROUPS, n, n))

    def _exact_strata(self) -> np.ndarray:
        """Sum over the enumerated strata s of E[v(S ∪ i) − v(S)], |S| = s: ``[n]``."""
        n = self.n
        masks, vals = np.concatenate(self.enum_masks), np.concatenate(self.enum_values)  # [E, n], [E]
        size = masks.sum(1)
        total = np.zeros(n)
        for s in [*range(self.K), *range(n - self.K, n)] if 2 * self.K + 1 < n else range(n):
            with_i = (size == s + 1)[:, None] & (masks == 1)  # [E, n]
            without_i = (size == s)[:, None] & (masks == 0)
            total += (vals @ with_i) / with_i.sum(0) - (vals @ without_i) / without_i.sum(0)
        return total

    def _propose_chains(self, max_evals: int) -> np.ndarray:
        if len(self.todo):  # the enumerated strata first
            masks, self.todo = self.todo[:max_evals], self.todo[max_evals:]
            return masks
        k = max_evals // max(self.cost_per_pair(self.n, self.schedule, self.K), 1)
        if 2 * self.K + 1 >= self.n or k == 0:
            return np.zeros((0, self.n), dtype=np.int8)  # every stratum is exact, or no room
        rank = self.rng.random((k, self.n)).argsort(1).argsort(1)  # [k, n] position of each unit in its order
        self._pending = np.stack([rank, self.n - 1 - rank], axis=1).reshape(-1, self.n)  # [2k, n] with reverses
        sizes = np.arange(self.K + 1, self.n - self.K)[None, :, None]  # inner sizes not enumerated
        return (self._pending[:, None, :] < sizes).reshape(-1, self.n).astype(np.int8)  # first j of each order

    def _update_chains(self, masks: np.ndarray, values: np.ndarray) -> None:
        n, K = self.n, self.K
        if self.exact_sum is None:
            self.enum_masks.append(masks.astype(np.int8))
            self.enum_values.append(values)
            if len(self.todo) == 0:
                m = np.concatenate(self.enum_masks)
                self.table = dict(zip(map(bytes, np.packbits(m, axis=1)), np.concatenate(self.enum_values)))
                self.exact_sum = self._exact_strata()
            return
        rank = self._pending  # [chains, n]
        v = values.reshape(len(rank), -1)  # [chains, n - 2K - 1]
        lo = map(bytes, np.packbits(rank < K, axis=1))  # the chain's enumerated masks of sizes K and n-K
        hi = map(bytes, np.packbits(rank < n - K, axis=1))
        path = np.concatenate([np.array([self.table[x] for x in lo])[:, None], v,
                               np.array([self.table[x] for x in hi])[:, None]], axis=1)  # sizes K..n-K
        inner = (rank >= K) & (rank <= n - 1 - K)  # [chains, n]: units whose marginal is sampled here
        r = np.clip(rank - K, 0, path.shape[1] - 2)
        marginal = np.take_along_axis(path, r + 1, 1) - np.take_along_axis(path, r, 1)  # [chains, n]
        pairs = len(v) // 2
        groups = np.repeat((self.chain_pairs + np.arange(pairs)) % _GROUPS, 2)[:, None].repeat(n, 1)
        units = np.arange(n)[None, :].repeat(len(v), 0)
        np.add.at(self.strata_sum, (groups[inner], units[inner], rank[inner]), marginal[inner])
        np.add.at(self.strata_cnt, (groups[inner], units[inner], rank[inner]), 1)
        self.chain_pairs += pairs

    def _stratified(self, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """φ from stratum sums/counts ``[..., n, n]`` (unit, rank): equal-weight mean over the n strata."""
        inner = slice(self.K, self.n - self.K)
        pooled = sums[..., inner].sum(-1) / np.maximum(counts[..., inner].sum(-1), 1)  # [..., n]
        means = np.where(counts > 0, sums / np.maximum(counts, 1), pooled[..., None])[..., inner]
        return (self.exact_sum + means.sum(-1)) / self.n

    def _estimate_chains(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        if n == 1:
            return np.array([self.v_full - self.v_empty]), np.zeros(1)
        if self.exact_sum is None:
            return np.zeros(n), np.full(n, np.inf)
        if 2 * self.K + 1 >= n:  # every size enumerated: every stratum exact
            return self.exact_sum / n, np.zeros(n)
        phi = self._stratified(self.strata_sum.sum(0), self.strata_cnt.sum(0))
        used = self.strata_cnt.sum((1, 2)) > 0
        g = int(used.sum())
        if g < 2:
            return phi, np.full(n, np.inf)
        loo = self._stratified(self.strata_sum.sum(0) - self.strata_sum[used],
                               self.strata_cnt.sum(0) - self.strata_cnt[used])  # [g, n]
        return phi, jackknife_stderr(loo)

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
        return mean_and_stderr(self.samples, self.n)
