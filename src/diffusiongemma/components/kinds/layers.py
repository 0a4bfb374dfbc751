"""Whole layers: a decoder block's contribution ``out − in`` (masked, the block passes its input on unchanged,
plus the baseline contribution).

Examples:
    >>> from diffusiongemma.models.tiny import example_model
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> [c.label for c in UNIT_KINDS["layers"].enumerate(example_model(), "layers", (1, 1), "", None)]
    ['L1']
"""

from __future__ import annotations

from typing import Any

import torch

from ...units import Component, register_unit_kind
from .base import ComponentKind, Hook, Members, layer_range, levels, mix


@register_unit_kind("layers", domain="component")
class Layers(ComponentKind):
    name, unit, spec, layered = "layers", "layer", "layers", True

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        return [Component("layer", layer, positions=positions) for layer in layer_range(part, layers, lm.dims.layers)]

    def label(self, c: Component) -> str:
        return f"L{c.layer}"

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        out = []
        for col, c in members:
            m, base, pos = masks[:, col:col + 1], baselines.get(c), [c.positions]

            def hook(module: Any, args: Any, kwargs: Any, output: Any, m=m, base=base, pos=pos) -> Any:
                hidden_in = args[0] if args else kwargs["hidden_states"]
                o = output[0] if isinstance(output, tuple) else output  # [b, T, d]
                hidden_in = hidden_in.to(o.device)  # a shard's input arrives before accelerate moves it
                new = hidden_in + mix(o - hidden_in, levels(m, pos, prompt_len, o.shape[1]), base)
                return (new, *output[1:]) if isinstance(output, tuple) else new
            out.append((lm.layers[c.layer], "forward_kw", hook))
        return out

    def capture(self, lm: Any, comps: list[Component], seen: dict[Component, list[torch.Tensor]]) -> list[Hook]:
        def block(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            hidden_in = args[0] if args else kwargs["hidden_states"]
            o = output[0] if isinstance(output, tuple) else output
            for c in comps:
                seen[c].append((o - hidden_in.to(o.device)).float())
        return [(lm.layers[comps[0].layer], "forward_kw", block)]
