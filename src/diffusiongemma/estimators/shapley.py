"""The default Shapley estimator: the best of the others for the game's size and the budget, chosen at the start.

* Up to ``gp.MAX_UNITS`` (14) units: ``gp`` (the Bayesian posterior over the whole game; B1: 5 % error in 230
  evaluations) once the budget gives its prior 3 masks per parameter. Below that, ``regression`` where it can
  enumerate every mask (exact), else ``owen`` (B1 at 32 evaluations: 0.31 relative error against KernelSHAP
  regression's 0.90; ``kadd``'s pair and triple terms are underdetermined by so few masks: on toy games with
  interactions they exploded to 1e40).
* Above that, while the budget is below ``LONG`` masks per unit (long prompts, component sets at everyday budgets):
  ``owen``, the noise-level regression with a relevance prior, which stays faithful when the masks are fewer than the
  units (B7); at larger budgets ``regression`` (KernelSHAP with efficiency, unbiased as the masks grow).

The choice is recorded: after ``start`` the estimator's ``name`` is the one chosen.

Examples:
    >>> from diffusiongemma.schedules import Uniform
    >>> import numpy as np
    >>> est = ShapleyEstimator()
    >>> est.start(500, Uniform(), np.random.default_rng(0), 1.0, 0.0, 126)
    >>> est.name
    'owen'
    >>> est.start(10, Uniform(), np.random.default_rng(0), 1.0, 0.0, 254)
    >>> est.name
    'gp'
"""

from __future__ import annotations

import numpy as np

from ..schedules import Schedule, Uniform
from .base import Estimator, register_estimator
from .gp import GaussianProcessEstimator
from .kadd import MAX_UNITS
from .owen import NoiseLevelEstimator
from .regression import RegressionEstimator

__all__ = ["ShapleyEstimator", "LONG", "choose"]

LONG = 8  # masks per unit below which a game of more than MAX_UNITS units gets the noise-level estimator


def choose(n: int, schedule: Schedule, budget: int) -> Estimator:
    """The estimator for ``n`` units, a schedule and a budget (evaluations left after v(all) and v(∅)).

    Examples:
        >>> choose(66, Uniform(), 126).name, choose(66, Uniform(), 4094).name, choose(12, Uniform(), 30).name
        ('owen', 'regression', 'owen')
        >>> choose(4, Uniform(), 14).name  # every one of the 2^4 − 2 masks fits the budget: exact
        'regression'
    """
    if not isinstance(schedule, Uniform):
        return RegressionEstimator()
    if n <= MAX_UNITS:
        if budget >= 3 * (n + 6):
            return GaussianProcessEstimator()
        return RegressionEstimator() if budget >= 2 ** n - 2 else NoiseLevelEstimator()
    return NoiseLevelEstimator() if budget < LONG * n else RegressionEstimator()


@register_estimator
class ShapleyEstimator(Estimator):
    """Delegates to the estimator :func:`choose` picks for the game and the budget."""

    name = "shapley"

    def __init__(self) -> None:
        self.chosen: Estimator | None = None

    def min_budget(self, n: int, schedule: Schedule) -> int:
        return RegressionEstimator().min_budget(n, schedule)

    def choose(self, n: int, schedule: Schedule, budget: int) -> Estimator:
        """The estimator :meth:`start` would pick (the engine asks before it spends anything)."""
        return choose(n, schedule, budget)

    def start(self, n, schedule, rng, v_full, v_empty, budget) -> None:
        self.chosen = choose(n, schedule, budget)
        self.chosen.start(n, schedule, rng, v_full, v_empty, budget)
        c = self.chosen  # from now on the engine and the result see the chosen one's name, cost and flags
        self.name, self.round_invariant, self.cost, self.uses_gradients, self.gives_interactions = \
            c.name, c.round_invariant, c.cost, c.uses_gradients, c.gives_interactions

    def sibling(self) -> Estimator:
        return self.chosen.sibling() if self.chosen is not None else ShapleyEstimator()

    def _started(self) -> Estimator:
        if self.chosen is None:
            raise RuntimeError("ShapleyEstimator.start() has not run: no estimator was chosen yet")
        return self.chosen

    def propose(self, max_evals: int) -> np.ndarray:
        return self._started().propose(max_evals)

    def update(self, masks: np.ndarray, values: np.ndarray) -> None:
        self._started().update(masks, values)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        return self._started().estimate()

    def interactions(self, top: int) -> list[tuple[int, int, float]]:
        """The chosen estimator's pair interactions (the engine refuses, before any evaluation, a choice without)."""
        return self._started().interactions(top)
