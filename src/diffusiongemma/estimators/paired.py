"""Paired (antithetic Owen) sampling: forward-only, unbiased, the reference sampling estimator.

Each sample draws a level t from the schedule (stratified), a mask m ~ Bernoulli(1 - t), and evaluates
``v(m)`` and ``v(m ⊕ e_i)`` for every unit: n + 1 evaluations give one marginal contribution of every unit at
that point of the diffusion path. Its complement 1 - m (the antithetic sample, valid for symmetric
schedules) is evaluated too and averaged in. Standard error: the spread of the pair means over √pairs.

Example:
    >>> from diffusiongemma.estimators.paired import PairedEstimator
    >>> PairedEstimator().min_budget(10)
    44
"""

from __future__ import annotations

import numpy as np

from .base import Estimator, register_estimator

__all__ = ["PairedEstimator"]


@register_estimator
class PairedEstimator(Estimator):
    """Owen sampling along the schedule with antithetic complements."""

    name = "paired"

    def start(self, n, schedule, rng, v_full, v_empty) -> None:
        super().start(n, schedule, rng, v_full, v_empty)
        self.antithetic = schedule.symmetric
        self.samples: list[np.ndarray] = []  # per pair: marginals [n]

    def _evals_per_sample(self) -> int:
        return (self.n + 1) * (2 if self.antithetic else 1)

    def min_budget(self, n: int) -> int:
        return 2 * (n + 1) * 2  # two pairs: a standard error needs two samples

    def propose(self, max_evals: int) -> np.ndarray:
        k = max_evals // self._evals_per_sample()
        if k == 0:
            return np.zeros((0, self.n), dtype=np.int8)
        base = self.schedule.sample_masks(self.rng, k, self.n)  # [k, n]
        if self.antithetic:
            base = np.stack([base, 1 - base], axis=1).reshape(-1, self.n)  # [2k, n], pairs adjacent
        flips = base[:, None, :].repeat(self.n, axis=1)  # [rows, n, n]
        eye = np.eye(self.n, dtype=bool)
        flips[:, eye] = 1 - flips[:, eye]
        return np.concatenate([base[:, None, :], flips], axis=1).reshape(-1, self.n)  # [rows * (n+1), n]

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        blocks = masks.reshape(-1, self.n + 1, self.n)
        vals = values.reshape(-1, self.n + 1)  # [rows, n+1]: v(m), v(m ⊕ e_i)
        kept = blocks[:, 0, :].astype(bool)  # [rows, n]
        diff = vals[:, :1] - vals[:, 1:]  # v(m) - v(m ⊕ e_i)
        marginal = np.where(kept, diff, -diff)  # v(m ∪ i) - v(m \ i)
        if self.antithetic:
            marginal = marginal.reshape(-1, 2, self.n).mean(1)
        self.samples.extend(marginal)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        s = np.asarray(self.samples)  # [K, n]
        if len(s) < 2:
            return s.mean(0) if len(s) else np.zeros(self.n), np.full(self.n, np.inf)
        return s.mean(0), s.std(0, ddof=1) / np.sqrt(len(s))
