"""The one loop every method goes through: schedule → masks → batched evaluation → estimator.

The engine evaluates v(all kept) and v(all removed), then asks the estimator for masks round by round
until the budget (in model evaluations, those two included) is spent, the estimator is done, or every
standard error is under the tolerance. One seed fixes every sample. Without a tolerance, a round of an
estimator whose masks do not depend on the round size (``round_invariant``) is as large as the game's
``rows_per_forward`` (thousands on a GPU): fewer round trips, the same masks and scores as on a CPU.

Examples:
    >>> import numpy as np
    >>> class Sum:  # an additive toy game: Shapley value of unit i is its weight
    ...     n = 3
    ...     def __call__(self, masks): return np.asarray(masks) @ np.array([1.0, 2.0, 3.0])
    >>> run(Sum(), "exact").scores
    array([1., 2., 3.])
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, cast

import numpy as np

from .errors import InputError
from .validation import check_budget
from .estimators import Estimator, get_estimator
from .schedules import Schedule, schedule_from_name

__all__ = ["EngineResult", "GameLike", "run", "run_many"]


class GameLike(Protocol):
    """Anything with ``n`` units that maps masks ``[batch, n]`` to values ``[batch]`` (and, for the gradient
    estimator, has ``gradient(soft_masks) -> (values [batch], grads [batch, n])``)."""

    n: int

    def __call__(self, masks: np.ndarray) -> np.ndarray: ...


class GradientGame(GameLike, Protocol):
    """A game the gradient estimator can run on: values and gradients at soft masks."""

    def gradient(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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
    """Estimate the semivalues of ``game``. ``interactions=k`` also returns the pair interactions among the k
    strongest units, from the same samples (regression estimator).

    Examples:
        >>> import numpy as np
        >>> class And:  # v = 1 only when both units are kept: each gets half
        ...     n = 2
        ...     def __call__(self, masks): return np.asarray(masks).prod(axis=1).astype(float)
        >>> run(And(), "exact").scores
        array([0.5, 0.5])
    """
    return run_many([game], estimator, schedule=schedule, budget=budget, tolerance=tolerance, seed=seed,
                    round_size=round_size, progress=progress, interactions=interactions)[0]


@dataclass
class _Job:
    """One game's estimation in progress."""

    game: GameLike
    est: Estimator
    limit: int
    step: int
    v_full: float
    v_empty: float
    used: int = 2
    stopped: str = "budget"
    active: bool = True


def _check(game: GameLike, est: Estimator, sched: Schedule, budget: Any, tolerance: float | None,
           interactions: int) -> None:
    n = int(game.n)
    check_budget(budget)
    chosen = est.choose(n, sched, budget - 2)  # method='shapley' picks one
    if interactions and not chosen.gives_interactions:
        raise InputError(f"interactions come from the estimators that fit the Shapley kernel (regression, kadd, gp, owen), not "
                         f"{chosen.name}: ask for method='regression' with this many units and evaluations")
    if tolerance is not None and not tolerance > 0:
        raise InputError(f"the tolerance must be positive, got {tolerance!r}")
    if est.name != "exact" and budget < est.min_budget(n, sched) + 2:
        raise InputError(
            f"a budget of {budget} evaluations is too small for {est.name} with {n} units; "
            f"it needs at least {est.min_budget(n, sched) + 2}"
        )
    if est.uses_gradients and not callable(getattr(game, "gradient", None)):
        raise InputError(f"{est.name} needs a game with gradients (a model game); this one only has values")


def _values(games: list[GameLike], masks: list[np.ndarray]) -> list[np.ndarray]:
    """Each game's values for its masks: in one go through the games' ``evaluate_together`` where they
    have it (model games stack several prompts' masks in one forward), else game by game."""
    together = getattr(type(games[0]), "evaluate_together", None)
    if len(games) > 1 and callable(together) and all(type(g) is type(games[0]) for g in games):
        return [np.asarray(v, dtype=np.float64) for v in together(games, masks)]
    return [np.asarray(g(m), dtype=np.float64) for g, m in zip(games, masks)]


