"""Batched masking of components: row ``r`` of a ``[b, n]`` mask (1 keeps, 0 masks, in between: a soft mask)
sets each component's output to ``m·activation + (1 − m)·baseline``.

* head ``h`` of layer ``l``: the input of the layer's attention output projection, split per head;
* MLP of layer ``l``: the MLP module's output;
* layer ``l``: the block's contribution ``out − in`` (masked, the block passes its input on unchanged, plus
  the baseline contribution);
* direction ``r̂``: its component of every decoder layer's output, ``h ← h − (1 − m)(h·r̂) r̂`` (masked: projected
  out everywhere; no baseline).

Baselines are ``[dh]`` per head and ``[d]`` per MLP / layer (``None``: zero). Everything goes through
:func:`~diffusiongemma.masking.scoped_hooks`, so no hook outlives the forward.

Example:
    >>> hooks = component_hooks(lm, comps, torch.ones(4, len(comps)), {})  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from .sites import Component, direction_vector

__all__ = ["component_hooks", "site_module"]


def site_module(lm: Any, kind: str, layer: int) -> torch.nn.Module:
    """The module whose input (heads) or output (mlp, layer) a component lives in."""
    arch = lm.architecture
    block = lm.model.get_submodule(arch.layers)[layer]
    if kind == "head":
        return block.get_submodule(f"{arch.attn}.{arch.attn_out}")
    if kind == "mlp":
        return block.get_submodule(arch.mlp)
    return block


def _mix(x: torch.Tensor, m: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
    """``m·x + (1 − m)·base``, on the device and in the dtype of ``x`` (a sharded model's layer may live on
    another device than the masks)."""
    m = m.to(x.device, x.dtype)
    return m * x if base is None else m * x + (1 - m) * base.to(x.device, x.dtype)


def component_hooks(lm: Any, components: list[Component], masks: torch.Tensor,
                    baselines: dict[Component, torch.Tensor]) -> list[tuple[Any, str, Any]]:
    """Hooks that apply ``masks`` ``[b, n]`` (one row per batch row) to ``components``."""
    n_heads = int(getattr(lm.model.config, "num_attention_heads", None) or lm.model.config.n_head)
    heads: dict[int, list[tuple[int, int]]] = defaultdict(list)  # layer -> [(head, column)]
    hooks: list[tuple[Any, str, Any]] = []
    directions: list[tuple[int, Component]] = []
    for col, c in enumerate(components):
        if c.kind == "direction":
            directions.append((col, c))
        elif c.kind == "head":
            heads[c.layer].append((c.index, col))
        elif c.kind == "mlp":
            m = masks[:, col].view(-1, 1, 1)  # [b, 1, 1]

            def mlp_hook(module: Any, inputs: Any, output: torch.Tensor, m=m, base=baselines.get(c)) -> torch.Tensor:
                return _mix(output, m, base)

            hooks.append((site_module(lm, "mlp", c.layer), "forward", mlp_hook))
        else:
            m = masks[:, col].view(-1, 1, 1)

            def layer_hook(module: Any, args: Any, kwargs: Any, output: Any, m=m, base=baselines.get(c)) -> Any:
                hidden_in = args[0] if args else kwargs["hidden_states"]
                out = output[0] if isinstance(output, tuple) else output
                hidden_in = hidden_in.to(out.device)  # a shard's input arrives before accelerate moves it
                new = hidden_in + _mix(out - hidden_in, m, base)
                return (new, *output[1:]) if isinstance(output, tuple) else new

            hooks.append((site_module(lm, "layer", c.layer), "forward_kw", layer_hook))
    for layer, members in heads.items():
        ones = torch.ones(masks.shape[0], n_heads, dtype=masks.dtype, device=masks.device)
        idx = torch.tensor([h for h, _ in members], device=masks.device)
        cols = torch.tensor([col for _, col in members], device=masks.device)
        m_heads = ones.index_copy(1, idx, masks[:, cols])  # [b, H]: differentiable in masks
        base = [baselines.get(Component("head", layer, h)) for h in range(n_heads)]
        base_t = None if all(b is None for b in base) else torch.stack(
            [b if b is not None else torch.zeros_like(next(x for x in base if x is not None)) for b in base])  # [H, dh]

        def head_hook(module: Any, args: Any, m=m_heads, base=base_t) -> Any:
            x = args[0]  # [b, T, H·dh]
            b, T, width = x.shape
            x4 = x.view(b, T, n_heads, width // n_heads)
            mixed = _mix(x4, m[:, None, :, None], base)
            return (mixed.reshape(b, T, width), *args[1:])

        hooks.append((site_module(lm, "head", layer), "forward_pre", head_hook))
    if directions:
        hooks += _direction_hooks(lm, directions, masks)
    return hooks


def _direction_hooks(lm: Any, directions: list[tuple[int, Component]], masks: torch.Tensor
                     ) -> list[tuple[Any, str, Any]]:
    """Every decoder layer's output loses ``(1 − m)`` of its component along each masked direction."""
    units = torch.stack([direction_vector(c.source)[0] for _, c in directions])  # [k, d]
    cols = [col for col, _ in directions]

    def ablate(module: Any, inputs: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # [b, T, d]
        r = units.to(hidden.device, hidden.dtype)  # [k, d]
        drop = 1 - masks[:, cols].to(hidden.device, hidden.dtype)  # [b, k]
        for j in range(r.shape[0]):
            hidden = hidden - drop[:, j, None, None] * (hidden @ r[j])[..., None] * r[j]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return [(layer, "forward", ablate) for layer in lm.model.get_submodule(lm.architecture.layers)]
