"""Where a component unit lives in the model: its structured site (what reports and hooks read).

Examples:
    >>> c = Component("head", layer=3, index=1, positions="last")
    >>> Component.from_dict(c.to_dict()) == c, c.to_dict()["layer"]
    (True, 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Component"]


@dataclass(frozen=True)
class Component:
    """One maskable component: ``kind`` (``head``, ``mlp``, ``layer``, ``neuron``, ``direction``, ``feature``: the
    unit kind of a registered component kind), its layer, its index (head; neuron group; latent), the neurons per
    group, and an optional position restriction."""

    kind: str
    layer: int
    index: int = 0
    source: str = ""  # a direction's or an SAE's file
    size: int = 1  # neurons per unit (neuron kind)
    positions: str = ""  # "" every position, else "last", "lastK", "tokA-B"
    site: str = "resid"  # an SAE feature's site: "resid" (after the layer) or "transcoder" (MLP in → out)
    group: tuple[int, ...] = ()  # a feature unit of several latents (``#anyK/G``), strongest first; () = (index,)

    @property
    def label(self) -> str:
        """How people read it (``L3.H1``, ``L3.MLP``, ``L5.N64-127``, ``dir:NAME``, ``L12.F301``), from its kind."""
        from .base import component_kind

        return component_kind(self.kind).label(self) + (f"@{self.positions}" if self.positions else "")

    @property
    def latents(self) -> tuple[int, ...]:
        """The SAE latents of a feature unit: one, or a group."""
        return self.group or (self.index,)

    @property
    def neurons(self) -> range:
        """The MLP hidden neurons of a neuron unit."""
        return range(self.index * self.size, (self.index + 1) * self.size)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["group"] = list(self.group)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Component":
        return cls(**{**d, "group": tuple(d.get("group", ()))})
