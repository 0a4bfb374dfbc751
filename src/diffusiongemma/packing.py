"""Many continuations of one masked prompt in a single forward: the prompt once, each continuation's
teacher-forced tokens after it, and a 4-D attention mask in which every continuation sees the (masked)
prompt and its own earlier tokens only — never another continuation. Positions restart after the prompt
for each continuation, so each one is computed exactly as if it were alone.

A target with many openings (the refusal score teacher-forces ~27) then costs one pass per mask instead
of one per opening.

Example:
    >>> import torch
    >>> keep = torch.tensor([[1, 0, 1]])
    >>> mask, pos, starts = packed_mask(keep, [2, 1], None, torch.float32)
    >>> pos.tolist(), starts
    ([0, 1, 2, 3, 4, 3], [3, 5])
    >>> (mask[0, 0, 5] == 0).tolist()  # the 2nd continuation's token sees prompt 0, 2 and itself only
    [True, False, True, False, False, True]
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["packed_mask"]


def _allowed(L: int, tails: list[int], device: Any) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Boolean structure ``[T, T]`` (query, key), positions ``[T]`` and the start of each tail."""
    T = L + sum(tails)
    group = torch.full((T,), -1, dtype=torch.long, device=device)  # -1: prompt, c: continuation c
    pos = torch.arange(T, device=device)
    starts, at = [], L
    for c, t in enumerate(tails):
        starts.append(at)
        group[at:at + t] = c
        pos[at:at + t] = torch.arange(L, L + t, device=device)
        at += t
    idx = torch.arange(T, device=device)
    causal = idx[None, :] <= idx[:, None]  # [T, T]
    same = (group[:, None] == group[None, :]) | (group[None, :] == -1)  # key in the prompt or in my own tail
    return causal & same, pos, starts


def packed_mask(keep: torch.Tensor, tails: list[int], config: Any, dtype: torch.dtype
                ) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor, list[int]]:
    """The additive 4-D mask ``[B, 1, T, T]`` (a dict by attention type for sliding-window models), the
    position ids ``[T]`` and the start index of each continuation's tokens, for prompt keep flags ``[B, L]``
    (0/1; a removed prompt token is a hole for every query) and the teacher-forced lengths ``tails``."""
    b, L = keep.shape
    allowed, pos, starts = _allowed(L, tails, keep.device)
    T = allowed.shape[0]
    key_ok = torch.cat([keep.bool(), torch.ones(b, T - L, dtype=torch.bool, device=keep.device)], dim=1)  # [B, T]
    neg = torch.finfo(dtype).min

    def build(window: int | None) -> torch.Tensor:
        ok = allowed
        if window is not None:
            ok = ok & (pos[:, None] - pos[None, :] < window)
        full = ok[None] & key_ok[:, None, :]  # [B, T, T]
        return torch.where(full, torch.zeros((), dtype=dtype, device=keep.device),
                           torch.full((), neg, dtype=dtype, device=keep.device))[:, None]  # [B, 1, T, T]

    layer_types = getattr(config, "layer_types", None)
    if not layer_types:
        return build(None), pos, starts
    window = getattr(config, "sliding_window", None)
    return {kind: build(window if "sliding" in kind else None) for kind in set(layer_types)}, pos, starts
