"""The estimator protocol: propose masks, read their values, estimate scores with standard errors.

The engine owns the loop (budget, batching, stopping); an estimator only decides which masks to evaluate
and how to turn values into scores. ``v_full`` (all kept) and ``v_empty`` (all removed) are given to every
estimator at the start.

Examples:
    >>> from diffusiongemma.estimators import ESTIMATORS
    >>> sorted(ESTIMATORS)
    ['ablation', 'exact', 'gp', 'gradient', 'kadd', 'owen', 'paired', 'regression', 'shapley']
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ..schedules import Schedule

__all__ = ["Estimator", "ESTIMATORS", "register_estimator", "masks_of_sizes", "mean_and_stderr", "jackknife_stderr"]


def masks_of_sizes(n: int, sizes: list[int]) -> np.ndarray:
    """Every mask ``[*, n]`` keeping exactly s units, for each s in ``sizes`` (in that order).

    Examples:
        >>> masks_of_sizes(3, [1]).tolist()
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    rows = [[int(i in c) for i in range(n)] for s in sizes for c in combinations(range(n), s)]
    return np.array(rows, dtype=np.int8).reshape(-1, n)


def mean_and_stderr(samples: list[np.ndarray] | np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[n]`` of iid samples ``[K, n]`` and its standard error (infinite below two samples).

    Examples:
        >>> mean_and_stderr(np.array([[1.0, 2.0], [3.0, 4.0]]), 2)[1].tolist()
        [1.0, 1.0]
        >>> mean_and_stderr([np.array([1.0, 2.0])], 2)[1].tolist()
        [inf, inf]
    """
    s = np.asarray(samples)
    if len(s) < 2:
        return (s.mean(0) if len(s) else np.zeros(n)), np.full(n, np.inf)
    return s.mean(0), s.std(0, ddof=1) / np.sqrt(len(s))


def jackknife_stderr(leave_one_out: np.ndarray) -> np.ndarray:
    """Standard error ``[n]`` from g leave-one-group-out estimates ``[g, n]``.

    Examples:
        >>> jackknife_stderr(np.array([[1.0], [3.0]]))
        array([1.])
    """
    g = len(leave_one_out)
    return np.sqrt((g - 1) / g * ((leave_one_out - leave_one_out.mean(0)) ** 2).sum(0))


class Estimator:
    """Base class. Subclasses set ``name`` and implement :meth:`propose`, :meth:`update`, :meth:`estimate`."""

    name = "estimator"
    uses_gradients = False  # True: the engine passes gradients at soft masks to update()
    cost = 1  # evaluations per proposed mask (a forward + backward counts 3)
    round_invariant = False  # True: the masks proposed never depend on how many are asked for at a time
    gives_interactions = False  # True: :meth:`interactions` refits pair interactions (the Shapley-kernel fits)
    resolves = True  # its standard errors test the scores against zero (significance.py); False: a ranking only

    def start(self, n: int, schedule: Schedule, rng: np.random.Generator, v_full: float, v_empty: float,
              budget: int) -> None:
        """Begin an estimate; ``budget`` is the number of evaluations the engine may still spend."""
        self.n, self.schedule, self.rng = n, schedule, rng
        self.v_full, self.v_empty, self.budget = v_full, v_empty, budget

    def sibling(self) -> "Estimator":
        """A fresh estimator for another value of the same masks whose scores add up with this one's (trace's
        per-token rows): for an estimator linear in the values, simply a new one of the same kind."""
        return type(self)()

    def min_budget(self, n: int, schedule: Schedule) -> int:
        """Fewest evaluations (besides v_full and v_empty) that give an estimate with a standard error."""
        return 2

    def propose(self, max_evals: int) -> np.ndarray:
        """Up to ``max_evals`` masks ``[b, n]`` to evaluate next; an empty array when done."""
        raise NotImplementedError  # pragma: no cover - abstract

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        """Take the values ``[b]`` of the masks ``[b, n]`` last proposed."""
        raise NotImplementedError  # pragma: no cover - abstract

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (scores ``[n]``, standard errors ``[n]``)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def update_gradients(self, masks: np.ndarray, values: np.ndarray, grads: np.ndarray) -> None:
        """Take the values ``[b]`` and gradients ``[b, n]`` at the soft masks last proposed (``uses_gradients``)."""
        raise NotImplementedError(f"{self.name} takes no gradients")  # pragma: no cover - abstract

    def choose(self, n: int, schedule: Schedule, budget: int) -> "Estimator":
        """The estimator that does the work for ``n`` units and ``budget`` evaluations: itself here (``shapley``
        picks one; the engine asks before it spends anything)."""
        return self

    def interactions(self, top: int) -> list[tuple[int, int, float]]:
        """Pair interactions among the ``top`` units of largest |score| (where ``gives_interactions``)."""
        raise NotImplementedError(f"{self.name} gives no pair interactions")  # pragma: no cover - abstract


ESTIMATORS: dict[str, type[Estimator]] = {}


def register_estimator(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make an estimator available by its ``name``."""
    ESTIMATORS[cls.name] = cls
    return cls
