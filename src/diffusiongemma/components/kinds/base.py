"""What a component kind is: how a spec part selects components, how people read one, how a mask reaches it,
and how its activation is recorded (for mean and resampled baselines). Shared mixing helpers.

A component kind is one module in this folder: a :class:`ComponentKind` subclass registered with
``@register_unit_kind(NAME, domain="component")`` in the one unit-kind registry
(:data:`diffusiongemma.units.UNIT_KINDS`).

Examples:
    >>> import torch
    >>> mix(torch.ones(2, 3), torch.tensor([[1.0], [0.0]]), None).tolist()  # row 2 masked to the zero baseline
    [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from typing import Any, Hashable

import torch

from ...errors import InputError
from ...units import Component
from ..positions import position_mask

__all__ = ["ComponentKind", "Hook", "Members", "layer_range", "mix", "levels", "stack_baselines", "split_hook"]

Hook = tuple[Any, str, Any]  # (module, "forward" | "forward_pre" | "forward_kw", fn) for scoped_hooks
Members = list[tuple[int, Component]]  # (mask column, component) of one hook group


class ComponentKind:
    """A component kind. ``name``: its word in a spec (``heads``; ``neurons`` for ``neurons:L``); ``unit``: the
    ``Component.kind`` of its units; ``layered``: a spec part may restrict it to layers (``heads@6-11``);
    ``spec``: how it is written, for help texts."""

    name = ""
    unit = ""
    spec = ""
    layered = False
    domain = "component"

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        """The components spec part ``part`` (e.g. ``neurons:3/64``) selects on this model."""
        raise NotImplementedError

    def label(self, c: Component) -> str:
        """How people read ``c`` (without its position restriction)."""
        raise NotImplementedError

    def group(self, c: Component) -> Hashable:
        """Components with the same group share one hook (default: their layer)."""
        return c.layer

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        """Hooks that apply ``masks[:, col]`` (``[b, n]``, 1 keeps) to each member ``(col, component)``."""
        raise NotImplementedError

    def capture(self, lm: Any, comps: list[Component], seen: dict[Component, list[torch.Tensor]]) -> list[Hook]:
        """Hooks that append each component's activation ``[B, T, ...]`` (float32) to ``seen`` in every forward;
        none for a kind with no activation of its own (no mean or resampled baseline)."""
        return []


def layer_range(name: str, layers: tuple[int, int] | None, n_layers: int) -> range:
    """The layers a part selects (all when ``layers`` is None), checked against the model."""
    lo, hi = layers if layers else (0, n_layers - 1)
    if not 0 <= lo <= hi < n_layers:
        raise InputError(f"layers {lo}-{hi} are outside this model's 0-{n_layers - 1}")
    return range(lo, hi + 1)


def mix(x: torch.Tensor, m: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
    """``m·x + (1 − m)·base``, on the device and in the dtype of ``x`` (a sharded model's layer may live on
    another device than the masks)."""
    m = m.to(x.device, x.dtype)
    return m * x if base is None else m * x + (1 - m) * base.to(x.device, x.dtype)


def levels(m: torch.Tensor, positions: list[str], prompt_len: int | None, T: int) -> torch.Tensor:
    """Keep levels ``[b, T or 1, w]`` of ``w`` columns ``m`` ``[b, w]`` under their position restrictions: ``1 −
    p_t (1 − m)`` at position ``t`` (see :mod:`..positions`)."""
    if not any(positions):
        return m[:, None, :]
    masks = {s: position_mask(s, prompt_len or T, T, m.device) for s in set(positions)}
    p = torch.stack([masks[s] for s in positions], dim=1).to(m.dtype)  # [T, w]
    return 1 - p[None] * (1 - m[:, None, :])


def stack_baselines(parts: list[tuple[slice, torch.Tensor | None]], width: int) -> torch.Tensor | None:
    """One ``[width]`` (or ``[T, width]``) baseline from the baselines of slices of it (zero elsewhere)."""
    given = [b for _, b in parts if b is not None]
    if not given:
        return None
    out = torch.zeros(*given[0].shape[:-1], width, dtype=given[0].dtype, device=given[0].device)
    for where, b in parts:
        if b is not None:
            out[..., where] = b
    return out


def split_hook(module: Any, members: Members, slices: list[slice], width: int, masks: torch.Tensor,
               base: torch.Tensor | None, prompt_len: int | None, heads: int | None = None) -> Hook:
    """One pre-hook on ``module``'s input, masking slices of its last dimension (``width`` wide; with ``heads``,
    the input is ``heads`` blocks and each slice is of blocks)."""
    idx = torch.cat([torch.arange(s.start, s.stop) for s in slices]).to(masks.device)
    vals = torch.cat([masks[:, col:col + 1].expand(-1, s.stop - s.start) for (col, _), s in zip(members, slices)], 1)
    m_full = torch.ones(masks.shape[0], width, dtype=masks.dtype, device=masks.device).index_copy(1, idx, vals)  # [b, w]
    pos = [""] * width
    for (_, c), s in zip(members, slices):
        pos[s] = [c.positions] * (s.stop - s.start)

    def hook(mod: Any, args: Any) -> Any:
        x = args[0]  # [b, T, width·dh] (heads) or [b, T, width] (neurons)
        b, T, full = x.shape
        lev = levels(m_full, pos, prompt_len, T)  # [b, T|1, w]
        if heads is None:
            return (mix(x, lev, base), *args[1:])
        x4 = x.view(b, T, heads, full // heads)
        return (mix(x4, lev[..., None], base).reshape(b, T, full), *args[1:])

    return module, "forward_pre", hook
