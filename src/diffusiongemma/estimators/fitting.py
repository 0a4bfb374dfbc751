"""Type-II maximum likelihood for the Bayesian estimators: L-BFGS on a negative log marginal likelihood.

Examples:
    >>> import torch
    >>> p = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    >>> round(float(minimize(lambda q: ((q - 1.0) ** 2).sum(), p)[0]), 4)
    1.0
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["minimize"]


def minimize(nll: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor, max_iter: int = 30) -> torch.Tensor:
    """L-BFGS (strong Wolfe line search) on ``nll`` from ``params`` (a leaf tensor with ``requires_grad``); the
    starting point if the fit fails (a step into a singular covariance) or does not improve on it."""
    start = params.detach().clone()
    opt = torch.optim.LBFGS([params], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(params)
        loss.backward()
        return loss

    try:
        with torch.no_grad():
            before = float(nll(start))
        opt.step(closure)
        with torch.no_grad():
            after = float(nll(params))
        return params.detach() if np.isfinite(after) and after <= before else start
    except (RuntimeError, torch.linalg.LinAlgError):
        return start
