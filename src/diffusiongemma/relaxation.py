"""Differentiable relaxations of the mask operators: soft masks in [0, 1] that equal the hard ones at 0 and 1.

* ``replace``: the token's embedding (as the embedding module outputs it, so Gemma's √d scaling is kept)
  is interpolated towards the baseline token's: ``k·E[x] + (1 − k)·E[baseline]``.
* ``remove``: the key of a token with keep level ``k`` gets the additive attention bias ``log k`` (its
  attention weights scaled by ``k`` before renormalisation); ``k = 0`` is the attention hole itself. The
  bias goes in as a prepared 4-D mask (one per attention type for models with sliding-window layers).
  A hard ``remove`` reads the target at the last token still present; the soft one reads the mixture of
  positions weighted by the chance that each is the last kept one (``k_p Π_{q>p} (1 − k_q)``), so the
  relaxation is continuous all the way to the empty prompt and integrated gradients keep completeness.

Token keep levels come from :func:`diffusiongemma.masking.keep_matrix`, which works on soft masks as is.

Examples:
    >>> import torch
    >>> soft_read_weights(torch.tensor([[1.0, 0.0, 1.0]])).tolist()
    [[0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["key_bias", "soft_attention_mask", "soft_read_weights", "embedding_interpolation"]


def soft_read_weights(keep: torch.Tensor) -> torch.Tensor:
    """Weights ``[B, L]`` of each position being the last kept one, ``k_p Π_{q>p} (1 − k_q)``: one-hot at
    the last kept position for 0/1 levels (a position kept for sure, like BOS, ends the product).

    Examples:
        >>> soft_read_weights(torch.tensor([[1.0, 0.5, 0.5]])).tolist()
        [[0.25, 0.25, 0.5]]
    """
    after = torch.flip(torch.cumprod(torch.flip(1 - keep, [1]), 1), [1])  # [B, L]: Π_{q≥p} (1 − k_q)
    after = torch.cat([after[:, 1:], torch.ones_like(after[:, :1])], dim=1)  # Π_{q>p}
    return keep * after


def key_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive bias ``[B, T]`` of each key with keep level ``k``: ``log k``, and the dtype's minimum (a hole)
    at ``k = 0``; 0/1 flags give 0 and the hole.

    Examples:
        >>> key_bias(torch.tensor([[1.0, 0.5]]), torch.float32).tolist() == [[0.0, float(torch.log(torch.tensor(0.5)))]]
        True
    """
    keep, neg = keep.to(dtype), torch.finfo(dtype).min
    return torch.where(keep > 0, torch.log(keep.clamp_min(1e-30)), torch.full_like(keep, neg))


def _bias(keep: torch.Tensor, dtype: torch.dtype, window: int | None) -> torch.Tensor:
    """Additive mask ``[B, 1, T, T]``: causal (and sliding-window) structure plus ``log keep`` per key."""
    b, T = keep.shape
    neg = torch.finfo(dtype).min
    keys = key_bias(keep, dtype)  # [B, T]
    q = torch.arange(T, device=keep.device)
    allowed = q[None, :] <= q[:, None]  # [T, T]: key j ≤ query i
    if window is not None:
        allowed = allowed & (q[:, None] - q[None, :] < window)
    bias = keys[:, None, None, :].expand(b, 1, T, T)
    return torch.where(allowed, bias, torch.full_like(bias, neg)).to(dtype)


def soft_attention_mask(keep: torch.Tensor, config: Any, dtype: torch.dtype) -> torch.Tensor | dict[str, torch.Tensor]:
    """The ``attention_mask`` argument for keep levels ``[B, T]``: a 4-D additive mask, or for models with
    per-layer attention types (Gemma 2/3 sliding windows) a dict of them by type.

    Examples:
        >>> m = soft_attention_mask(torch.tensor([[1.0, 0.5, 0.0]]), None, torch.float32)
        >>> m[0, 0, 2, :2].tolist() == [0.0, float(torch.log(torch.tensor(0.5)))]
        True
    """
    layer_types = getattr(config, "layer_types", None)
    if not layer_types:
        return _bias(keep, dtype, None)
    window = getattr(config, "sliding_window", None)
    return {kind: _bias(keep, dtype, window if "sliding" in kind else None) for kind in set(layer_types)}


def embedding_interpolation(keep: torch.Tensor, baseline: torch.Tensor) -> Callable:
    """A forward hook for the embedding module: outputs ``[B, T, d]`` become ``k·out + (1 − k)·baseline``
    with keep levels ``[B, T]`` and the baseline token's embedding ``[d]``."""

    def hook(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        k = keep[:, : output.shape[1], None].to(output.device, output.dtype)  # [B, T, 1]
        return k * output + (1 - k) * baseline.to(output.device, output.dtype)

    return hook
