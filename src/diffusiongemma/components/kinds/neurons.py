"""MLP neurons: ``neurons:L`` makes every hidden neuron of layer ``L`` a unit, ``neurons:L/G`` groups of ``G``
consecutive neurons: their slice of the input of the MLP's down projection.

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> [c.label for c in UNIT_KINDS["neurons"].enumerate(example_model(), "neurons:1/64", None, "", None)]
    ['L1.N0-63', 'L1.N64-127']
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import InputError
from ...units import Component, register_unit_kind
from .base import ComponentKind, Hook, Members, split_hook, stack_baselines


def down_projection(lm: Any, layer: int) -> torch.nn.Module:
    """The MLP's down projection in ``layer`` (its input: the hidden neurons)."""
    arch = lm.architecture
    return lm.layers[layer].get_submodule(f"{arch.mlp}.{arch.mlp_out}")


@register_unit_kind("neurons", domain="component")
class Neurons(ComponentKind):
    name, unit, spec = "neurons", "neuron", "neurons:L"

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        n_layers, _, inner = lm.dims
        arg = part.partition(":")[2]
        layer_s, _, group_s = arg.partition("/")
        try:
            layer, group = int(layer_s), int(group_s or 1)
        except ValueError:
            raise InputError(f"{part!r} is not neurons:LAYER or neurons:LAYER/GROUP") from None
        if not 0 <= layer < n_layers:
            raise InputError(f"layer {layer} is outside this model's 0-{n_layers - 1}")
        if group < 1 or inner % group:
            raise InputError(f"the neuron group size {group} does not divide this model's {inner} MLP neurons")
        return [Component("neuron", layer, g, size=group, positions=positions) for g in range(inner // group)]

    def label(self, c: Component) -> str:
        lo = c.index * c.size
        return f"L{c.layer}.N{lo}" + (f"-{lo + c.size - 1}" if c.size > 1 else "")

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        inner = lm.dims.neurons
        slices = [slice(c.neurons.start, c.neurons.stop) for _, c in members]
        base = stack_baselines([(s, baselines.get(c)) for (_, c), s in zip(members, slices)], inner)  # [(T,) I]
        return [split_hook(down_projection(lm, members[0][1].layer), members, slices, inner, masks, base, prompt_len)]

    def capture(self, lm: Any, comps: list[Component], seen: dict[Component, list[torch.Tensor]]) -> list[Hook]:
        def pre(module: Any, args: Any) -> None:
            x = args[0].float()  # [B, T, inner]
            for c in comps:
                seen[c].append(x[..., c.neurons.start: c.neurons.stop])
        return [(down_projection(lm, comps[0].layer), "forward_pre", pre)]
