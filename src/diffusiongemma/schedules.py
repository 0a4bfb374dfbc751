"""Noise schedules: the density of the masking level ``t`` selects the attribution index (DESIGN §1).

A unit is removed with probability ``t`` (kept with ``q = 1 - t``). Owen's multilinear extension gives the
semivalue ``φ_i = E_t E_{m~Bernoulli(1-t)} [v(m ∪ i) − v(m \\ i)]``:

* ``Uniform()``  (``"shapley"``): t ~ U(0, 1) → Shapley values;
* ``Fixed(0.5)`` (``"banzhaf"``): t = 0.5 → Banzhaf values;
* ``Beta(a, b)`` (``"beta:a,b"``): t ~ Beta(a, b) → weighted Banzhaf / Beta-Shapley semivalues.

Examples:
    >>> s = schedule_from_name("shapley")
    >>> [round(s.coalition_weight(k, 3), 4) for k in range(3)]  # s!(n-1-s)!/n! for n = 3
    [0.3333, 0.1667, 0.3333]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["Schedule", "Uniform", "Fixed", "Beta", "schedule_from_name"]


class Schedule:
    """A distribution of the masking level t."""

    name = "schedule"
    symmetric = True  # t and 1 - t equally likely (antithetic complements are valid)

    def sample_t(self, rng: np.random.Generator, k: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def coalition_weight(self, s: int, n: int) -> float:
        """Weight of one coalition of ``s`` kept others (of ``n - 1``): ``E_t[(1-t)^s t^(n-1-s)]``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def sample_masks(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        """``k`` masks ``[k, n]``: a level t per mask (stratified where possible), each unit kept w.p. 1 - t."""
        t = self.sample_t(rng, k)  # [k]
        return (rng.random((k, n)) >= t[:, None]).astype(np.int8)


@dataclass(frozen=True)
class Uniform(Schedule):
    """t ~ U(0, 1): Shapley values. Levels are stratified over [0, 1]."""

    name = "shapley"

    def sample_t(self, rng: np.random.Generator, k: int) -> np.ndarray:
        return rng.permutation((np.arange(k) + rng.random(k)) / max(k, 1))

    def coalition_weight(self, s: int, n: int) -> float:
        return math.factorial(s) * math.factorial(n - 1 - s) / math.factorial(n)


@dataclass(frozen=True)
class Fixed(Schedule):
    """t fixed: Banzhaf values at t = 0.5 (weighted Banzhaf otherwise)."""

    t: float = 0.5
    name = "banzhaf"

    @property
    def symmetric(self) -> bool:  # type: ignore[override]
        return self.t == 0.5

    def sample_t(self, rng: np.random.Generator, k: int) -> np.ndarray:
        return np.full(k, self.t)

    def coalition_weight(self, s: int, n: int) -> float:
        return (1 - self.t) ** s * self.t ** (n - 1 - s)


@dataclass(frozen=True)
class Beta(Schedule):
    """t ~ Beta(a, b): Beta-Shapley style semivalues (Beta(1, 1) is Shapley)."""

    a: float = 1.0
    b: float = 1.0
    name = "beta"

    @property
    def symmetric(self) -> bool:  # type: ignore[override]
        return self.a == self.b

    def sample_t(self, rng: np.random.Generator, k: int) -> np.ndarray:
        return rng.beta(self.a, self.b, size=k)

    def coalition_weight(self, s: int, n: int) -> float:
        # E[(1-t)^s t^(n-1-s)] for t ~ Beta(a, b) = B(a + n-1-s, b + s) / B(a, b)
        lb = lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)  # noqa: E731
        return math.exp(lb(self.a + n - 1 - s, self.b + s) - lb(self.a, self.b))


def schedule_from_name(name: str | Schedule) -> Schedule:
    """``"shapley"``, ``"banzhaf"``, ``"fixed:T"`` or ``"beta:A,B"`` → a schedule.

    Examples:
        >>> schedule_from_name('banzhaf'), schedule_from_name('beta:2,2')
        (Fixed(t=0.5), Beta(a=2.0, b=2.0))
    """
    if isinstance(name, Schedule):
        return name
    kind, _, args = name.partition(":")
    try:
        if kind == "shapley":
            return Uniform()
        if kind == "banzhaf":
            return Fixed(0.5)
        if kind == "fixed":
            t = float(args)
            if not 0 < t < 1:
                raise ValueError
            return Fixed(t)
        if kind == "beta":
            a, b = (float(x) for x in args.split(","))
            if a <= 0 or b <= 0:
                raise ValueError
            return Beta(a, b)
    except ValueError:
        raise InputError(f"cannot read schedule {name!r}; write fixed:0.3 or beta:2,2") from None
    raise InputError(f"unknown schedule {name!r}; choose shapley, banzhaf, fixed:T or beta:A,B")
