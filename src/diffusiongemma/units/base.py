"""A unit: a group of prompt tokens masked together, with its text and character span.

Example:
    >>> u = Unit("bank", 10, 14, (3,), "prompt")
    >>> u.to_dict()["text"]
    'bank'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

__all__ = ["Unit", "UnitBuilder", "UNIT_KINDS", "register_unit_kind"]


@dataclass(frozen=True)
class Unit:
    """One maskable unit."""

    text: str
    start: int  # character span in the rendered prompt text
    end: int
    positions: tuple[int, ...]  # token positions in the rendered prompt
    role: str  # chat role of the content it belongs to ("prompt" for plain text)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["positions"] = list(self.positions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Unit":
        return cls(d["text"], int(d["start"]), int(d["end"]), tuple(d["positions"]), d["role"])


UnitBuilder = Callable[..., list[Unit]]
UNIT_KINDS: dict[str, UnitBuilder] = {}


def register_unit_kind(name: str) -> Callable[[UnitBuilder], UnitBuilder]:
    """Register a unit builder ``f(rendered, *, special=False, **options) -> list[Unit]`` under a name."""

    def deco(fn: UnitBuilder) -> UnitBuilder:
        UNIT_KINDS[name] = fn
        return fn

    return deco
