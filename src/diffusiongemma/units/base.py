"""A unit: what is masked together — prompt tokens (text kinds) or a place in the model (component kinds) — and
the one registry of unit kinds.

A text unit has its text and character span; a component unit has a structured ``site`` (a
:class:`~diffusiongemma.units.component.Component`: kind, layer, index, positions …) that reports read, and a
``text`` label (``L3.H1``) for people.

Examples:
    >>> u = Unit("bank", 10, 14, (3,), "prompt")
    >>> u.to_dict()["text"], u.site is None
    ('bank', True)
    >>> sorted(k for k, v in UNIT_KINDS.items() if v.domain == "text")
    ['roles', 'sentences', 'spans', 'tokens', 'words']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .component import Component

__all__ = ["Unit", "UnitBuilder", "UnitKind", "TextKind", "UNIT_KINDS", "register_unit_kind", "component_kind"]


@dataclass(frozen=True)
class Unit:
    """One maskable unit."""

    text: str  # the words (text units) or the label (component units: "L3.H1@last")
    start: int  # character span in the rendered prompt text (0, 0 for a component)
    end: int
    positions: tuple[int, ...]  # token positions in the rendered prompt (() for a component)
    role: str  # chat role of the content it belongs to ("prompt" for plain text; "component" for a component)
    site: Component | None = None  # where a component unit lives in the model

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text, "start": self.start, "end": self.end,
                             "positions": list(self.positions), "role": self.role}
        if self.site is not None:
            d["site"] = self.site.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Unit":
        site = Component.from_dict(d["site"]) if d.get("site") else None
        return cls(d["text"], int(d["start"]), int(d["end"]), tuple(d["positions"]), d["role"], site)


UnitBuilder = Callable[..., list[Unit]]


class UnitKind(Protocol):
    """A registered unit kind: ``domain`` is ``"text"`` (cut from the prompt) or ``"component"`` (a place in the
    model; see :class:`diffusiongemma.components.kinds.ComponentKind`)."""

    name: str
    domain: str


@dataclass(frozen=True)
class TextKind:
    """A text unit kind: ``build(rendered, *, special=False, **options) -> list[Unit]``."""

    name: str
    build: UnitBuilder
    domain: str = "text"

    def __call__(self, rendered: Any, **options: Any) -> list[Unit]:
        return self.build(rendered, **options)


UNIT_KINDS: dict[str, Any] = {}  # name -> TextKind or ComponentKind


def register_unit_kind(name: str, domain: str = "text") -> Callable[[Any], Any]:
    """Register a unit kind under ``name``: a text builder function (``domain="text"``), or a component kind
    class (``domain="component"``, instantiated once). Returns what it decorates."""

    def deco(obj: Any) -> Any:
        UNIT_KINDS[name] = TextKind(name, obj) if domain == "text" else obj()
        return obj

    return deco


def component_kind(unit_kind: str) -> Any:
    """The registered component kind whose units have ``Component.kind == unit_kind`` (``"head"`` → heads).

    Examples:
        >>> type(component_kind('head')).__name__
        'Heads'
    """
    for kind in UNIT_KINDS.values():
        if kind.domain == "component" and kind.unit == unit_kind:
            return kind
    raise KeyError(f"no component kind makes {unit_kind!r} units")
