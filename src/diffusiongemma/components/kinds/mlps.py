"""MLPs: the MLP module's output in each layer, mixed with its baseline.

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> [c.label for c in UNIT_KINDS["mlps"].enumerate(example_model(), "mlps", None, "", None)]
    ['L0.MLP', 'L1.MLP']
"""

from __future__ import annotations

from typing import Any

import torch

from ...units import Component, register_unit_kind
from .base import ComponentKind, Hook, Members, layer_range, levels, mix


def mlp_module(lm: Any, layer: int) -> torch.nn.Module:
    return lm.layers[layer].get_submodule(lm.architecture.mlp)


@register_unit_kind("mlps", domain="component")
class Mlps(ComponentKind):
    name, unit, spec, layered = "mlps", "mlp", "mlps", True

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        return [Component("mlp", layer, positions=positions) for layer in layer_range(part, layers, lm.dims.layers)]

    def label(self, c: Component) -> str:
        return f"L{c.layer}.MLP"

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        out = []
        for col, c in members:
            m, base, pos = masks[:, col:col + 1], baselines.get(c), [c.positions]

            def hook(module: Any, inputs: Any, output: torch.Tensor, m=m, base=base, pos=pos) -> torch.Tensor:
                return mix(output, levels(m, pos, prompt_len, output.shape[1]), base)  # [b, T, d]
            out.append((mlp_module(lm, c.layer), "forward", hook))
        return out

    def capture(self, lm: Any, comps: list[Component], seen: dict[Component, list[torch.Tensor]]) -> list[Hook]:
        def post(module: Any, inputs: Any, output: torch.Tensor) -> None:
            for c in comps:
                seen[c].append(output.float())
        return [(mlp_module(lm, comps[0].layer), "forward", post)]
