"""Unit kinds: how a prompt (text kinds) or a model (component kinds) is cut into units that are masked together.

``build_units(rendered, "words")`` returns a prompt's units; every kind, text or component, is registered in
:data:`UNIT_KINDS` (the component kinds by :mod:`diffusiongemma.components.kinds`). A spec is
a kind name, optionally with ``+special`` (template markers become units too), or ``spans:A-B,C-D``, or a
list of ``(start, end)`` character spans.

Examples:
    >>> from diffusiongemma.units import parse_unit_spec
    >>> parse_unit_spec("spans:0-4,5-9")
    ('spans', {'special': False, 'spans': [(0, 4), (5, 9)]})
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import InputError
from ..prompts import RenderedPrompt
from . import text as _text  # noqa: F401  (registers the text unit kinds)
from .base import UNIT_KINDS, TextKind, Unit, UnitKind, component_kind, register_unit_kind
from .component import Component

__all__ = ["Unit", "UnitKind", "TextKind", "Component", "UNIT_KINDS", "register_unit_kind", "component_kind", "build_units",
           "parse_unit_spec"]

UnitSpec = str | Sequence[tuple[int, int]]


def parse_unit_spec(spec: UnitSpec) -> tuple[str, dict[str, Any]]:
    """Split a unit spec into a kind name and builder options.

    Examples:
        >>> parse_unit_spec('words'), parse_unit_spec('spans:0-4,5-9')
        (('words', {'special': False}), ('spans', {'special': False, 'spans': [(0, 4), (5, 9)]}))
    """
    if not isinstance(spec, str):
        return "spans", {"spans": [tuple(s) for s in spec], "special": False}
    kind, _, args = spec.partition(":")
    special = kind.endswith("+special")
    kind = kind.removesuffix("+special")
    if kind not in UNIT_KINDS or UNIT_KINDS[kind].domain != "text":
        text_kinds = sorted(k for k, v in UNIT_KINDS.items() if v.domain == "text")
        raise InputError(f"unknown unit kind {kind!r}; choose one of {', '.join(text_kinds)}")
    options: dict[str, Any] = {"special": special}
    if kind == "spans":
        try:
            options["spans"] = [tuple(int(x) for x in part.split("-")) for part in args.split(",") if part]
        except ValueError:
            raise InputError(f"cannot read spans from {args!r}; write spans:START-END,START-END") from None
        if not options["spans"] or any(len(s) != 2 or s[0] >= s[1] for s in options["spans"]):
            raise InputError(f"spans must be START-END pairs with START < END, got {args!r}")
    return kind, options


def build_units(rendered: RenderedPrompt, spec: UnitSpec = "words") -> list[Unit]:
    """Build the units of a rendered prompt; raises :class:`InputError` when they select nothing.

    Examples:
        >>> from diffusiongemma.models.tiny import example_model
        >>> from diffusiongemma.prompts import render_prompt
        >>> units = build_units(render_prompt("Hi there", example_model().tokenizer), "words")
        >>> [u.text for u in units]
        ['Hi', 'there']
    """
    kind, options = parse_unit_spec(spec)
    units = UNIT_KINDS[kind](rendered, **options)
    if not units:
        raise InputError(f"the units {spec!r} select no token of this prompt")
    return units
