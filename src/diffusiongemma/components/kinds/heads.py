"""Attention heads: head ``h`` of layer ``l`` is its slice of the input of the layer's attention output projection.

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> comps = UNIT_KINDS["heads"].enumerate(example_model(), "heads", (1, 1), "last", None)
    >>> [c.label for c in comps]
    ['L1.H0@last', 'L1.H1@last', 'L1.H2@last', 'L1.H3@last']
"""

from __future__ import annotations

from typing import Any

import torch

from ...units import Component, register_unit_kind
from .base import ComponentKind, Hook, Members, layer_range, split_hook


def attention_input(lm: Any, layer: int) -> torch.nn.Module:
    """The attention output projection of ``layer`` (its input holds the heads side by side)."""
    arch = lm.architecture
    return lm.layers[layer].get_submodule(f"{arch.attn}.{arch.attn_out}")


@register_unit_kind("heads", domain="component")
class Heads(ComponentKind):
    name, unit, spec, layered = "heads", "head", "heads", True

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        n_layers, n_heads, _ = lm.dims
        return [Component("head", layer, h, positions=positions)
                for layer in layer_range(part, layers, n_layers) for h in range(n_heads)]

    def label(self, c: Component) -> str:
        return f"L{c.layer}.H{c.index}"

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        n_heads = lm.dims.heads
        given = {c.index: baselines[c] for _, c in members if baselines.get(c) is not None}
        like = next(iter(given.values()), None)
        base = None if like is None else torch.stack(
            [given.get(h, torch.zeros_like(like)) for h in range(n_heads)], dim=-2)  # [(T,) H, dh]
        slices = [slice(c.index, c.index + 1) for _, c in members]
        layer = members[0][1].layer
        return [split_hook(attention_input(lm, layer), members, slices, n_heads, masks, base, prompt_len,
                           heads=n_heads)]

    def capture(self, lm: Any, comps: list[Component], seen: dict[Component, list[torch.Tensor]]) -> list[Hook]:
        n_heads = lm.dims.heads

        def pre(module: Any, args: Any) -> None:
            x = args[0].float()  # [B, T, H·dh]
            x = x.view(*x.shape[:2], n_heads, -1)  # [B, T, H, dh]
            for c in comps:
                seen[c].append(x[:, :, c.index])
        return [(attention_input(lm, comps[0].layer), "forward_pre", pre)]
