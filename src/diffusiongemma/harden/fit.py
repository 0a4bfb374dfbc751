"""Fitting the patch: the condition vector, its layer and threshold, and the steering strength.

* :func:`pooled_states`: each prompt's mean over positions of the unit-normalised residual stream, per layer
  ``[N, layers, d]`` (so ``pooled @ c`` is exactly the patch's signal, the mean ``cos(h_t, c)``).
* :func:`fit_condition`: ``c`` = difference of the pooled means of harmful and benign prompts — both plain and
  under the attack suite's wrappers, so the condition reads harm in the request, not the wrapper — at the layer
  whose held-out split is separated best at a threshold that lets through at most ``fpr`` of the benign
  calibration prompts.
* :func:`choose_alpha`: the smallest steering strength of a grid that makes the patched model refuse the
  calibration attacks the condition catches.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> pos = torch.randn(40, 3, 8, generator=g); pos[:, 2, 0] += 3  # harm shows at layer 2, coordinate 0
    >>> neg = torch.randn(40, 3, 8, generator=g)
    >>> fit = fit_condition(pos, neg, max_layer=2)
    >>> fit["layer"], fit["val_tpr"] > 0.8, fit["val_fpr"] <= 0.2
    (2, True, True)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..masking import scoped_hooks

__all__ = ["pooled_states", "fit_condition", "choose_alpha"]


@torch.no_grad()
def pooled_states(lm: Any, prompts: list[str]) -> torch.Tensor:
    """Mean over positions 1.. of ``h_t / |h_t|`` at every decoder layer's output, prompts rendered as chat
    turns: ``[N, layers, d]`` (float32, CPU).

    Example:
        >>> pooled_states(lm, ["Hi"]).shape  # doctest: +SKIP
        torch.Size([1, 18, 640])
    """
    from ..generation import chat_ids

    layers = lm.model.get_submodule(lm.architecture.layers)
    out = []
    for p in prompts:
        grabbed: list[torch.Tensor] = []

        def grab(module: Any, inputs: Any, output: Any) -> None:
            h = (output[0] if isinstance(output, tuple) else output)[0, 1:].float()  # [T-1, d]
            grabbed.append((h / h.norm(dim=-1, keepdim=True).clamp_min(1e-6)).mean(0).cpu())  # [d]

        with scoped_hooks([(layer, "forward", grab) for layer in layers]):
            lm.model(input_ids=torch.tensor([chat_ids(lm, p)[0]], device=lm.device))
        out.append(torch.stack(grabbed))  # [layers, d]
    return torch.stack(out)  # [N, layers, d]


def _direction(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    c = pos.mean(0) - neg.mean(0)  # [d]
    return c / c.norm().clamp_min(1e-12)


def fit_condition(pos: torch.Tensor, neg: torch.Tensor, *, max_layer: int, min_layer: int = 1, fpr: float = 0.02,
                  validation: float = 0.3, seed: int = 0) -> dict[str, Any]:
    """Choose the condition layer (``min_layer ≤ L ≤ max_layer``), vector and threshold.

    Args:
        pos, neg: pooled states ``[N, layers, d]`` of prompts the patch should fire on / leave alone.
        fpr: the share of ``neg`` allowed above the threshold (the threshold is that quantile of ``neg``).

    Returns: ``layer``, ``vector`` ``[d]``, ``threshold``, the held-out ``val_tpr`` / ``val_fpr`` of the chosen
    layer and ``layers`` (those figures for every candidate). The vector and threshold are refit on all data.
    """
    rng = np.random.default_rng(seed)
    ip, ineg = rng.permutation(len(pos)), rng.permutation(len(neg))
    kp, kn = max(1, int(len(pos) * validation)), max(1, int(len(neg) * validation))
    rows = []
    for layer in range(min_layer, max_layer + 1):
        c = _direction(pos[ip[kp:], layer], neg[ineg[kn:], layer])
        thr = float(torch.quantile(neg[ineg[kn:], layer] @ c, 1 - fpr))
        tpr = float((pos[ip[:kp], layer] @ c > thr).float().mean())
        fp = float((neg[ineg[:kn], layer] @ c > thr).float().mean())
        rows.append({"layer": layer, "val_tpr": tpr, "val_fpr": fp})
    best = max(rows, key=lambda r: (r["val_tpr"] - r["val_fpr"], -r["val_fpr"]))
    c = _direction(pos[:, best["layer"]], neg[:, best["layer"]])
    thr = float(torch.quantile(neg[:, best["layer"]] @ c, 1 - fpr))
    return {"layer": best["layer"], "vector": c, "threshold": thr, "val_tpr": best["val_tpr"],
            "val_fpr": best["val_fpr"], "layers": rows}


def choose_alpha(score: Callable[[float], np.ndarray], grid: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
                 target: float = 0.9, threshold: float = 0.0) -> tuple[float, list[dict[str, float]]]:
    """The smallest ``alpha`` of ``grid`` at which at least ``target`` of the prompts are refused
    (``score(alpha)`` returns their refusal scores under the patch); the largest when none reaches it.

    Example:
        >>> choose_alpha(lambda a: np.array([a - 3.0, a - 1.5]))[0]
        4.0
    """
    trace = []
    for alpha in grid:
        s = np.asarray(score(alpha))
        rate = float((s > threshold).mean()) if len(s) else 1.0
        trace.append({"alpha": alpha, "refused": rate, "mean_score": float(s.mean()) if len(s) else 0.0})
        if rate >= target:
            return alpha, trace
    return grid[-1], trace