def run_many(
    games: list[GameLike],
    estimator: str | Estimator = "regression",
    *,
    schedule: str | Schedule = "shapley",
    budget: int = 256,
    tolerance: float | None = None,
    seed: int = 0,
    round_size: int = 64,
    progress: Callable[[int, int], Any] | None = None,
    interactions: int = 0,
) -> list[EngineResult]:
    """:func:`run` on several games in lockstep: each round, every unfinished game's masks are evaluated
    together (one forward for several prompts where the games allow it, see ``evaluate_together``), so an
    accelerator sees large batches. Each game gets the masks, and so the scores, that :func:`run` gives it
    alone with the same seed. ``progress`` sees the evaluations of all games together; each result's
    ``wall_time`` is the whole run's.

    Examples:
        >>> class Weighted:
        ...     def __init__(self, w): self.w, self.n = np.asarray(w, dtype=float), len(w)
        ...     def __call__(self, masks): return np.asarray(masks) @ self.w
        >>> [r.scores.tolist() for r in run_many([Weighted([1, 2]), Weighted([3, 0, 1])], "exact")]
        [[1.0, 2.0], [3.0, 0.0, 1.0]]
    """
    if not games:
        return []
    sched = schedule_from_name(schedule)
    ests = [get_estimator(estimator) if len(games) == 1 else copy.deepcopy(get_estimator(estimator))
            for _ in games]
    for game, est in zip(games, ests):
        _check(game, est, sched, budget, tolerance, interactions)
    t0 = time.perf_counter()
    ends = [np.stack([np.ones(int(g.n), dtype=np.int8), np.zeros(int(g.n), dtype=np.int8)]) for g in games]  # [2, n]
    jobs = []
    for game, est, (v_full, v_empty) in zip(games, ests, _values(games, ends)):
        n = int(game.n)
        est.start(n, sched, np.random.default_rng(seed), float(v_full), float(v_empty), budget - 2)
        exact = est.name == "exact"
        step = max(round_size, 512) if exact else max(round_size, est.min_budget(n, sched) // 2)  # ≥ one pair
        if est.round_invariant and tolerance is None:  # nothing to check between rounds: fill the device's batch
            step = max(step, int(getattr(game, "rows_per_forward", 0) or 0))
        jobs.append(_Job(game, est, 2**n if exact else budget, step, float(v_full), float(v_empty),
                         stopped="done" if exact else "budget"))
    while True:
        live = [j for j in jobs if j.active and j.used < j.limit]
        proposals = [j.est.propose(min(j.step, j.limit - j.used)) for j in live]
        for j, masks in zip(live, proposals):
            if len(masks) == 0:
                j.active = False
        pending = [(j, m) for j, m in zip(live, proposals) if len(m)]
        if not pending:
            break
        plain = [(j, m) for j, m in pending if not j.est.uses_gradients]
        if plain:
            for (j, masks), values in zip(plain, _values([j.game for j, _ in plain], [m for _, m in plain])):
                j.est.update(masks, values)
        for j, masks in pending:
            if j.est.uses_gradients:
                values, grads = cast(GradientGame, j.game).gradient(masks)  # _check made sure it has one
                j.est.update_gradients(masks, np.asarray(values, dtype=np.float64), np.asarray(grads, dtype=np.float64))
        for j, masks in pending:
            j.used += j.est.cost * len(masks)
            if tolerance is not None and j.est.name != "exact" and np.max(j.est.estimate()[1]) <= tolerance:
                j.stopped, j.active = "tolerance", False
        if progress is not None:
            progress(sum(j.used for j in jobs), sum(j.limit for j in jobs))
    wall = time.perf_counter() - t0
    results = []
    for j in jobs:
        scores, stderr = j.est.estimate()
        pairs = j.est.interactions(interactions) if interactions else None
        results.append(EngineResult(scores, stderr, j.v_full, j.v_empty, j.used, wall, j.stopped, j.est.name,
                                    sched.name, pairs))
    return results
