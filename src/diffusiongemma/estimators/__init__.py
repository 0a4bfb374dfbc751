"""Estimators of semivalues from masked evaluations; all consume the same game through the engine.

Examples:
    >>> from diffusiongemma.estimators import get_estimator
    >>> get_estimator("paired").name
    'paired'
"""

from __future__ import annotations

from ..errors import InputError
from . import ablation, exact, gp, gradient, kadd, owen, paired, regression, shapley  # noqa: F401  (register the estimators)
from .base import ESTIMATORS, Estimator, register_estimator

__all__ = ["ESTIMATORS", "Estimator", "register_estimator", "get_estimator", "resolves"]


def get_estimator(name: str | Estimator) -> Estimator:
    """A fresh estimator by name (or the instance given).

    Examples:
        >>> type(get_estimator('owen')).__name__
        'NoiseLevelEstimator'
        >>> get_estimator('nope')
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: unknown estimator 'nope'; choose one of ...
    """
    if isinstance(name, Estimator):
        return name
    try:
        return ESTIMATORS[name]()
    except KeyError:
        raise InputError(f"unknown estimator {name!r}; choose one of {', '.join(sorted(ESTIMATORS))}") from None


def resolves(name: str | None) -> bool:
    """Whether a map by the estimator of this name may call units resolved (its standard errors test its scores);
    ``True`` for a name it does not know (a stored map's, a tree's), ``False`` for a ranking such as ``gradient``.

    Examples:
        >>> resolves("owen"), resolves("gradient"), resolves(None)
        (True, False, True)
    """
    cls = ESTIMATORS.get(name or "")
    return cls is None or cls.resolves
