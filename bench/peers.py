"""Peers' estimators run on our game (same value function, so only the estimator differs).

Each function takes a counting game (``game.n``, ``game(masks) -> values``), a budget in evaluations and a
seed, and returns Shapley estimates ``[n]``. The evaluations a peer really spent are read from the game's
counter by the caller, never from the peer's settings.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _torch_forward(game: Any) -> Callable:
    import torch

    def forward(x: "torch.Tensor") -> "torch.Tensor":
        return torch.as_tensor(game(x.detach().cpu().numpy().round().astype(int)), dtype=torch.float64)

    return forward


def _captum(cls_name: str, game: Any, budget: int, seed: int, **kw: Any) -> np.ndarray:
    import torch
    import captum.attr as ca

    torch.manual_seed(seed)
    method = getattr(ca, cls_name)(_torch_forward(game))
    ones, zeros = torch.ones(1, game.n, dtype=torch.float64), torch.zeros(1, game.n, dtype=torch.float64)
    return method.attribute(ones, baselines=zeros, **kw).detach().numpy()[0]


def captum_svs(game, budget, seed):
    # one permutation costs n evaluations beyond the shared baseline
    return _captum("ShapleyValueSampling", game, budget, seed, n_samples=max(1, (budget - 1) // game.n))


def captum_kernelshap(game, budget, seed):
    # all samples in one call (captum's default runs one forward per sample: the same samples and result, slower)
    return _captum("KernelShap", game, budget, seed, n_samples=budget, perturbations_per_eval=budget)


def captum_lime(game, budget, seed):
    return _captum("Lime", game, budget, seed, n_samples=budget, perturbations_per_eval=budget)


def captum_feature_ablation(game, budget, seed):
    return _captum("FeatureAblation", game, budget, seed)


def _shapiq(cls_name: str, game: Any, budget: int, seed: int) -> np.ndarray:
    import shapiq.approximator as sa

    approx = getattr(sa, cls_name)(n=game.n, random_state=seed)
    values = approx.approximate(budget=budget, game=lambda c: game(np.atleast_2d(c)))
    return np.array([values[(i,)] for i in range(game.n)])


def shapiq_proxyspex(game: Any, budget: int, seed: int) -> np.ndarray:
    """ProxySPEX (Butler et al. 2025) as shapiq ships it: a LightGBM proxy fitted on ``budget`` coalitions (its own
    sampler, sizes weighted by C(n, k), paired), read as a Fourier then Möbius transform, and converted exactly to
    Shapley values (``index="SV"``, first order). Needs ``lightgbm``."""
    import shapiq.approximator as sa

    approx = sa.ProxySPEX(n=game.n, index="SV", max_order=1, random_state=seed)
    values = approx.approximate(budget=budget, game=lambda c: game(np.atleast_2d(c)))
    return np.array([values[(i,)] for i in range(game.n)])


PEERS: dict[str, Callable[[Any, int, int], np.ndarray]] = {
    "captum ShapleyValueSampling": captum_svs,
    "captum KernelShap": captum_kernelshap,
    "captum Lime": captum_lime,
    "captum FeatureAblation": captum_feature_ablation,
    "shapiq KernelSHAP": lambda g, b, s: _shapiq("KernelSHAP", g, b, s),
    "shapiq kADDSHAP": lambda g, b, s: _shapiq("kADDSHAP", g, b, s),
    "shapiq PermutationSamplingSV": lambda g, b, s: _shapiq("PermutationSamplingSV", g, b, s),
    "shapiq SVARM": lambda g, b, s: _shapiq("SVARM", g, b, s),
    "shapiq ProxySPEX": shapiq_proxyspex,
    "shapiq StratifiedSamplingSV": lambda g, b, s: _shapiq("StratifiedSamplingSV", g, b, s),
}
