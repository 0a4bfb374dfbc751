"""Exact semivalues by enumerating all 2^n masks (n ≤ 16): the ground truth of every other estimator.

``φ_i = Σ_{S ⊆ N∖i} w(|S|) [v(S ∪ i) − v(S)]`` with the schedule's coalition weight ``w``.

Examples:
    >>> import numpy as np
    >>> from diffusiongemma.schedules import Uniform
    >>> values = np.array([0.0, 1.0, 2.0, 4.0])  # v({}), v({0}), v({1}), v({0,1}); bit i = unit i
    >>> semivalues_from_table(values, 2, Uniform())
    array([1.5, 2.5])
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..schedules import Schedule
from .base import Estimator, register_estimator

__all__ = ["ExactEstimator", "ValueTable", "all_masks", "semivalues_from_table", "MAX_EXACT_UNITS"]

MAX_EXACT_UNITS = 16


def all_masks(n: int) -> np.ndarray:
    """All 2^n masks ``[2^n, n]``; row r keeps unit i iff bit i of r is set.

    Examples:
        >>> all_masks(2).tolist()
        [[0, 0], [1, 0], [0, 1], [1, 1]]
    """
    r = np.arange(2**n)[:, None]
    return ((r >> np.arange(n)[None, :]) & 1).astype(np.int8)


def semivalues_from_table(values: np.ndarray, n: int, schedule: Schedule) -> np.ndarray:
    """Semivalues ``[n]`` from the value of every mask ``[2^n]`` (indexed by the mask's bits).

    Examples:
        >>> from diffusiongemma.schedules import Fixed, Uniform
        >>> v = all_masks(3).sum(1) ** 2.0  # v(S) = |S|²: symmetric, so Shapley shares v(N) = 9 equally
        >>> semivalues_from_table(v, 3, Uniform()).tolist(), semivalues_from_table(v, 3, Fixed(0.5)).tolist()
        ([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])
    """
    sizes = all_masks(n).sum(1)  # [2^n]
    weights = np.array([schedule.coalition_weight(s, n) for s in range(n)])
    idx = np.arange(2**n)
    phi = np.empty(n)
    for i in range(n):
        without = idx[(idx >> i) & 1 == 0]  # coalitions S not containing i
        phi[i] = np.sum(weights[sizes[without]] * (values[without | (1 << i)] - values[without]))
    return phi


class ValueTable:
    """A game given by the value of every mask (indexed by its bits), counting the masks it is asked for.

    Built once from a real game (2^n evaluations), it lets many estimators, seeds and budgets — ours or
    another library's — run on exactly that game at no further model cost, with evaluations counted here.

    Examples:
        >>> table = ValueTable(2, np.array([0.0, 1.0, 2.0, 4.0]))
        >>> table(np.array([[1, 1], [0, 1]])), table.calls
        (array([4., 2.]), 2)
    """

    def __init__(self, n: int, values: np.ndarray) -> None:
        if len(values) != 2**n:
            raise ValueError(f"a table of {n} units needs {2**n} values, got {len(values)}")
        self.n, self.values, self.calls = n, np.asarray(values, dtype=float), 0

    @classmethod
    def from_game(cls, game) -> "ValueTable":
        """Evaluate every mask of ``game`` (batched) into a table."""
        if game.n > MAX_EXACT_UNITS:
            raise InputError(f"a value table of {game.n} units needs 2^{game.n} evaluations; the limit is "
                             f"{MAX_EXACT_UNITS} units")
        return cls(game.n, np.asarray(game(all_masks(game.n)), dtype=float))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        m = np.atleast_2d(np.asarray(masks)).astype(np.int64)
        self.calls += len(m)
        return self.values[m @ (1 << np.arange(self.n))]


@register_estimator
class ExactEstimator(Estimator):
    """Enumerates every mask once; standard errors are zero. Ignores the budget (it needs 2^n)."""

    name = "exact"
    round_invariant = True

    def min_budget(self, n: int, schedule: Schedule) -> int:
        return 2**n

    def start(self, n, schedule, rng, v_full, v_empty, budget) -> None:
        if n > MAX_EXACT_UNITS:
            raise InputError(
                f"exact enumeration needs 2^{n} evaluations; it is limited to {MAX_EXACT_UNITS} units "
                "(use method='shapley' or coarser units)"
            )
        super().start(n, schedule, rng, v_full, v_empty, budget)
        self.masks = all_masks(n)
        self.values = np.full(2**n, np.nan)
        self.values[0], self.values[-1] = v_empty, v_full
        self.todo = list(range(1, 2**n - 1))

    def propose(self, max_evals: int) -> np.ndarray:
        chunk, self.todo = self.todo[:max_evals], self.todo[max_evals:]
        self._proposed = chunk
        return self.masks[chunk]

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        self.values[self._proposed] = values

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        if np.isnan(self.values).any():
            raise RuntimeError("exact enumeration was stopped before every mask was evaluated")
        return semivalues_from_table(self.values, self.n, self.schedule), np.zeros(self.n)
