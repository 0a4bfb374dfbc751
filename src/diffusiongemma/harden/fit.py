"""Fitting the patch: the condition vector, its layer and threshold, and the steering strength.

* :func:`pooled_states`: each prompt's mean over positions of the unit-normalised residual stream, per layer
  ``[N, layers, d]`` (so ``pooled @ c`` is exactly the patch's signal, the mean ``cos(h_t, c)``).
* :func:`fit_condition`: ``c`` = the weight vector of an L2-regularised logistic regression (on standardised
  pooled states) of harmful against benign prompts — both plain and under the attack suite's wrappers, so the
  condition reads harm in the request, not the wrapper — mapped back to a unit vector and a threshold on the
  raw signal, at the layer whose held-out split is separated best at a threshold that lets through at most
  ``fpr`` of the benign calibration prompts. (On the demo safety model a plain difference of means, and any
  direction read at one token, did not separate wrapped harmful from wrapped benign requests; the regression
  did: see the harden note in docs/harden.md.)
* :func:`choose_alpha`: the smallest steering strength of a grid that makes the patched model refuse the
  calibration attacks the condition catches.

Examples:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> pos = torch.randn(100, 3, 8, generator=g); pos[:, 2, 0] += 4  # harm shows at layer 2, coordinate 0
    >>> neg = torch.randn(300, 3, 8, generator=g)
    >>> fit = fit_condition(pos, neg, max_layer=2, fpr=0.05)
    >>> fit["layer"], fit["val_tpr"] > 0.8, fit["val_fpr"] <= 0.1
    (2, True, True)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..errors import InputError
from ..models.hooks import scoped_hooks
from ..models.forward import last_logits_only

__all__ = ["pooled_states", "fit_condition", "choose_alpha"]


@torch.no_grad()
def pooled_states(lm: Any, prompts: list[str]) -> torch.Tensor:
    """Mean over positions 1.. of ``h_t / |h_t|`` at every decoder layer's output, prompts rendered as chat
    turns: ``[N, layers, d]`` (float32, CPU).

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> pooled_states(example_model(), ["Hi"]).shape  # Gemma 3 270M: [1, 18, 640]
        torch.Size([1, 2, 64])
    """
    from ..generation import chat_ids

    layers = lm.layers
    out = []
    for p in prompts:
        grabbed: list[torch.Tensor] = []

        def grab(module: Any, inputs: Any, output: Any) -> None:
            h = (output[0] if isinstance(output, tuple) else output)[0, 1:].float()  # [T-1, d]
            grabbed.append((h / h.norm(dim=-1, keepdim=True).clamp_min(1e-6)).mean(0).cpu())  # [d]  # noqa: B023

        with scoped_hooks([(layer, "forward", grab) for layer in layers]):
            lm.model(input_ids=torch.tensor([chat_ids(lm, p)[0]], device=lm.device), **last_logits_only(lm.model))
        out.append(torch.stack(grabbed))  # [layers, d]
    return torch.stack(out)  # [N, layers, d]


def _logistic(pos: torch.Tensor, neg: torch.Tensor, l2: float) -> tuple[torch.Tensor, float]:
    """Unit vector ``c`` ``[d]`` and offset ``t`` such that ``x @ c - t`` is proportional to the logit of an
    L2-regularised logistic regression of pos (1) against neg (0), fit on standardised features."""
    X = torch.cat([pos, neg]).double()  # [N, d]
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).double()
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    weight = torch.where(y > 0, 0.5 / len(pos), 0.5 / len(neg))  # the classes weigh the same

    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(Z @ w + b, y, reduction="none")).sum()
        loss = loss + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    v = (w.detach() / sd)  # logit = x @ v - mu @ v + b
    norm = v.norm().clamp_min(1e-12)
    return (v / norm).float(), float((mu @ v - b.detach()[0]) / norm)


def _signal_threshold(neg: torch.Tensor, c: torch.Tensor, fpr: float, groups: torch.Tensor) -> float:
    """The highest of the groups' ``1 − fpr`` quantiles of the signal: every group keeps its false-positive rate."""
    sig = (neg @ c).double()
    return max(float(torch.quantile(sig[groups == g], 1 - fpr)) for g in groups.unique())


def _group_rate(pos: torch.Tensor, groups: torch.Tensor) -> float:
    """The highest rate of firing ``pos`` (bool) over the groups."""
    return max(float(pos[groups == g].float().mean()) for g in groups.unique())


