"""Which scores are findings: a unit is *resolved* when its interval excludes zero after Holm's correction for
the number of units (family-wise error α = 0.05, two-sided z-tests of score / standard error); every other unit
is drawn as "not resolved". When some of the strongest units are not resolved, the budget that would resolve
them is estimated from the observed standard errors (they shrink as 1/√budget), for the 5 strongest units that carry at least a quarter of the largest score.
A map whose estimator's standard errors do not bound its error (the gradient map's cover the quadrature, not the
relaxation's bias) resolves nothing: it ranks units, and says so.

Examples:
    >>> import numpy as np
    >>> r = resolve(np.array([1.0, 0.4, 0.05]), np.array([0.1, 0.2, 0.1]), evaluations=100)
    >>> r.resolved.tolist(), r.correction
    ([True, False, False], 'holm')
    >>> r.budget_to_resolve  # the 2nd unit needs its s.e. down from 0.2 to 0.4 / 2.39: 100 · 1.197²
    144
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["ALPHA", "TOP", "Resolution", "resolve", "wilson"]

ALPHA = 0.05  # family-wise error over the units of one map
TOP = 5  # the strongest units whose resolution the budget advice is about
STRONG = 0.25  # ... among those with at least this share of the largest |score| (a score near 0 needs no budget)
PER_UNIT = 3  # below this many evaluations per unit the sampled standard errors are not trusted: nothing resolves
ROUNDING = 1e-6  # below this share of the largest |score| (or of 1): float32 rounding (~1e-7 relative), taken as zero


@dataclass(frozen=True)
class Resolution:
    """The significance of one map's scores."""

    resolved: np.ndarray  # [n] bool: the unit's interval excludes zero after the correction
    p_values: np.ndarray  # [n] two-sided, uncorrected (1 where there is no standard error)
    correction: str  # "holm"
    alpha: float
    z_bonferroni: float  # the strictest threshold of Holm's procedure: |score| / s.e. above it is always resolved
    budget_to_resolve: int | None  # evaluations that would resolve the TOP strongest units; None: they are
    starved: bool = False  # fewer than PER_UNIT evaluations per unit: nothing resolved whatever the errors say
    ranking_only: bool = False  # the estimator's errors do not bound its error (gradient): nothing resolved

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``resolved`` as 0/1 per unit, the counts and the advice."""
        return {"correction": self.correction, "alpha": self.alpha, "z_bonferroni": round(self.z_bonferroni, 4),
                "resolved": [int(x) for x in self.resolved], "n_resolved": int(self.resolved.sum()),
                "n_units": int(len(self.resolved)), "budget_to_resolve_top": self.budget_to_resolve,
                "too_few_evaluations_per_unit": self.starved, "ranking_only": self.ranking_only}

    def advice(self, evaluations: int) -> str | None:
        """One sentence for reports when the budget is too small for the number of units, or when the map only
        ranks its units, else ``None``."""
        if self.ranking_only:
            return ("a gradient map ranks units but resolves none: its standard errors cover the path's quadrature, "
                    "not the relaxation's bias; confirm its top units by edits, or run a sampling method "
                    "(method='shapley') for findings")
        if self.budget_to_resolve is None:
            return None
        if self.starved:
            return (f"the budget of {evaluations} evaluations is under {PER_UNIT} per unit for {len(self.resolved)} "
                    f"units, too few to trust the standard errors: nothing is resolved; about "
                    f"{self.budget_to_resolve} would be needed")
        return (f"the budget of {evaluations} evaluations is too small to resolve the strongest units among "
                f"{len(self.resolved)}: about {self.budget_to_resolve} would (from the observed standard errors)")


def resolve(scores: np.ndarray, stderr: np.ndarray, *, evaluations: int | None, alpha: float = ALPHA,
            top: int = TOP, ranking_only: bool = False) -> Resolution:
    """Holm's step-down test of every unit's score against zero, and the budget advice.

    A unit without a standard error (NaN) is never resolved; a zero standard error (an exact method) resolves
    every non-zero score. With fewer than :data:`PER_UNIT` evaluations per unit nothing is resolved (measured:
    at 1.6 evaluations per unit the regression's and the noise-level regression's 95 % intervals covered the
    exact Shapley values 62–66 % of the time, and 9 of 34 units called resolved had the wrong sign; from 3 per
    unit, 89–95 % and none or one); the advice then names at least ``PER_UNIT · n``. ``evaluations=None``:
    figures whose errors do not come from a budget (a difference of two maps) skip that rule. ``ranking_only``:
    the errors do not bound the scores' error (an estimator with ``resolves = False``): nothing is resolved.

    Examples:
        >>> resolve(np.array([0.3, 0.0]), np.array([0.0, 0.0]), evaluations=4).resolved.tolist()
        [True, False]
        >>> resolve(np.array([8.0, -4.8e-7]), np.array([0.0, 0.0]), evaluations=4).resolved.tolist()  # float32 noise
        [True, False]
        >>> r = resolve(np.array([1.0, 0.4]), np.array([0.01, 0.01]), evaluations=300, ranking_only=True)
        >>> r.resolved.tolist(), r.budget_to_resolve, r.advice(300)[:36]
        ([False, False], None, 'a gradient map ranks units but resol')
    """
    scores = np.asarray(scores, dtype=float)
    stderr = np.asarray(stderr, dtype=float)
    n = len(scores)
    size = np.where(np.abs(scores) > ROUNDING * max(1.0, float(np.max(np.abs(scores), initial=0.0))),
                    np.abs(scores), 0.0)  # an exact fit's float32 residue (5e-7 ± 0) is a zero, not a finding
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(stderr), size / stderr, 0.0)  # [n]
    z = np.where(np.isnan(z), 0.0, z)  # 0 / 0: a zero score known exactly
    p = np.array([math.erfc(v / math.sqrt(2)) for v in z]) if n else np.zeros(0)  # two-sided
    resolved = np.zeros(n, dtype=bool)
    exact = bool(n) and bool(np.all(stderr == 0))
    starved = evaluations is not None and not exact and evaluations < PER_UNIT * n
    for rank, i in enumerate(np.argsort(p, kind="stable") if not (starved or ranking_only) else []):  # Holm: stop at the first that fails
        if p[i] > alpha / (n - rank):
            break
        resolved[i] = True
    z_bonf = NormalDist().inv_cdf(1 - alpha / (2 * max(n, 1)))
    big = float(np.max(np.abs(scores))) if n else 0.0
    strongest = [i for i in np.argsort(-np.abs(scores), kind="stable")[:top] if abs(scores[i]) >= STRONG * big]
    need = [(evaluations or 0) * (z_bonf * stderr[i] / abs(scores[i])) ** 2 for i in strongest
            if not resolved[i] and np.isfinite(stderr[i]) and abs(scores[i]) > 0]
    if starved:
        need.append(PER_UNIT * n)
    budget = int(math.ceil(max(need))) if need and evaluations is not None and not ranking_only else None
    return Resolution(resolved, p, "holm", alpha, z_bonf, budget, starved, ranking_only)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """The share ``k / n`` with its Wilson score interval (95 % by default); ``(nan, 0, 1)`` when ``n`` is 0.

    Examples:
        >>> [round(x, 3) for x in wilson(45, 100)]
        [0.45, 0.356, 0.548]
        >>> [round(x, 3) for x in wilson(8, 10)]
        [0.8, 0.49, 0.943]
    """
    if n == 0:
        return float("nan"), 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)
