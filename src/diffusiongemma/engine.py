"""The one loop every method goes through: schedule → masks → batched evaluation → estimator.

The engine evaluates v(all kept) and v(all removed), then asks the estimator for masks round by round
until the budget (in model evaluations, those two included) is spent, the estimator is done, or every
standard error is under the tolerance. One seed fixes every sample. Without a tolerance, a round of an
estimator whose masks do not depend on the round size (``round_invariant``) is as large as the game's
``rows_per_forward`` (thousands on a GPU): fewer round trips, the same masks and scores as on a CPU.

Example:
    >>> import numpy as np
    >>> class Sum:  # an additive toy game: Shapley value of unit i is its weight
    ...     n = 3
    ...     def __call__(self, masks): return np.asarray(masks) @ np.array([1.0, 2.0, 3.0])
    >>> run(Sum(), "exact").scores
    array([1., 2., 3.])
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from .errors import InputError
from .estimators import Estimator, get_estimator
from .schedules import Schedule, schedule_from_name

__all__ = ["EngineResult", "GameLike", "run"]


class GameLike(Protocol):
    """Anything with ``n`` units that maps masks ``[batch, n]`` to values ``[batch]`` (and, for the gradient
    estimator, has ``gradient(soft_masks) -> (values [batch], grads [batch, n])``)."""

    n: int

    def __call__(self, masks: np.ndarray) -> np.ndarray: ...


@dataclass
class EngineResult:
    scores: np.ndarray  # [n]
    stderr: np.ndarray  # [n]
    v_full: float
    v_empty: float
    evaluations: int
    wall_time: float
    stopped: str  # "budget", "tolerance", "done"
    estimator: str
    schedule: str
    interactions: list[tuple[int, int, float]] | None = None  # (i, j, value), strongest first

    @property
    def efficiency_gap(self) -> float:
        """Σ scores − (v(all kept) − v(all removed)); 0 for exact Shapley values."""
        return float(self.scores.sum() - (self.v_full - self.v_empty))


def run(
    game: GameLike,
    estimator: str | Estimator = "regression",
    *,
    schedule: str | Schedule = "shapley",
    budget: int = 256,
    tolerance: float | None = None,
    seed: int = 0,
    round_size: int = 64,
    progress: Callable[[int, int], Any] | None = None,
    interactions: int = 0,
) -> EngineResult:
    """Estimate the semivalues of ``game`` (see the module example). ``interactions=k`` also returns the
    pair interactions among the k strongest units, from the same samples (regression estimator)."""
    est = get_estimator(estimator)
    if interactions and not callable(getattr(est, "interactions", None)):
        raise InputError(f"interactions come from the regression estimator (method='shapley'), not {est.name}")
    sched = schedule_from_name(schedule)
    n = int(game.n)
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InputError(f"the budget must be a whole number of evaluations ≥ 1, got {budget!r}")
    if tolerance is not None and not tolerance > 0:
        raise InputError(f"the tolerance must be positive, got {tolerance!r}")
    if est.name != "exact" and budget < est.min_budget(n, sched) + 2:
        raise InputError(
            f"a budget of {budget} evaluations is too small for {est.name} with {n} units; "
            f"it needs at least {est.min_budget(n, sched) + 2}"
        )
    if est.uses_gradients and not callable(getattr(game, "gradient", None)):
        raise InputError(f"{est.name} needs a game with gradients (a model game); this one only has values")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    ends = np.stack([np.ones(n, dtype=np.int8), np.zeros(n, dtype=np.int8)])  # [2, n]
    v_full, v_empty = (float(v) for v in game(ends))
    used = 2
    est.start(n, sched, rng, v_full, v_empty, budget - used)
    exact = est.name == "exact"
    limit = 2**n if exact else budget  # exact enumeration ignores the budget
    step = max(round_size, 512) if exact else max(round_size, est.min_budget(n, sched) // 2)  # ≥ one pair
    if est.round_invariant and tolerance is None:  # nothing to check between rounds: fill the device's batch
        step = max(step, int(getattr(game, "rows_per_forward", 0) or 0))
    stopped = "done" if exact else "budget"
    while used < limit:
        masks = est.propose(min(step, limit - used))
        if len(masks) == 0:
            break
        if est.uses_gradients:
            values, grads = game.gradient(masks)
            est.update(masks, np.asarray(values, dtype=np.float64), np.asarray(grads, dtype=np.float64))
        else:
            est.update(masks, np.asarray(game(masks), dtype=np.float64))
        used += est.cost * len(masks)
        if progress is not None:
            progress(used, limit)
        if tolerance is not None and not exact and np.max(est.estimate()[1]) <= tolerance:
            stopped = "tolerance"
            break
    scores, stderr = est.estimate()
    pairs = est.interactions(interactions) if interactions else None
    return EngineResult(scores, stderr, v_full, v_empty, used, time.perf_counter() - t0, stopped, est.name, sched.name,
                        pairs)
