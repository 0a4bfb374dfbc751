"""Single-unit ablation (occlusion; for components: exact one-at-a-time activation patching).

``score_i = v(all kept) − v(all kept but i)``: n evaluations, no sampling error (standard errors are 0),
and blind to redundancy — two units that back each other up both score ~0. It is the comparison the
sampling estimators are judged against, not a Shapley estimate.

Examples:
    >>> import numpy as np
    >>> from diffusiongemma import run
    >>> game = lambda m: np.asarray(m, float)[:, 0] * np.asarray(m, float)[:, 1]  # v = m0·m1
    >>> game.n = 2
    >>> run(game, "ablation", budget=4).scores.tolist()  # each alone looks decisive
    [1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from .base import Estimator, register_estimator

__all__ = ["AblationEstimator"]


@register_estimator
class AblationEstimator(Estimator):
    name = "ablation"

    def start(self, n, schedule, rng, v_full, v_empty, budget):
        super().start(n, schedule, rng, v_full, v_empty, budget)
        self.values = np.full(n, np.nan)
        self.next = 0  # the next unit to ablate

    def min_budget(self, n, schedule):
        return n

    def propose(self, max_evals):
        rows = (1 - np.eye(self.n, dtype=np.int8))[self.next: self.next + max_evals]
        self.next += len(rows)
        return rows

    def update(self, masks, values):
        for m, v in zip(masks, values):
            self.values[int(np.argmin(m))] = v

    def estimate(self):
        return self.v_full - self.values, np.zeros(self.n)