def fit_condition(pos: torch.Tensor, neg: torch.Tensor, *, max_layer: int, min_layer: int = 1, fpr: float = 0.02,
                  validation: float = 0.3, l2: float = 0.1, groups: torch.Tensor | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """Choose the condition layer (``min_layer ≤ L ≤ max_layer``), vector and threshold.

    Args:
        pos, neg: pooled states ``[N, layers, d]`` of prompts the patch should fire on / leave alone.
        fpr: the share of ``neg`` allowed above the threshold (the threshold is that quantile of ``neg``).
        groups: ``[len(neg)]`` group labels of the negatives (e.g. plain / wrapped): each group keeps ``fpr``
            (the threshold is the highest of the groups' quantiles; the reported ``val_fpr`` is the worst
            group's), so a small group is not drowned by a large one.
        l2: the regression's L2 penalty (on standardised features, class-balanced mean loss).

    Returns: ``layer``, ``vector`` ``[d]`` (unit), ``threshold`` (on ``pooled @ vector``, the patch's signal),
    the held-out ``val_tpr`` / ``val_fpr`` of the chosen layer and ``layers`` (those figures for every
    candidate). The vector and threshold are refit on all data.
    """
    if max_layer < min_layer:
        raise InputError(f"no layer to read the condition from (layers {min_layer}..{max_layer})")
    groups = torch.zeros(len(neg), dtype=torch.long) if groups is None else torch.as_tensor(groups)
    rng = np.random.default_rng(seed)
    ip = rng.permutation(len(pos))
    kp = max(1, int(len(pos) * validation))
    val_n = np.zeros(len(neg), bool)  # a validation share of every group
    for g in groups.unique().tolist():
        members = rng.permutation(np.flatnonzero(groups.numpy() == g))
        val_n[members[:max(1, int(len(members) * validation))]] = True
    tr_n, va_n = torch.from_numpy(~val_n), torch.from_numpy(val_n)
    rows = []
    for layer in range(min_layer, max_layer + 1):
        c, _ = _logistic(pos[ip[kp:], layer], neg[tr_n, layer], l2)
        thr = _signal_threshold(neg[tr_n, layer], c, fpr, groups[tr_n])
        tpr = float((pos[ip[:kp], layer] @ c > thr).float().mean())
        fp = _group_rate(neg[va_n, layer] @ c > thr, groups[va_n])
        rows.append({"layer": layer, "val_tpr": tpr, "val_fpr": fp})
    best = max(rows, key=lambda r: (r["val_tpr"] - r["val_fpr"], -r["val_fpr"]))
    at = int(best["layer"])
    c, _ = _logistic(pos[:, at], neg[:, at], l2)
    thr = _signal_threshold(neg[:, at], c, fpr, groups)
    return {"layer": best["layer"], "vector": c, "threshold": thr, "val_tpr": best["val_tpr"],
            "val_fpr": best["val_fpr"], "layers": rows, "l2": l2}


def choose_alpha(score: Callable[[float], np.ndarray], grid: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
                 target: float = 0.9, threshold: float = 0.0) -> tuple[float, list[dict[str, float]]]:
    """The smallest ``alpha`` of ``grid`` at which at least ``target`` of the prompts are refused
    (``score(alpha)`` returns their refusal scores under the patch). When none reaches it, the alpha with the
    most refusals (then the higher mean score, then the smaller alpha): the score is not monotone in alpha —
    steering too hard pushes the model off its distribution and the refusal openings lose (measured on the
    demo safety model: 83 % refused at α = 1, none at α = 4).

    Examples:
        >>> choose_alpha(lambda a: np.array([a - 3.0, a - 1.5]))[0]
        4.0
        >>> choose_alpha(lambda a: np.array([1.0, -1.0]) if a == 2.0 else np.array([-1.0, -1.0]))[0]
        2.0
    """
    trace = []
    for alpha in grid:
        s = np.asarray(score(alpha))
        rate = float((s > threshold).mean()) if len(s) else 1.0
        trace.append({"alpha": alpha, "refused": rate, "mean_score": float(s.mean()) if len(s) else 0.0})
        if rate >= target:
            return alpha, trace
    best = max(trace, key=lambda t: (t["refused"], t["mean_score"], -t["alpha"]))
    return best["alpha"], trace
