"""Residual-stream directions: ``direction:FILE`` (written by ``refusal-direction`` or ``harden``) is one unit;
masked, its component is projected out of every decoder layer's output, ``h ← h − (1 − m)(h·r̂) r̂``
(directional ablation, Arditi et al. 2024). No baseline: a direction has no activation of its own.

Examples:
    >>> from diffusiongemma.units import UNIT_KINDS
    >>> UNIT_KINDS["direction"].label(Component("direction", 9, source="runs/refusal.safetensors"))
    'dir:refusal'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Hashable

import torch

from ...errors import InputError
from ...units import Component, register_unit_kind
from ..directions import load_direction
from .base import ComponentKind, Hook, Members, levels

__all__ = ["Direction", "direction_vector"]


@lru_cache(maxsize=32)
def direction_vector(path: str) -> tuple[Any, int]:
    """The unit vector ``[d]`` and layer of a direction file (cached); a missing or foreign file is an
    :class:`InputError`."""
    d = load_direction(path)
    return d.unit.float(), d.layer


@register_unit_kind("direction", domain="component")
class Direction(ComponentKind):
    name, unit, spec = "direction", "direction", "direction:FILE"

    def enumerate(self, lm: Any, part: str, layers: tuple[int, int] | None, positions: str,
                  input_ids: list[int] | None) -> list[Component]:
        path = part.partition(":")[2]
        vec, layer = direction_vector(path)
        if vec.shape[0] != lm.model.config.hidden_size or not 0 <= layer < lm.dims.layers:
            raise InputError(f"the direction {path} (d={vec.shape[0]}, layer {layer}) does not fit this model")
        return [Component("direction", layer, 0, path, positions=positions)]

    def label(self, c: Component) -> str:
        return f"dir:{Path(c.source).stem}"

    def group(self, c: Component) -> Hashable:
        return ()  # every direction in one hook per layer

    def hooks(self, lm: Any, members: Members, masks: torch.Tensor, baselines: dict[Component, torch.Tensor],
              prompt_len: int | None) -> list[Hook]:
        units = torch.stack([direction_vector(c.source)[0] for _, c in members])  # [k, d]
        cols = [col for col, _ in members]
        pos = [c.positions for _, c in members]

        def ablate(module: Any, inputs: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output  # [b, T, d]
            r = units.to(hidden.device, hidden.dtype)  # [k, d]
            drop = 1 - levels(masks[:, cols], pos, prompt_len, hidden.shape[1]).to(hidden.device, hidden.dtype)  # [b, T|1, k]
            for j in range(r.shape[0]):
                hidden = hidden - drop[..., j, None] * (hidden @ r[j])[..., None] * r[j]
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return [(layer, "forward", ablate) for layer in lm.layers]
