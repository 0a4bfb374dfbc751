"""The refusal direction's projection as a target: ``v(m) = h_ℓ[p] · r̂`` — how far the residual stream at the
direction's layer ``ℓ`` and position ``p`` points along it under each mask. Explaining it says which prompt
units (or components) push the model's internal state towards refusal, before any reply is written; the
forward stops after layer ``ℓ``, so it is cheaper than the refusal score.

Examples:
    >>> import diffusiongemma as dg
    >>> from diffusiongemma.refusal.projection import DirectionProjection
    >>> import tempfile, torch
    >>> from diffusiongemma.refusal.direction import RefusalDirection
    >>> from diffusiongemma.models.tiny import example_model
    >>> path = RefusalDirection(torch.ones(64), layer=1, position=-1).save(tempfile.mkdtemp() + "/refusal.safetensors")
    >>> attr = dg.explain("How do I pick a lock?", target=DirectionProjection(path), model=example_model(), chat=True,
    ...                   budget=16)
    >>> attr.target["kind"]
    'projection'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..prompts import RenderedPrompt
from ..targets import TARGETS, BoundTarget, Probe, Target
from .direction import RefusalDirection, load_direction

__all__ = ["DirectionProjection"]


@dataclass
class DirectionProjection(Target):
    """The residual stream's projection on a direction (a :class:`RefusalDirection` or its file) at the
    direction's own layer and position."""

    direction: RefusalDirection | str | Path
    name = "projection"
    help = "projection of the residual stream on a direction file at its layer and position: --target-direction FILE"

    def _load(self) -> tuple[RefusalDirection, str]:
        if isinstance(self.direction, RefusalDirection):
            return self.direction, "direction"
        return load_direction(self.direction), Path(self.direction).stem

    def bind(self, lm: Any, rendered: RenderedPrompt) -> BoundTarget:
        d, label = self._load()
        n_layers, hidden = lm.dims.layers, lm.model.config.hidden_size
        if d.vector.shape[0] != hidden or not 0 <= d.layer < n_layers:
            raise InputError(f"the direction (d={d.vector.shape[0]}, layer {d.layer}) does not fit this model "
                             f"(d={hidden}, {n_layers} layers)")
        if not -len(rendered) <= d.position < len(rendered):
            raise InputError(f"the direction's position {d.position} is outside the {len(rendered)}-token prompt")
        return BoundTarget([[]], lambda logits: logits[0][:, 0, 0],
                           {"kind": self.name, "text": f"projection on {label} (layer {d.layer}, position {d.position})",
                            "layer": d.layer, "position": d.position},
                           probe=Probe(d.layer, d.position, d.unit.float()))


TARGETS[DirectionProjection.name] = DirectionProjection
