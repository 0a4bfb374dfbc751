"""Checks of the numeric options every entry point takes, so a bad value is the same one sentence wherever it
is given (API or CLI) and is refused before anything is loaded, run or written.

Examples:
    >>> check_count(32, "budget", "evaluations")
    >>> check_count(0, "max_new_tokens", "tokens")
    Traceback (most recent call last):
    ...
    diffusiongemma.errors.InputError: max_new_tokens must be a whole number of tokens ≥ 1, got 0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import InputError, NumericalError

__all__ = ["check_count", "check_budget", "check_finite"]


def check_count(value: Any, name: str, of: str, minimum: int = 1) -> None:
    """Raise :class:`InputError` unless ``value`` is a whole number ≥ ``minimum`` (a bool is not).

    Examples:
        >>> check_count(3, 'budget', 'evaluations')
        >>> check_count(True, 'budget', 'evaluations')
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: budget must be a whole number of evaluations ≥ 1, got True
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be a whole number of {of} ≥ {minimum}, got {value!r}")


def check_budget(budget: Any, name: str = "the budget") -> None:
    """A budget of model evaluations: a whole number ≥ 1.

    Examples:
        >>> check_budget(-1)
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.InputError: the budget must be a whole number of evaluations ≥ 1, got -1
    """
    check_count(budget, name, "evaluations")


def check_finite(result: torch.Tensor) -> torch.Tensor:
    """``result`` unchanged, or a :class:`~diffusiongemma.errors.NumericalError` when any value is NaN or inf.

    Examples:
        >>> check_finite(torch.tensor([1.0, float("nan")]))
        Traceback (most recent call last):
        ...
        diffusiongemma.errors.NumericalError: the model returned non-finite target values for 1 of 2 entries (NaN or inf in the logits); try dtype float32
    """
    if not torch.isfinite(result).all():
        raise NumericalError(
            f"the model returned non-finite target values for {int((~torch.isfinite(result)).sum())} of "
            f"{result.numel()} entries (NaN or inf in the logits); try dtype float32"
        )
    return result
